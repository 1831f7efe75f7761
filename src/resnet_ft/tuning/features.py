"""A data set's samples and their pooled features, read through ``train``'s feature cache.

``doctor`` and ``sweep`` key the cache exactly as ``train`` does (backbone
file hash salted by the precision, file identity, preprocessing, view), so
whichever command runs first pays for the backbone and the others read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rich.console import Console

from resnet_ft.data.folders import Sample, Split
from resnet_ft.data.preprocessing import Preprocessing
from resnet_ft.features.extract import extract
from resnet_ft.features.store import FeatureCache, open_store
from resnet_ft.training.config import TrainConfig
from resnet_ft.training.inputs import extractor, load_networks
from resnet_ft.training.prepare import config_split, require_sources


@dataclass
class LabelledFeatures:
    """The split's samples (training first, then validation) and their features.

    ``values[i]`` is ``(views, channels)``; rows of unreadable files (``errors``)
    are zeros. ``extracted`` counts the images that went through the backbone.
    """

    split: Split
    values: np.ndarray
    errors: dict[int, str]
    extracted: int

    @property
    def samples(self) -> list[Sample]:
        return self.split.train + self.split.val

    @property
    def labels(self) -> np.ndarray:
        return np.array([s.label for s in self.samples], np.int64)

    @property
    def in_val(self) -> np.ndarray:
        """Whether each sample belongs to the validation side of the split."""
        return np.arange(len(self.samples)) >= len(self.split.train)

    @property
    def usable(self) -> np.ndarray:
        """Whether each sample could be decoded."""
        return np.array([i not in self.errors for i in range(len(self.samples))], bool)


def feature_cache(config: TrainConfig) -> FeatureCache:
    """The feature store ``train`` uses for this config (same root, backbone key, geometry)."""
    config = config.resolved()[0]  # the key holds the decided precision, as train's does
    return open_store(config.cache_dir, config.backbone, config.precision,
                      Preprocessing(config.image_size, config.resize))


def load_features(config: TrainConfig, views: int, console: Console) -> LabelledFeatures:
    """Split the data as ``train`` would and read (or compute) ``views`` views per image."""
    require_sources(config)
    config = config.resolved()[0]
    split = config_split(config)
    nets = load_networks(config)
    cache = feature_cache(config)
    paths = [s.path for s in split.train + split.val]
    table = extract(paths, extractor(nets, config.precision),
                    Preprocessing(config.image_size, config.resize), views=views, cache=cache,
                    console=console)
    return LabelledFeatures(split, np.asarray(table.values), table.errors, table.extracted)
