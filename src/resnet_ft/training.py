"""Fine-tune a new head on a frozen backbone: data -> features -> head -> run directory.

Two feature sources feed one training loop:

* cached (default): pooled backbone features are computed once per image and
  view (:mod:`resnet_ft.features`); every epoch is then a pass over small
  arrays. Flip augmentation picks a random view per image per epoch — the
  same distribution as flipping online.
* online (``--no-cache``): the plain tf.data pipeline, decoding and running
  the backbone for every batch of every epoch.

Both call the same train step with the same seeded batch order, view choice
and dropout, so they train the same model.

Resumability: after every epoch the head weights, optimizer state and history
are committed to ``RUN_DIR/state`` (versioned files, then ``state.json`` as
the atomic commit point). ``--resume`` continues from the last completed
epoch; Ctrl-C finishes the current step, saves, and exits 130.
"""

from __future__ import annotations

import csv
import io
import json
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from resnet_ft.atomic import write_text
from resnet_ft.classifier import assemble, build_head
from resnet_ft.config import TrainConfig
from resnet_ft.dataset import Sample, make_split, require_every_class
from resnet_ft.distribute import run_sharded
from resnet_ft.errors import EXIT_INTERRUPTED, InputError, ResnetFtError
from resnet_ft.features import (
    FeatureCache,
    FeatureTable,
    check_decodable,
    default_cache_dir,
    extract,
    file_digest,
    pooled_features,
)
from resnet_ft.metrics import classification_report
from resnet_ft.model_io import load_backbone, read_spec, save_model
from resnet_ft.precision import (
    backbone_spec,
    cache_identity,
    compute_backbone,
    copy_weights,
    policy,
)
from resnet_ft.preprocessing import Preprocessing, image_dataset
from resnet_ft.progress import track
from resnet_ft.runs import LABELS_FILE, MODEL_FILE, RunState, history_csv, prepare_run_dir

MODEL_SAVE_INTERVAL = 60.0  # seconds between best-so-far model.keras writes during training


class Interrupted(ResnetFtError):
    """Ctrl-C during training; the run was saved and can be resumed."""

    exit_code = EXIT_INTERRUPTED


@dataclass
class TrainResult:
    """What a finished run produced."""

    run_dir: Path
    labels: list[str]
    history: list[dict[str, float]]
    metrics: dict[str, Any]
    skipped: dict[str, str] = field(default_factory=dict)
    extracted: int = 0


# ----------------------------------------------------------------- sources

# A source yields the phase model's inputs: pooled features (phase 1), the
# frozen stages' output (phase 2), or pixels (online). ``views[i]`` picks the
# cached view of sample i (1 = mirrored) so that cached and online training
# see the same flips.


class ArraySource:
    """Inputs precomputed per sample and view: ``train[i, view]`` (in memory or memory-mapped)."""

    def __init__(self, train: np.ndarray, val: np.ndarray) -> None:
        self.train, self.val = train, val

    def batches(self, order: np.ndarray, views: np.ndarray, batch_size: int):
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            yield np.asarray(self.train[idx, views[idx]], np.float32)

    def validation_batches(self, batch_size: int):
        for start in range(0, len(self.val), batch_size):
            yield np.asarray(self.val[start : start + batch_size, 0], np.float32)


class OnlineSource:
    """Inputs computed from the image files every epoch: decode, augment, ``transform``."""

    def __init__(self, spec: Preprocessing, train: list[Path], val: list[Path], transform,
                 augment=None) -> None:
        self.spec, self.train, self.val = spec, train, val
        self.transform, self.augment = transform, augment

    def _pixels(self, paths: list[Path], flips: np.ndarray, batch_size: int, augment):
        import tensorflow as tf

        images = image_dataset([str(p) for p in paths], self.spec)
        flags = tf.data.Dataset.from_tensor_slices(flips.astype(bool))
        dataset = tf.data.Dataset.zip(images, flags).map(
            lambda item, flip: tf.cond(flip, lambda: tf.reverse(item[0], [1]), lambda: item[0]),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True,
        ).batch(batch_size)
        if augment is not None:
            dataset = dataset.map(lambda x: augment(x, training=True),
                                  num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return dataset.prefetch(tf.data.AUTOTUNE)

    def batches(self, order: np.ndarray, views: np.ndarray, batch_size: int):
        paths = [self.train[i] for i in order]
        for pixels in self._pixels(paths, views[order], batch_size, self.augment):
            yield self.transform(pixels)

    def validation_batches(self, batch_size: int):
        flips = np.zeros(len(self.val), bool)
        for pixels in self._pixels(self.val, flips, batch_size, None):
            yield self.transform(pixels)


# ----------------------------------------------------------------- training


def make_optimizer(config: TrainConfig, learning_rate):
    """Adam, SGD with momentum 0.9, or AdamW; ``--weight-decay`` is decoupled in all three.

    float16 gradients underflow: under ``mixed_float16`` the optimizer scales the loss.
    """
    import keras

    decay = config.weight_decay or None
    if config.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(learning_rate, momentum=0.9, weight_decay=decay)
    elif config.optimizer == "adamw":
        optimizer = keras.optimizers.AdamW(learning_rate, weight_decay=config.weight_decay)
    else:
        optimizer = keras.optimizers.Adam(learning_rate, weight_decay=decay)
    if config.precision == "mixed_float16":
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def class_weights(labels: np.ndarray, num_classes: int, mode: str) -> np.ndarray:
    """Per-class loss weights; ``balanced`` = n / (classes * n_c), as in scikit-learn."""
    if mode != "balanced":
        return np.ones(num_classes, np.float32)
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    return (len(labels) / (num_classes * np.maximum(counts, 1))).astype(np.float32)


def _train_step(model, optimizer, weights: np.ndarray, label_smoothing: float, strategy):
    """One optimizer step on a global batch, split across the strategy's replicas.

    Each replica sums its slice's losses and divides by the *global* batch size;
    the optimizer sums gradients across replicas, so every setup computes the
    gradient of the same batch mean.
    """
    import keras
    import tensorflow as tf

    from resnet_ft.distribute import sharded

    loss_fn = keras.losses.CategoricalCrossentropy(
        label_smoothing=label_smoothing, reduction="none")
    per_class = tf.constant(weights)

    def replica_step(x: tf.Tensor, y: tf.Tensor, size: tf.Tensor):
        with tf.GradientTape() as tape:
            probs = model(x, training=True)
            target = tf.one_hot(y, tf.shape(probs)[-1], dtype=probs.dtype)
            total = tf.reduce_sum(loss_fn(target, probs) * tf.gather(per_class, y))
            loss = total / size
            if hasattr(optimizer, "scale_loss"):
                loss = optimizer.scale_loss(loss)  # unscaled again in apply_gradients
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        correct = tf.reduce_sum(tf.cast(tf.argmax(probs, 1) == tf.cast(y, tf.int64), tf.float32))
        return total, correct

    @tf.function(reduce_retracing=True)
    def distributed(x, y, size: tf.Tensor):
        totals, corrects = strategy.run(replica_step, args=(x, y, size))
        return (strategy.reduce("SUM", totals, axis=None),
                strategy.reduce("SUM", corrects, axis=None))

    def step(x, y: np.ndarray):
        size = tf.constant(len(y), tf.float32)
        return distributed(sharded(strategy, np.asarray(x)), sharded(strategy, y), size)

    return step


def _evaluate(model, source, labels: np.ndarray, batch_size: int = 64):
    """Validation loss, accuracy and probabilities (batched, so memory stays flat)."""
    probs = np.concatenate([np.asarray(model(x, training=False), np.float32)
                            for x in source.validation_batches(batch_size)])
    picked = np.clip(probs[np.arange(len(labels)), labels], 1e-7, 1.0)
    return float(-np.mean(np.log(picked))), float(np.mean(probs.argmax(1) == labels)), probs


def _filter(samples: list[Sample], bad: set[Path]) -> list[Sample]:
    return [s for s in samples if s.path not in bad]


@dataclass
class Phase:
    """One stretch of training: a model, its optimizer and its input source."""

    number: int
    model: Any
    optimizer: Any
    source: Any
    first_epoch: int
    last_epoch: int


def train(
    config: TrainConfig,
    run_dir: Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    console: Console | None = None,
) -> TrainResult:
    """Run (or resume) one fine-tuning run; write every artifact into ``run_dir``.

    Phase 1 trains the head on pooled features (``epochs`` long, or
    ``head_epochs`` when stages are unfrozen); phase 2 (``--trainable`` other
    than ``head``) trains the unfrozen stages and the head together for
    ``epochs`` more, with cosine decay from ``fine_tune_lr`` after a warm-up.

    Under ``--strategy multi-worker`` worker 0 writes ``run_dir``; worker k
    writes ``<run_dir>.worker-k`` (each machine keeps its own copy).
    """
    from resnet_ft.distribute import make_strategy, worker_index

    console = console or Console(stderr=True)
    strategy = make_strategy(config.strategy)  # before any TF op: multi-worker needs that
    run_dir = Path(run_dir)
    if worker_index():
        run_dir = run_dir.with_name(f"{run_dir.name}.worker-{worker_index()}")
    if strategy.num_replicas_in_sync > 1:
        console.print(f"{type(strategy).__name__}: {strategy.num_replicas_in_sync} replicas, "
                      f"global batch {config.batch_size * strategy.num_replicas_in_sync}")
    with strategy.scope():
        return _train(config, run_dir, resume, overwrite, console, strategy)


def _train(config: TrainConfig, run_dir: Path, resume: bool, overwrite: bool,
           console: Console, strategy) -> TrainResult:
    import keras

    if not config.data_dir:
        raise InputError("no data directory given (DATA_DIR argument or data_dir in --config)")
    if not config.backbone:
        raise InputError("no backbone given (--backbone or backbone in --config)")
    backbone_path = Path(config.backbone)
    split = make_split(
        Path(config.data_dir), val_dir=Path(config.val_dir) if config.val_dir else None,
        val_split=config.val_split, seed=config.seed,
    )
    backbone = load_backbone(backbone_path)
    work = compute_backbone(backbone, backbone_spec(backbone_path), config.precision)
    prepare_run_dir(run_dir, resume=resume, overwrite=overwrite)
    write_text(run_dir / "config.yaml", config.to_yaml())
    write_text(run_dir / LABELS_FILE, json.dumps(split.labels, indent=2, ensure_ascii=False))
    write_text(run_dir / "split.csv", split.to_csv())

    spec = Preprocessing(config.image_size, config.resize)
    cached = config.cache and config.cacheable
    views = 2 if "flip" in config.augment and cached else 1
    paths = [s.path for s in split.train + split.val]
    if split.ignored:
        console.print(f"ignoring folder(s) without images: {', '.join(split.ignored)}")
    console.print(
        f"{len(split.labels)} classes, {len(split.train)} training and {len(split.val)} "
        f"validation images ({'folders' if split.source == 'folders' else 'seeded split'})"
    )
    if config.cache and not config.cacheable:
        console.print(f"augmentations {', '.join(config.augment)} change pixels every epoch: "
                      "running the backbone online (only flip can be cached)")
    backbone_id = cache_identity(file_digest(backbone_path), config.precision) if cached else ""
    cache_root = Path(config.cache_dir) if config.cache_dir else default_cache_dir()
    if cached:
        table = extract(paths, work, spec, views=views, strategy=strategy,
                        cache=FeatureCache(cache_root, backbone_id, spec), console=console)
    else:
        table = FeatureTable(np.zeros((0,)), check_decodable(paths, spec, console))
    skipped = {str(paths[i]): reason for i, reason in sorted(table.errors.items())}
    _report_skipped(skipped, run_dir, console, strict=config.strict)
    bad = {Path(p) for p in skipped}
    train_samples, val_samples = _filter(split.train, bad), _filter(split.val, bad)
    require_every_class(split.labels, train_samples, "the training set")
    if not val_samples:
        raise InputError("no usable validation images; add images or raise --val-split")
    y_train = np.array([s.label for s in train_samples])
    y_val = np.array([s.label for s in val_samples])
    train_paths, val_paths = [s.path for s in train_samples], [s.path for s in val_samples]
    augment = None
    if not config.cacheable or (not cached and config.augment != ("flip",)):
        from resnet_ft.augment import augmentation

        augment = augmentation(config.augment, config.image_size, config.seed) \
            if config.augment else None
    online_views = 2 if config.augment == ("flip",) else 1  # flips chosen per epoch, as cached

    keras.utils.set_random_seed(config.seed)
    with policy(config.precision):
        head = build_head(len(split.labels), units=config.head_units, dropout=config.dropout)
    weights = class_weights(y_train, len(split.labels), config.class_weight)
    unfreeze = config.trainable != "head"
    phase1_epochs = config.head_epochs if unfreeze else config.epochs
    if cached:
        good = np.array([i not in table.errors for i in range(len(paths))])
        n = len(split.train)
        source1 = ArraySource(table.values[:n][good[:n]], table.values[n:][good[n:]])
    else:
        pooled = pooled_features(work, 1)
        source1 = OnlineSource(spec, train_paths, val_paths,
                               lambda x: run_sharded(strategy, pooled, np.asarray(x))[:, 0],
                               augment)
    phases = [Phase(1, head, make_optimizer(config, config.lr), source1, 1, phase1_epochs)]
    original_weights = None
    if unfreeze:
        from resnet_ft.finetune import BoundaryCache, phase2_model, set_trainable, split_backbone

        original_weights = work.get_weights()
        set_trainable(work, config.trainable, train_bn=config.train_bn)
        lower, upper = split_backbone(work, config.trainable)
        if cached:
            boundary = BoundaryCache(cache_root, backbone_id, spec, config.trainable)
            source2 = ArraySource(
                boundary.load(lower, train_paths, views, spec, console, "caching frozen stages",
                              strategy),
                boundary.load(lower, val_paths, 1, spec, console,
                              "caching frozen stages (val)", strategy),
            )
            with policy(config.precision):
                model2 = phase2_model(upper, head)
        else:
            source2 = OnlineSource(spec, train_paths, val_paths, lambda x: x, augment)
            with policy(config.precision):
                model2 = phase2_model(work, head)
        steps = config.epochs * -(-len(y_train) // config.batch_size)
        warmup = max(1, steps // 10)
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0, max(steps - warmup, 1), warmup_target=config.phase2_lr, warmup_steps=warmup)
        phases.append(Phase(2, model2, make_optimizer(config, schedule), source2,
                            phase1_epochs + 1, phase1_epochs + config.epochs))

    store = RunState(run_dir)
    state = store.load() if resume else None
    if state is not None:
        current = phases[state.get("phase", 1) - 1]
        store.restore(state, current.model, current.optimizer)
        console.print(f"resuming after epoch {state['epoch']}")
    else:
        state = {"epoch": 0, "phase": 1, "history": [], "best_epoch": 0, "best_phase": 1,
                 "best_val_loss": None}

    interrupted = _SigintFlag()
    loop = _EpochLoop(config, run_dir, store, state, y_train, y_val, console, interrupted,
                      lambda: _save_classifier(run_dir, work, backbone, backbone_path, head,
                                               spec, split.labels, config),
                      strategy.num_replicas_in_sync)
    try:
        for phase in phases:
            if state["epoch"] >= phase.last_epoch:
                continue
            if not phase.optimizer.built:  # slots made here, not lazily inside a replica
                phase.optimizer.build(phase.model.trainable_variables)
            step = _train_step(phase.model, phase.optimizer, weights, config.label_smoothing,
                               strategy)
            loop.run(phase, step, views if cached else online_views)
    except KeyboardInterrupt:
        if state["epoch"]:
            _finish(run_dir, phases, original_weights, work, backbone, backbone_path, head,
                    store, state, split.labels, spec, y_val, config)
        raise Interrupted(
            f"interrupted; state saved after epoch {state['epoch']}. Resume with: resnet-ft "
            f"train --config {run_dir / 'config.yaml'} -o {run_dir} --resume"
        ) from None
    finally:
        interrupted.restore()
    metrics = _finish(run_dir, phases, original_weights, work, backbone, backbone_path, head,
                      store, state, split.labels, spec, y_val, config)
    return TrainResult(run_dir, split.labels, state["history"], metrics, skipped,
                       table.extracted)


class _EpochLoop:
    """Epochs of one phase: seeded order and views, train, validate, commit, report."""

    def __init__(self, config, run_dir, store, state, y_train, y_val, console, interrupted,
                 save_model_now, global_replicas: int) -> None:
        import tensorflow as tf

        self.config, self.run_dir, self.store, self.state = config, run_dir, store, state
        self.y_train, self.y_val, self.console = y_train, y_val, console
        self.interrupted, self.save_model_now = interrupted, save_model_now
        self.writer = tf.summary.create_file_writer(str(run_dir / "logs"))
        self.last_model_save = time.monotonic()  # short runs save the model once, at the end
        self.global_batch = config.batch_size * global_replicas

    def run(self, phase: Phase, step, views: int) -> None:
        """Train ``phase`` from the state's next epoch; early stopping ends the phase."""
        import tensorflow as tf

        config, state, y_train = self.config, self.state, self.y_train
        total_epochs = self.config.epochs + (
            self.config.head_epochs if config.trainable != "head" else 0)
        state["phase"] = phase.number
        for epoch in range(max(state["epoch"] + 1, phase.first_epoch), phase.last_epoch + 1):
            started = time.perf_counter()
            rng = np.random.default_rng([config.seed, epoch])
            order = rng.permutation(len(y_train))  # the same on every worker
            flips = rng.integers(0, views, len(y_train))
            total = correct = 0.0
            seen = 0
            label = f"epoch {epoch}/{total_epochs}"
            with track(self.console, label, len(y_train), plain=False) as progress:
                for x in phase.source.batches(order, flips, self.global_batch):
                    y = y_train[order[seen : seen + len(x)]]
                    batch_loss, batch_correct = step(x, y)
                    total += float(batch_loss)
                    correct += float(batch_correct)
                    seen += len(x)
                    progress.advance(len(x))
                    if self.interrupted():
                        raise KeyboardInterrupt
            val_loss, val_acc, _ = _evaluate(phase.model, phase.source, self.y_val)
            row = {"epoch": epoch, "phase": phase.number, "loss": total / seen,
                   "accuracy": correct / seen, "val_loss": val_loss, "val_accuracy": val_acc,
                   "seconds": round(time.perf_counter() - started, 3)}
            state["history"].append(row)
            improved = state["best_val_loss"] is None or val_loss < state["best_val_loss"]
            if improved:
                state["best_epoch"], state["best_val_loss"] = epoch, val_loss
                state["best_phase"] = phase.number
            state["epoch"] = epoch
            self.store.commit(epoch, phase.model, phase.optimizer, state, best=improved)
            if improved and time.monotonic() - self.last_model_save >= MODEL_SAVE_INTERVAL:
                # A usable best-so-far model early in long runs, without paying a
                # full-model write for every improving epoch.
                self.save_model_now()
                self.last_model_save = time.monotonic()
            write_text(self.run_dir / "history.csv", history_csv(state["history"]))
            with self.writer.as_default(step=epoch):
                for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
                    tf.summary.scalar(key, row[key])
            self.writer.flush()
            self.console.print(
                f"epoch {epoch}/{total_epochs} (phase {phase.number})  loss {row['loss']:.4f}  "
                f"accuracy {row['accuracy']:.4f}  val_loss {val_loss:.4f}  "
                f"val_accuracy {val_acc:.4f}  {row['seconds']:.1f}s" + ("  *" if improved else "")
            )
            if config.early_stopping and epoch - state["best_epoch"] >= config.early_stopping:
                self.console.print(f"early stopping: no val_loss improvement in "
                                   f"{config.early_stopping} epochs")
                return


def _finish(run_dir, phases, original_weights, work, backbone, backbone_path, head, store,
            state, labels, spec, y_val, config):
    """Restore the best epoch (and, if it was in phase 1, the original backbone); write all."""
    from resnet_ft.plots import plot_confusion, plot_curves

    best = phases[state["best_phase"] - 1]
    if original_weights is not None and state["best_phase"] == 1:
        work.set_weights(original_weights)
    best.model.load_weights(store.best_weights(state))
    _save_classifier(run_dir, work, backbone, backbone_path, head, spec, labels, config)
    val_loss, _, probs = _evaluate(best.model, best.source, y_val)
    metrics = classification_report(y_val, probs, labels)
    metrics.update(val_loss=val_loss, best_epoch=state["best_epoch"])
    write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2, ensure_ascii=False))
    write_text(run_dir / "history.csv", history_csv(state["history"]))
    plot_curves(state["history"], run_dir / "curves.png")
    plot_confusion(metrics["confusion_matrix"], labels, run_dir / "confusion.png")
    return metrics


def _save_classifier(run_dir, work, backbone, backbone_path, head, spec, labels, config) -> None:
    """Write ``model.keras`` (atomically): the backbone and head as they are now.

    ``work`` is the backbone trained or computed with (a mixed-precision copy,
    or ``backbone`` itself); the file always holds a float32 backbone.
    """
    copy_weights(work, backbone)
    classifier = assemble(backbone, head, spec.image_size, config.trainable,
                          train_bn=config.train_bn)
    save_model(classifier, run_dir / MODEL_FILE, {
        "kind": "classifier",
        "labels": labels,
        "preprocessing": spec.to_dict(),
        "trainable": config.trainable,
        "backbone": read_spec(backbone_path).get("backbone", {}),
    })


def _report_skipped(skipped: dict[str, str], run_dir: Path, console: Console, strict: bool):
    if not skipped:
        return
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["file", "reason"])
    writer.writerows(skipped.items())
    write_text(run_dir / "skipped.csv", buffer.getvalue())
    if strict:
        listing = "; ".join(f"{p}: {r}" for p, r in list(skipped.items())[:3])
        more = f"; and {len(skipped) - 3} more" if len(skipped) > 3 else ""
        raise InputError(
            f"--strict: {len(skipped)} file(s) cannot be decoded ({listing}{more}); "
            f"full list in {run_dir / 'skipped.csv'}"
        )
    console.print(f"skipped {len(skipped)} file(s) that cannot be decoded:")
    for path, reason in skipped.items():
        console.print(f"  {path}: {reason}")


class _SigintFlag:
    """Turns the first Ctrl-C into a flag checked between steps; restores the old handler."""

    def __init__(self) -> None:
        self.flag = False
        self.previous = signal.getsignal(signal.SIGINT)
        try:
            signal.signal(signal.SIGINT, self._handle)
            self.installed = True
        except ValueError:  # not the main thread: keep default behaviour
            self.installed = False

    def _handle(self, signum, frame) -> None:
        self.flag = True

    def __call__(self) -> bool:
        return self.flag

    def restore(self) -> None:
        if self.installed:
            signal.signal(signal.SIGINT, self.previous)
