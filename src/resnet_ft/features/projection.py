"""A 2-D map of pooled features: one point per image, computed once and stored beside its page.

UMAP (``umap-learn``, the ``map`` extra) keeps each image's neighbours near
it far better than a linear projection on the measured flower features
(``benchmarks/bench_map.py``: trustworthiness and kNN preservation), but
importing it and compiling its numba kernels costs seconds per process, and
numba is a large install; so it is optional and the fallback is PCA, which
is NumPy only and instant. Both are seeded and deterministic: the same
features give the same map.

The map is stored as ``map.json`` with a key of its inputs (files, feature
bytes, method, seed); a page re-rendered from the same inputs reads the
stored points instead of projecting again.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from resnet_ft.util.atomic import write_text

#: The file a map is stored in, beside the page that shows it.
MAP_FILE = "map.json"
#: Seed of UMAP's random initialisation and layout (PCA needs none).
SEED = 0
#: UMAP's neighbourhood size (its default), cut down for tiny sets.
NEIGHBOURS = 15
#: Fewer points than this are laid out by PCA: UMAP needs a neighbourhood graph.
UMAP_MIN_POINTS = 8
#: Decimals kept of the [0, 1] coordinates: a 1,000-pixel plot needs three.
DECIMALS = 4


@dataclass
class DataMap:
    """Points in [0, 1]², one per feature row, and how they were made."""

    method: str
    seed: int
    key: str
    points: np.ndarray  # (N, 2) float

    def to_json(self) -> dict[str, object]:
        return {"method": self.method, "seed": self.seed, "key": self.key,
                "points": self.points.round(DECIMALS).tolist()}


def default_method() -> str:
    """``umap`` when ``umap-learn`` is installed, else ``pca``."""
    return "umap" if importlib.util.find_spec("umap") is not None else "pca"


def map_key(files: Sequence[str], features: np.ndarray, method: str, seed: int) -> str:
    """A digest of everything the points depend on."""
    digest = hashlib.sha256(f"{method}:{seed}:{len(files)}".encode())
    for name in files:
        digest.update(name.encode() + b"\0")
    digest.update(np.ascontiguousarray(features, np.float32).tobytes())
    return digest.hexdigest()


def stored_or_projected(folder: Path | None, files: Sequence[str], features: np.ndarray, *,
                        method: str | None = None, seed: int = SEED) -> DataMap:
    """The map stored in ``folder`` when its key matches these inputs; else a new projection."""
    method = "pca" if len(features) < UMAP_MIN_POINTS else method or default_method()
    key = map_key(files, features, method, seed)
    stored = _read(folder / MAP_FILE) if folder is not None else None
    if stored is not None and stored.get("key") == key:
        return DataMap(method, seed, key, np.asarray(stored["points"], np.float64))
    return DataMap(method, seed, key, project(features, method, seed))


def write_map(folder: Path, data_map: DataMap) -> None:
    """``map.json`` in ``folder``, atomically."""
    write_text(folder / MAP_FILE, json.dumps(data_map.to_json()))


def project(features: np.ndarray, method: str, seed: int = SEED) -> np.ndarray:
    """(N, 2) coordinates of ``features`` (N, D), scaled into [0, 1]² keeping the aspect."""
    values = np.asarray(features, np.float64)
    coords = pca_2d(values) if method == "pca" else umap_2d(values, seed)
    return _unit_square(coords)


def pca_2d(values: np.ndarray) -> np.ndarray:
    """The first two principal components; each axis's sign fixed by its largest loading.

    From the eigenvectors of the smaller Gram matrix (N×N for fewer images than
    feature dimensions): 6× faster than an SVD of 750 × 2,048 features here.
    """
    centred = values - values.mean(axis=0)
    wide = len(values) <= values.shape[1]
    _, vectors = np.linalg.eigh(centred @ centred.T if wide else centred.T @ centred)
    top = vectors[:, ::-1][:, :2]
    axes = (centred.T @ top if wide else top).T  # (2 or fewer, D) directions
    norms = np.linalg.norm(axes, axis=1, keepdims=True)
    axes = np.divide(axes, norms, out=np.zeros_like(axes), where=norms > 1e-12)
    axes *= np.where(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)] < 0, -1, 1)[:, None]
    coords = centred @ axes.T
    return np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))


def umap_2d(values: np.ndarray, seed: int) -> np.ndarray:
    """UMAP on cosine distances (pooled features' directions carry the class), seeded."""
    import umap

    reducer = umap.UMAP(n_components=2, n_neighbors=min(NEIGHBOURS, len(values) - 1),
                        metric="cosine", random_state=seed, n_jobs=1)  # seeded: serial anyway
    return np.asarray(reducer.fit_transform(values.astype(np.float32)), np.float64)


def _unit_square(coords: np.ndarray) -> np.ndarray:
    low = coords.min(axis=0) if len(coords) else np.zeros(2)
    span = float((coords.max(axis=0) - low).max()) if len(coords) else 0.0
    return (coords - low) / span if span > 0 else np.full_like(coords, 0.5)


def _read(path: Path) -> dict | None:
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # absent or damaged: project again
        return None
    return stored if isinstance(stored, dict) else None
