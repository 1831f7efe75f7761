"""Turning the plan's input choices into models and sources over real files.

Phase 1 reads pooled features from the featurizer (the feature store, or
computed online every epoch); phase 2 reads the frozen stages' output from it
(or runs the whole unfrozen backbone online). After training,
:func:`final_pooled` gives the pooled features of the backbone as it is
saved, for fine-tuning a pruned head. The networks a run trains and saves
travel together as :class:`Networks`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from resnet_ft.config import TrainConfig
from resnet_ft.data.folders import Split
from resnet_ft.data.preprocessing import Preprocessing
from resnet_ft.data.sampling import CalibrationSample, calibration_sample
from resnet_ft.features.engines.tensorflow import view_outputs
from resnet_ft.features.featurizer import Backbone, Featurizer, store_root
from resnet_ft.features.store import FeatureTable
from resnet_ft.models.precision import compute_backbone, policy
from resnet_ft.models.unfreeze import phase2_model, set_trainable, split_backbone
from resnet_ft.training.plan import InputPlan, PhasePlan, plan_inputs
from resnet_ft.training.sources import ArraySource, OnlineSource, WithTargets
from resnet_ft.util.replicas import run_sharded


@dataclass
class Networks:
    """The models of one run.

    ``backbone`` is the float32 model that is saved; ``work`` the one computed
    and trained with (a mixed-precision copy, or ``backbone`` itself), built on
    first use: a head-only run on stored features never computes with the
    backbone, and building the copy is a few seconds of a warm rerun.
    ``original`` holds ``work``'s weights from before phase 2 changed them, so
    a run whose best epoch was in phase 1 saves the untouched backbone.
    ``saved`` is the classifier last written to ``model.keras``.
    """

    backbone: Any
    metadata: dict[str, Any]
    precision: str
    head: Any = None
    original: list[np.ndarray] | None = None
    saved: Any = None
    _work: Any = None

    @property
    def work(self) -> Any:
        """The model computed and trained with (built now if it was not yet)."""
        if self._work is None:
            self._work = compute_backbone(self.backbone, self.metadata, self.precision)
        return self._work

    @property
    def changed(self) -> bool:
        """Whether ``work`` exists, so its weights may differ from ``backbone``'s."""
        return self._work is not None


@dataclass
class Reader:
    """How a run reads its image files: geometry, the input plan, the featurizer, replicas.

    ``featurizer`` stores features when the inputs are cached (its ``store`` is
    ``None`` for online inputs); ``augment`` is the Keras model of the online
    augmentations, or ``None``; ``train``/``val`` are the usable files once
    undecodable ones are known.
    """

    preprocessing: Preprocessing
    inputs: InputPlan
    featurizer: Featurizer
    strategy: Any
    console: Console
    augment: Any = None
    train: list[Path] = field(default_factory=list)
    val: list[Path] = field(default_factory=list)

    @property
    def cached(self) -> bool:
        return self.featurizer.store is not None


def make_reader(config: TrainConfig, backbone: Backbone, split: Split, console: Console,
                strategy: Any) -> Reader:
    """How this run reads images: the input plan, the featurizer and online augmentation."""
    inputs = plan_inputs(config)
    preprocessing = config.preprocessing
    featurizer = Featurizer(backbone, preprocessing, config.precision,
                            store_root=store_root(config.cache_dir) if inputs.cached else None,
                            console=console, strategy=strategy,
                            calibration=calibration(config, split))
    augment = None
    if inputs.online_augment:
        from resnet_ft.data.augment import augmentation

        augment = augmentation(inputs.online_augment, config.image_size, config.seed)
    return Reader(preprocessing, inputs, featurizer, strategy, console, augment)


def calibration(config: TrainConfig, split: Split) -> CalibrationSample | None:
    """The training images int8 calibrates on (``None`` for the float precisions)."""
    if config.precision != "int8":
        return None
    return calibration_sample(split.train, config.calibration_images, config.seed)


def load_networks(config: TrainConfig, backbone: Backbone) -> Networks:
    """The backbone, and the copy that computes (and trains) in ``config.precision``.

    A head-only run leaves the backbone's weights as they are, so it assembles its
    classifier on the featurizer's shared copy, through a model of its own over the
    same layers: assembling calls it, and what a call records (the head that follows)
    then goes with the run instead of staying on the shared copy. A run that fine-tunes
    stages loads its own backbone, which the featurizer's readers never see.
    """
    import keras

    from resnet_ft.models.files import load_backbone

    if config.trainable != "head":
        return Networks(load_backbone(backbone.source), backbone.metadata, config.precision)
    shared = backbone.model
    view = keras.Model(shared.input, shared.output, name=shared.name)
    return Networks(view, backbone.metadata, config.precision)


def feature_table(paths: list[Path], reader: Reader) -> FeatureTable:
    """Pooled features of every file (cached inputs), or only which files fail to decode."""
    if not reader.cached:
        return FeatureTable(np.zeros((0,)), reader.featurizer.decodable(paths))
    return reader.featurizer.pooled(paths, reader.inputs.views)


def head_source(table: FeatureTable, n_train: int, reader: Reader) -> Any:
    """Phase 1's inputs: the usable files' cached pooled features, or pooled features online.

    ``table`` covers the split's training files first, then its validation
    files; ``n_train`` is how many of its rows are training files.
    """
    if reader.cached:
        good = np.array([i not in table.errors for i in range(len(table.values))])
        values = table.values
        return ArraySource(values[:n_train][good[:n_train]], values[n_train:][good[n_train:]])
    pooled = reader.featurizer.function(1)
    return OnlineSource(
        reader.preprocessing, reader.train, reader.val,
        lambda x: run_sharded(reader.strategy, pooled, np.asarray(x))[:, 0], reader.augment)


def stages_model_and_source(config: TrainConfig, nets: Networks,
                            reader: Reader) -> tuple[Any, Any]:
    """Phase 2's model (unfrozen stages + head) and its inputs.

    Cached: the frozen stages run once per file and view (the featurizer's
    boundary store), and the model starts at the boundary. Online: the model
    is the whole backbone on pixels, with the lower stages frozen.
    """
    nets.original = nets.work.get_weights()
    set_trainable(nets.work, config.trainable, train_bn=config.train_bn)
    upper = split_backbone(nets.work, config.trainable)[1]
    if not reader.cached:
        source: Any = OnlineSource(reader.preprocessing, reader.train, reader.val, lambda x: x,
                                   reader.augment)
        with policy(config.precision):
            return phase2_model(nets.work, nets.head), source
    featurizer = reader.featurizer
    source = ArraySource(
        featurizer.boundary(reader.train, reader.inputs.views, config.trainable).values,
        featurizer.boundary(reader.val, 1, config.trainable,
                            "caching frozen stages (val)").values)
    with policy(config.precision):
        return phase2_model(upper, nets.head), source


def final_pooled(plan: PhasePlan, source: Any, config: TrainConfig, nets: Networks,
                 reader: Reader) -> ArraySource:
    """Pooled features of the backbone as saved, per training file and view, and validation.

    After head-only training they are the cached features already in
    ``source``; after phase 2 the unfrozen stages run once over the cached
    boundary tensors; online runs extract them once with the trained backbone
    (never stored: the weights are no longer the file's). Views follow the
    epoch's (``reader.inputs.epoch_views``).
    """
    inner = source.inner if isinstance(source, WithTargets) else source
    if plan.inputs == "pooled":
        return inner
    views = reader.inputs.epoch_views
    if plan.inputs == "boundary":
        run = view_outputs(split_backbone(nets.work, config.trainable)[1], 1, pool=True)
        return ArraySource(_pool(run, inner.train, reader), _pool(run, inner.val, reader))
    trained = Featurizer(Backbone(None, nets.metadata, nets.work), reader.preprocessing,
                         config.precision, store_root=None, console=reader.console,
                         strategy=reader.strategy)
    table = [trained.pooled(files, n, "pooling (pruning)").values
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
