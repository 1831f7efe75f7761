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


# ----------------------------------------------------------------- feature sources


class CachedSource:
    """Training batches from precomputed features (all views in memory: N x V x 2048 floats)."""

    def __init__(self, train: np.ndarray, val: np.ndarray) -> None:
        self.train, self.val = train, val

    def batches(self, order: np.ndarray, views: np.ndarray, batch_size: int):
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            yield self.train[idx, views[idx]]

    def validation(self) -> np.ndarray:
        return self.val[:, 0]


class OnlineSource:
    """Training batches computed from the image files every epoch (the uncached baseline)."""

    def __init__(self, backbone, spec: Preprocessing, train: list[Path], val: list[Path]):
        self.run = pooled_features(backbone, 1)
        self.spec, self.train, self.val = spec, train, val

    def _pixels(self, paths: list[Path], flips: np.ndarray, batch_size: int):
        import tensorflow as tf

        images = image_dataset([str(p) for p in paths], self.spec)
        flags = tf.data.Dataset.from_tensor_slices(flips.astype(bool))
        dataset = tf.data.Dataset.zip(images, flags).map(
            lambda item, flip: tf.cond(flip, lambda: tf.reverse(item[0], [1]), lambda: item[0]),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True,
        )
        return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    def batches(self, order: np.ndarray, views: np.ndarray, batch_size: int):
        paths = [self.train[i] for i in order]
        for pixels in self._pixels(paths, views[order], batch_size):
            yield self.run(pixels).numpy()[:, 0]

    def validation(self) -> np.ndarray:
        flips = np.zeros(len(self.val), bool)
        return np.concatenate(
            [self.run(p).numpy()[:, 0] for p in self._pixels(self.val, flips, 64)]
        )


# ----------------------------------------------------------------- training


def _train_step(head, optimizer):
    import keras
    import tensorflow as tf

    loss_fn = keras.losses.SparseCategoricalCrossentropy(reduction="sum")

    @tf.function(reduce_retracing=True)
    def step(x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            probs = head(x, training=True)
            total = loss_fn(y, probs)
            loss = total / tf.cast(tf.shape(y)[0], total.dtype)
        grads = tape.gradient(loss, head.trainable_variables)
        optimizer.apply_gradients(zip(grads, head.trainable_variables, strict=True))
        correct = tf.reduce_sum(tf.cast(tf.argmax(probs, 1) == tf.cast(y, tf.int64), tf.float32))
        return total, correct

    return step


def _evaluate(head, features: np.ndarray, labels: np.ndarray) -> tuple[float, float, np.ndarray]:
    probs = np.asarray(head.predict_on_batch(features)) if len(features) else np.zeros((0, 1))
    eps = 1e-7
    loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(labels)), labels], eps, 1.0))))
    accuracy = float(np.mean(probs.argmax(1) == labels))
    return loss, accuracy, probs


def _filter(samples: list[Sample], bad: set[Path]) -> list[Sample]:
    return [s for s in samples if s.path not in bad]


def train(
    config: TrainConfig,
    run_dir: Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    console: Console | None = None,
) -> TrainResult:
    """Run (or resume) one fine-tuning run; write every artifact into ``run_dir``."""
    import keras

    console = console or Console(stderr=True)
    run_dir = Path(run_dir)
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
    prepare_run_dir(run_dir, resume=resume, overwrite=overwrite)
    write_text(run_dir / "config.yaml", config.to_yaml())
    write_text(run_dir / LABELS_FILE, json.dumps(split.labels, indent=2, ensure_ascii=False))
    write_text(run_dir / "split.csv", split.to_csv())

    spec = Preprocessing(config.image_size, config.resize)
    views = 2 if config.augment else 1
    paths = [s.path for s in split.train + split.val]
    if split.ignored:
        console.print(f"ignoring folder(s) without images: {', '.join(split.ignored)}")
    console.print(
        f"{len(split.labels)} classes, {len(split.train)} training and {len(split.val)} "
        f"validation images ({'folders' if split.source == 'folders' else 'seeded split'})"
    )
    cache = None
    if config.cache:
        cache_root = Path(config.cache_dir) if config.cache_dir else default_cache_dir()
        cache = FeatureCache(cache_root, file_digest(backbone_path), spec)
    if config.cache:
        table = extract(paths, backbone, spec, views=views, cache=cache, console=console)
    else:
        table = FeatureTable(np.zeros((0,)), check_decodable(paths, spec, console))
    skipped = {str(paths[i]): reason for i, reason in sorted(table.errors.items())}
    _report_skipped(skipped, run_dir, console, strict=config.strict)
    bad = {Path(p) for p in skipped}
    train_samples, val_samples = _filter(split.train, bad), _filter(split.val, bad)
    require_every_class(split.labels, train_samples, "the training set")
    if not val_samples:
        raise InputError("no usable validation images; add images or raise --val-split")
    good = np.array([i not in table.errors for i in range(len(paths))])
    n_train_all = len(split.train)
    y_train = np.array([s.label for s in train_samples])
    y_val = np.array([s.label for s in val_samples])
    if config.cache:
        source = CachedSource(table.values[:n_train_all][good[:n_train_all]],
                              table.values[n_train_all:][good[n_train_all:]])
    else:
        source = OnlineSource(backbone, spec, [s.path for s in train_samples],
                              [s.path for s in val_samples])

    keras.utils.set_random_seed(config.seed)
    head = build_head(len(split.labels), units=config.head_units, dropout=config.dropout)
    optimizer = keras.optimizers.Adam(learning_rate=config.lr)
    state_store = RunState(run_dir)
    state = state_store.load() if resume else None
    if state is not None:
        state_store.restore(state, head, optimizer)
        console.print(f"resuming after epoch {state['epoch']}")
    else:
        state = {"epoch": 0, "history": [], "best_epoch": 0, "best_val_loss": None}
    step = _train_step(head, optimizer)
    history: list[dict[str, float]] = state["history"]

    last_model_save = time.monotonic()  # short runs save the model once, at the end
    interrupted = _SigintFlag()
    try:
        import tensorflow as tf

        writer = tf.summary.create_file_writer(str(run_dir / "logs"))
        for epoch in range(state["epoch"] + 1, config.epochs + 1):
            started = time.perf_counter()
            rng = np.random.default_rng([config.seed, epoch])
            order = rng.permutation(len(y_train))
            flips = rng.integers(0, views, len(y_train)) if views > 1 else np.zeros(
                len(y_train), np.int64)
            total = correct = 0.0
            seen = 0
            label = f"epoch {epoch}/{config.epochs}"
            with track(console, label, len(y_train), plain=False) as progress:
                for x in source.batches(order, flips, config.batch_size):
                    y = y_train[order[seen : seen + len(x)]]
                    batch_loss, batch_correct = step(x, y)
                    total += float(batch_loss)
                    correct += float(batch_correct)
                    seen += len(x)
                    progress.advance(len(x))
                    if interrupted():
                        raise KeyboardInterrupt
            val_loss, val_acc, _ = _evaluate(head, source.validation(), y_val)
            row = {"epoch": epoch, "loss": total / seen, "accuracy": correct / seen,
                   "val_loss": val_loss, "val_accuracy": val_acc,
                   "seconds": round(time.perf_counter() - started, 3)}
            history.append(row)
            improved = state["best_val_loss"] is None or val_loss < state["best_val_loss"]
            if improved:
                state["best_epoch"], state["best_val_loss"] = epoch, val_loss
            state["epoch"] = epoch
            state_store.commit(epoch, head, optimizer, state, best=improved)
            if improved and time.monotonic() - last_model_save >= MODEL_SAVE_INTERVAL:
                # A usable best-so-far model early in long runs, without paying a
                # full-model write for every improving epoch.
                _save_classifier(run_dir, backbone, backbone_path, head, spec, split.labels)
                last_model_save = time.monotonic()
            write_text(run_dir / "history.csv", history_csv(history))
            with writer.as_default(step=epoch):
                for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
                    tf.summary.scalar(key, row[key])
            writer.flush()
            console.print(
                f"epoch {epoch}/{config.epochs}  loss {row['loss']:.4f}  "
                f"accuracy {row['accuracy']:.4f}  val_loss {val_loss:.4f}  "
                f"val_accuracy {val_acc:.4f}  {row['seconds']:.1f}s" + ("  *" if improved else "")
            )
            if config.early_stopping and epoch - state["best_epoch"] >= config.early_stopping:
                console.print(f"early stopping: no val_loss improvement in "
                              f"{config.early_stopping} epochs")
                break
    except KeyboardInterrupt:
        done = state["epoch"]
        if done:
            _finish(run_dir, head, backbone, backbone_path, state_store, state, split.labels,
                    spec, source, y_val)
        raise Interrupted(
            f"interrupted; state saved after epoch {done}. Resume with: resnet-ft train "
            f"--config {run_dir / 'config.yaml'} -o {run_dir} --resume"
        ) from None
    finally:
        interrupted.restore()
    metrics = _finish(run_dir, head, backbone, backbone_path, state_store, state, split.labels,
                      spec, source, y_val)
    return TrainResult(run_dir, split.labels, history, metrics, skipped, table.extracted)


def _finish(run_dir, head, backbone, backbone_path, store, state, labels, spec, source, y_val):
    """Restore the best epoch and write the model, metrics and plots."""
    from resnet_ft.plots import plot_confusion, plot_curves

    head.load_weights(store.best_weights(state))
    _save_classifier(run_dir, backbone, backbone_path, head, spec, labels)
    val_loss, _, probs = _evaluate(head, source.validation(), y_val)
    metrics = classification_report(y_val, probs, labels)
    metrics.update(val_loss=val_loss, best_epoch=state["best_epoch"])
    write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2, ensure_ascii=False))
    write_text(run_dir / "history.csv", history_csv(state["history"]))
    plot_curves(state["history"], run_dir / "curves.png")
    plot_confusion(metrics["confusion_matrix"], labels, run_dir / "confusion.png")
    return metrics


def _save_classifier(run_dir, backbone, backbone_path, head, spec, labels) -> None:
    """Write ``model.keras`` (atomically): the head's current weights behind the backbone."""
    classifier = assemble(backbone, head, spec.image_size)
    save_model(classifier, run_dir / MODEL_FILE, {
        "kind": "classifier",
        "labels": labels,
        "preprocessing": spec.to_dict(),
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
