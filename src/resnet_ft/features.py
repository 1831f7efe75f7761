"""Pooled backbone features, computed once per image and view, kept in an on-disk cache.

With the backbone frozen, its output for an image never changes, so training
the head for 20 epochs needs only one forward pass per image (two with flip
augmentation: the original and the mirrored view). Entries are keyed by the
backbone file's content hash, the image file's identity (absolute path, size,
mtime) and the preprocessing; a run with other head hyper-parameters reuses
them. Undecodable files are cached as failures with their reason, so a rerun
neither decodes them again nor forgets why they were skipped.

Every entry is written atomically (temporary file + rename) and checked on
read, so a killed process can never leave an entry that is served torn.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from rich.console import Console

from resnet_ft.architectures import FEATURE_CHANNELS
from resnet_ft.atomic import write_bytes
from resnet_ft.preprocessing import Preprocessing, image_dataset
from resnet_ft.progress import track

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

EXTRACT_BATCH = 32


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/resnet-ft/features`` (``~/.cache/...`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "resnet-ft" / "features"


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes: the backbone's identity for cache keys."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class FeatureTable:
    """Features of a list of files: ``values[i, view]`` and the files that failed."""

    values: np.ndarray  # (N, views, channels) float32
    errors: dict[int, str] = field(default_factory=dict)
    extracted: int = 0  # images that went through the backbone (cache misses)


_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def pooled_features(backbone: keras.Model, views: int):
    """A compiled function: pixels (B, h, w, 3) -> pooled features (B, views, C).

    Compiled once per backbone and view count: tracing and optimising a
    300-layer graph costs seconds.
    """
    compiled = _COMPILED.setdefault(backbone, {})
    if views not in compiled:
        compiled[views] = view_outputs(backbone, views, pool=True)
    return compiled[views]


def view_outputs(model: keras.Model, views: int, *, pool: bool):
    """A compiled function: pixels (B, h, w, 3) -> ``model`` outputs per view (B, views, ...).

    View 1 is the horizontal mirror; both views go through the model as one
    batch, which is faster than two calls. ``pool`` averages the spatial axes.
    """
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def run(pixels: tf.Tensor) -> tf.Tensor:
        batch = pixels if views == 1 else tf.concat([pixels, tf.reverse(pixels, [2])], 0)
        result = model(batch, training=False)
        if pool:
            result = tf.reduce_mean(result, axis=[1, 2])
        return tf.stack(tf.split(result, views), axis=1)

    return run


class FeatureCache:
    """Entries under ``root/<backbone hash>/``: ``<key>.npy`` features, ``<key>.err`` failures."""

    def __init__(self, root: Path, backbone_id: str, preprocessing: Preprocessing) -> None:
        self.root = Path(root) / backbone_id[:32]
        self.preprocessing = json.dumps(preprocessing.to_dict(), sort_keys=True)

    def _key(self, path: Path, view: int | None) -> Path:
        stat = path.stat()
        identity = json.dumps(
            [str(path.resolve()), stat.st_size, stat.st_mtime_ns, self.preprocessing, view]
        )
        digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()
        return self.root / digest[:2] / digest

    def get(self, path: Path, view: int) -> np.ndarray | None:
        """Cached features of one view, or ``None`` (missing or unreadable entry)."""
        entry = self._key(path, view).with_suffix(".npy")
        try:
            value = np.load(entry, allow_pickle=False)
        except (OSError, ValueError):
            return None
        return value if value.shape == (FEATURE_CHANNELS,) and value.dtype == np.float32 else None

    def put(self, path: Path, view: int, value: np.ndarray) -> None:
        """Store one view's features atomically."""
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(value, dtype=np.float32), allow_pickle=False)
        write_bytes(self._key(path, view).with_suffix(".npy"), buffer.getvalue())

    def get_error(self, path: Path) -> str | None:
        """The recorded decode failure of ``path``, if any."""
        try:
            return self._key(path, None).with_suffix(".err").read_text(encoding="utf-8")
        except OSError:
            return None

    def put_error(self, path: Path, reason: str) -> None:
        """Remember that ``path`` cannot be decoded, and why."""
        write_bytes(self._key(path, None).with_suffix(".err"), reason.encode("utf-8"))


def extract(
    paths: list[Path],
    backbone: keras.Model,
    preprocessing: Preprocessing,
    *,
    views: int,
    cache: FeatureCache | None,
    console: Console,
    description: str = "extracting features",
    strategy=None,
) -> FeatureTable:
    """Pooled features of every file and view, from the cache where possible."""
    values = np.zeros((len(paths), views, FEATURE_CHANNELS), np.float32)
    table = FeatureTable(values)
    todo: list[int] = []
    for index, path in enumerate(paths):
        if cache is None:
            todo.append(index)
            continue
        reason = cache.get_error(path)
        if reason is not None:
            table.errors[index] = reason
            continue
        cached = [cache.get(path, view) for view in range(views)]
        if any(c is None for c in cached):
            todo.append(index)
        else:
            values[index] = np.stack(cached)
    if not todo:
        return table
    run = pooled_features(backbone, views)
    dataset = image_dataset([str(paths[i]) for i in todo], preprocessing)
    dataset = dataset.batch(EXTRACT_BATCH).prefetch(2)
    position = 0
    with track(console, description, len(todo)) as progress:
        for pixels, errors in dataset:
            batch = todo[position : position + len(errors)]
            position += len(errors)
            ok = np.array([not e for e in errors.numpy()])
            for index, error in zip(batch, errors.numpy(), strict=True):
                if error:
                    table.errors[index] = error.decode("utf-8")
                    if cache is not None:
                        cache.put_error(paths[index], table.errors[index])
            if ok.any():
                good = [i for i, flag in zip(batch, ok, strict=True) if flag]
                feats = _run(run, pixels, ok, strategy)
                values[good] = feats
                table.extracted += len(good)
                if cache is not None:
                    for index, feat in zip(good, feats, strict=True):
                        for view in range(views):
                            cache.put(paths[index], view, feat[view])
            progress.advance(len(batch))
    return table


def check_decodable(paths: list[Path], spec: Preprocessing, console: Console) -> dict[int, str]:
    """Decode every file once (in parallel) and return ``{index: reason}`` for the bad ones.

    The uncached path needs this up front: it must know its training set
    before the first epoch, and it has no cache to remember failures in.
    """
    errors: dict[int, str] = {}
    dataset = image_dataset([str(p) for p in paths], spec).map(lambda _, error: error)
    with track(console, "checking images", len(paths)) as progress:
        for index, error in enumerate(dataset.batch(64).unbatch().as_numpy_iterator()):
            if error:
                errors[index] = error.decode("utf-8")
            progress.advance(1)
    return errors


def _run(run, pixels: tf.Tensor, ok: np.ndarray, strategy) -> np.ndarray:
    """The batch's decodable images through the backbone (sharded across replicas)."""
    from resnet_ft.distribute import run_sharded

    selected = pixels.numpy() if ok.all() else pixels.numpy()[ok]
    return run_sharded(strategy, run, selected)
