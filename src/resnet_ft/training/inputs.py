"""Turning the plan's input choices into models and sources over real files.

Phase 1 reads pooled features from the feature store (or runs the backbone
online); phase 2 reads the frozen stages' cached output (or runs the whole
unfrozen backbone online). The networks a run trains and saves travel
together as :class:`Networks`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from resnet_ft.data.preprocessing import Preprocessing
from resnet_ft.features.boundary import BoundaryCache
from resnet_ft.features.extract import check_decodable, extract, pooled_features
from resnet_ft.features.store import FeatureCache, FeatureTable
from resnet_ft.models.files import backbone_metadata, load_backbone
from resnet_ft.models.precision import compute_backbone, policy
from resnet_ft.models.unfreeze import phase2_model, set_trainable, split_backbone
from resnet_ft.training.config import TrainConfig
from resnet_ft.training.distribute import run_sharded
from resnet_ft.training.plan import InputPlan
from resnet_ft.training.sources import ArraySource, OnlineSource


@dataclass
class Networks:
    """The models of one run.

    ``backbone`` is the float32 model that is saved; ``work`` the one computed
    and trained with (a mixed-precision copy, or ``backbone`` itself).
    ``original`` holds ``work``'s weights from before phase 2 changed them, so
    a run whose best epoch was in phase 1 saves the untouched backbone.
    """

    backbone: Any
    work: Any
    metadata: dict[str, Any]
    head: Any = None
    original: list[np.ndarray] | None = None


@dataclass
class Reader:
    """How a run reads its image files: geometry, the input plan, the store, replicas.

    ``cache`` is ``None`` for online inputs; ``augment`` is the Keras model of
    the online augmentations, or ``None``; ``train``/``val`` are the usable
    files once undecodable ones are known.
    """

    preprocessing: Preprocessing
    inputs: InputPlan
    cache: FeatureCache | None
    strategy: Any
    console: Console
    augment: Any = None
    train: list[Path] = field(default_factory=list)
    val: list[Path] = field(default_factory=list)


def load_networks(config: TrainConfig) -> Networks:
    """The backbone from its file, and the copy that computes in ``config.precision``."""
    backbone = load_backbone(config.backbone)
    metadata = backbone_metadata(config.backbone)
    return Networks(backbone, compute_backbone(backbone, metadata, config.precision), metadata)


def feature_table(paths: list[Path], nets: Networks, reader: Reader) -> FeatureTable:
    """Pooled features of every file (cached inputs), or only which files fail to decode."""
    if reader.cache is None:
        errors = check_decodable(paths, reader.preprocessing, reader.console)
        return FeatureTable(np.zeros((0,)), errors)
    return extract(paths, nets.work, reader.preprocessing, views=reader.inputs.views,
                   strategy=reader.strategy, cache=reader.cache, console=reader.console)


def head_source(table: FeatureTable, n_train: int, nets: Networks, reader: Reader) -> Any:
    """Phase 1's inputs: the usable files' cached pooled features, or pooled features online.

    ``table`` covers the split's training files first, then its validation
    files; ``n_train`` is how many of its rows are training files.
    """
    if reader.cache is not None:
        good = np.array([i not in table.errors for i in range(len(table.values))])
        values = table.values
        return ArraySource(values[:n_train][good[:n_train]], values[n_train:][good[n_train:]])
    pooled = pooled_features(nets.work, 1)
    return OnlineSource(
        reader.preprocessing, reader.train, reader.val,
        lambda x: run_sharded(reader.strategy, pooled, np.asarray(x))[:, 0], reader.augment)


def stages_model_and_source(config: TrainConfig, nets: Networks, reader: Reader,
                            boundary: BoundaryCache | None) -> tuple[Any, Any]:
    """Phase 2's model (unfrozen stages + head) and its inputs.

    Cached: the frozen stages run once per file and view into the boundary
    store, and the model starts at the boundary. Online: the model is the
    whole backbone on pixels, with the lower stages frozen.
    """
    nets.original = nets.work.get_weights()
    set_trainable(nets.work, config.trainable, train_bn=config.train_bn)
    lower, upper = split_backbone(nets.work, config.trainable)
    if boundary is None:
        source: Any = OnlineSource(reader.preprocessing, reader.train, reader.val, lambda x: x,
                                   reader.augment)
        with policy(config.precision):
            return phase2_model(nets.work, nets.head), source
    load = boundary.load
    source = ArraySource(
        load(lower, reader.train, reader.inputs.views, reader.preprocessing, reader.console,
             "caching frozen stages", reader.strategy),
        load(lower, reader.val, 1, reader.preprocessing, reader.console,
             "caching frozen stages (val)", reader.strategy),
    )
    with policy(config.precision):
        return phase2_model(upper, nets.head), source
