"""Turning the plan's input choices into models and sources over real files.

Phase 1 reads pooled features from the feature store (or runs the backbone
online); phase 2 reads the frozen stages' cached output (or runs the whole
unfrozen backbone online). After training, :func:`final_pooled` gives the
pooled features of the backbone as it is saved, for fine-tuning a pruned
head. The networks a run trains and saves travel together as :class:`Networks`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from resnet_ft.data.preprocessing import Preprocessing
from resnet_ft.features.extract import check_decodable, extract, pooled_features, view_outputs
from resnet_ft.features.store import FeatureCache, FeatureTable, open_store
from resnet_ft.models.files import backbone_metadata, load_backbone
from resnet_ft.models.folding import folded_copy
from resnet_ft.models.precision import compute_backbone, policy
from resnet_ft.models.unfreeze import phase2_model, set_trainable, split_backbone
from resnet_ft.training.config import TrainConfig
from resnet_ft.training.plan import InputPlan, PhasePlan, plan_inputs
from resnet_ft.training.sources import ArraySource, OnlineSource, WithTargets
from resnet_ft.util.replicas import run_sharded


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


def make_reader(config: TrainConfig, console: Console, strategy: Any) -> Reader:
    """How this run reads images: the input plan, the feature store and online augmentation."""
    inputs = plan_inputs(config)
    preprocessing = Preprocessing(config.image_size, config.resize)
    cache = None
    if inputs.cached:
        cache = open_store(config.cache_dir, config.backbone, config.precision, preprocessing)
    augment = None
    if inputs.online_augment:
        from resnet_ft.data.augment import augmentation

        augment = augmentation(inputs.online_augment, config.image_size, config.seed)
    return Reader(preprocessing, inputs, cache, strategy, console, augment)


def load_networks(config: TrainConfig) -> Networks:
    """The backbone from its file, and the copy that computes in ``config.precision``."""
    backbone = load_backbone(config.backbone)
    metadata = backbone_metadata(config.backbone)
    return Networks(backbone, compute_backbone(backbone, metadata, config.precision), metadata)


def extractor(nets: Networks, precision: str) -> Any:
    """The model extraction runs: the backbone with BN folded in, computing in ``precision``.

    Built from the float32 weights each time (see :mod:`resnet_ft.models.folding`):
    the same function as the backbone, with a third fewer ops to run. Every
    path that fills the feature store (train, distill, doctor, sweep) uses it, so
    they store and reuse the same numbers.
    """
    with policy(precision):
        return folded_copy(nets.backbone, nets.metadata)


def feature_table(paths: list[Path], nets: Networks, reader: Reader,
                  precision: str) -> FeatureTable:
    """Pooled features of every file (cached inputs), or only which files fail to decode."""
    if reader.cache is None:
        errors = check_decodable(paths, reader.preprocessing, reader.console)
        return FeatureTable(np.zeros((0,)), errors)
    return extract(paths, extractor(nets, precision), reader.preprocessing,
                   views=reader.inputs.views, strategy=reader.strategy, cache=reader.cache,
                   console=reader.console)


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
                            boundary: FeatureCache | None) -> tuple[Any, Any]:
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
    def stored(files: list[Path], views: int, description: str) -> Any:
        return extract(files, lower, reader.preprocessing, views=views, cache=boundary,
                       console=reader.console, description=description,
                       strategy=reader.strategy, batch_size=16, pool=False).values

    source = ArraySource(stored(reader.train, reader.inputs.views, "caching frozen stages"),
                         stored(reader.val, 1, "caching frozen stages (val)"))
    with policy(config.precision):
        return phase2_model(upper, nets.head), source


def final_pooled(plan: PhasePlan, source: Any, config: TrainConfig, nets: Networks,
                 reader: Reader) -> ArraySource:
    """Pooled features of the backbone as saved, per training file and view, and validation.

    After head-only training they are the cached features already in
    ``source``; after phase 2 the unfrozen stages run once over the cached
    boundary tensors; online runs extract them once (not cached: the backbone
    may have changed). Views follow the epoch's (``reader.inputs.epoch_views``).
    """
    inner = source.inner if isinstance(source, WithTargets) else source
    if plan.inputs == "pooled":
        return inner
    views = reader.inputs.epoch_views
    if plan.inputs == "boundary":
        run = view_outputs(split_backbone(nets.work, config.trainable)[1], 1, pool=True)
        return ArraySource(_pool(run, inner.train, reader), _pool(run, inner.val, reader))
    table = [extract(files, nets.work, reader.preprocessing, views=n, cache=None,
                     console=reader.console, description="pooling (pruning)",
                     strategy=reader.strategy).values
             for files, n in ((reader.train, views), (reader.val, 1))]
    return ArraySource(*table)


def _pool(run: Any, boundary: np.ndarray, reader: Reader) -> np.ndarray:
    """``run`` (the unfrozen stages, pooled) on every boundary tensor and view: (N, views, C)."""
    per_view = []
    for view in range(boundary.shape[1]):
        per_view.append(np.concatenate([
            run_sharded(reader.strategy, run, np.asarray(boundary[i : i + 32, view], np.float32))
            for i in range(0, len(boundary), 32)])[:, 0])
    return np.stack(per_view, axis=1)
