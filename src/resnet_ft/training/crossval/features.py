"""A data set's samples and their pooled features, read through ``train``'s featurizer.

``doctor`` and ``sweep`` ask the same featurizer ``train`` does (backbone file
hash salted by the precision, file identity, preprocessing, view), so
whichever command runs first pays for the backbone and the others read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rich.console import Console

from resnet_ft.config import TrainConfig
from resnet_ft.data.folders import Sample, Split
from resnet_ft.features.featurizer import Backbone, Featurizer, store_root
from resnet_ft.training.inputs import calibration


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


def featurizer(config: TrainConfig, split: Split, console: Console) -> Featurizer:
    """The featurizer ``train`` uses for this config and split (same store, backbone key,
    geometry, int8 calibration sample); the key holds the decided precision, as ``train``'s."""
    config = config.resolved()[0]
    return Featurizer(Backbone.from_file(config.backbone_file()), config.preprocessing,
                      config.precision, store_root=store_root(config.cache_dir), console=console,
                      calibration=calibration(config, split))


def load_features(config: TrainConfig, views: int, console: Console) -> LabelledFeatures:
    """Split the data as ``train`` would and read (or compute) ``views`` views per image."""
    config.require_sources()
    split = config.data_split()
    paths = [s.path for s in split.train + split.val]
    table = featurizer(config, split, console).pooled(paths, views)
    return LabelledFeatures(split, np.asarray(table.values), table.errors, table.extracted)
