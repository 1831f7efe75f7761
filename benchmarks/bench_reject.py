"""Reject score: Mahalanobis (shared covariance, Ledoit-Wolf) against k-nearest-neighbour distance.

For each data set, every class is held out in turn: the scorer is fitted on
the other classes' training images (80 %, seeded), its threshold calibrated on
their validation images (20 %) at the default rate (5 %), and the held-out
class's images are the "unknown" ones. Reported per method, as the mean over
the held-out classes: AUROC (validation vs unknown), the share of unknown
images rejected at the calibrated threshold (= 1 - FPR at 95 % TPR), the share
of validation images rejected, and the fit time.

Data sets: generated images (``write_standin_images``: coloured blobs, 5
classes) and, when present, the shared flowers sample (750 photos, 5 classes).
Features: pooled features of the backbone given, plain view, computed once.
kNN: cosine distance to the k-th nearest training feature (faiss, exact
inner-product search on normalised features), k = 1, 5 and 10.

    python benchmarks/bench_reject.py --backbone B.keras [--image-size 160] [--quick]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED, machine, parser, save

RATE, KS, SEED = 0.05, (1, 5, 10), 0


def features(folder: Path, backbone: Path, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Plain-view pooled features of every image of a class-per-folder set, and labels."""
    from rich.console import Console

    from resnet_ft.data.folders import list_images
    from resnet_ft.data.preprocessing import Preprocessing
    from resnet_ft.features.extract import extract
    from resnet_ft.models.files import load_model

    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    paths, labels = [], []
    for index, name in enumerate(classes):
        files = list_images(folder / name)
        paths += files
        labels += [index] * len(files)
    table = extract(paths, load_model(backbone), Preprocessing(size, "crop"), views=1,
                    cache=None, console=Console(stderr=True))
    return np.asarray(table.values, np.float32)[:, 0], np.array(labels)


def auroc(inside: np.ndarray, outside: np.ndarray) -> float:
    """P(score of an unknown image > score of a validation image), ties counting half."""
    both = np.concatenate([inside, outside])
    ranks = np.argsort(np.argsort(both, kind="stable"), kind="stable") + 1.0
    for value in np.unique(both):  # average ranks of ties
        tied = both == value
        ranks[tied] = ranks[tied].mean()
    n_in, n_out = len(inside), len(outside)
    return float((ranks[n_in:].sum() - n_out * (n_out + 1) / 2) / (n_in * n_out))


def knn_scorer(train: np.ndarray, k: int):
    import faiss

    def unit(x):
        return np.ascontiguousarray(x / np.linalg.norm(x, axis=1, keepdims=True), np.float32)

    index = faiss.IndexFlatIP(train.shape[1])
    index.add(unit(train))
    return lambda x: 1.0 - index.search(unit(x), k)[0][:, k - 1]


def methods(train: np.ndarray, labels: np.ndarray):
    from resnet_ft.runs.scorer import fit_scorer

    yield "mahalanobis", lambda: fit_scorer(train, labels, train[:1], RATE).scores
    for k in KS:
        yield f"knn-{k}", lambda k=k: knn_scorer(train, k)


def evaluate(x: np.ndarray, y: np.ndarray) -> dict[str, dict[str, float]]:
    """Every method, each class held out in turn; means over the held-out classes."""
    from resnet_ft.runs.scorer import calibrate

    rng = np.random.default_rng(SEED)
    is_val = rng.random(len(y)) < 0.2
    rows: dict[str, list[list[float]]] = {}
    for held in np.unique(y):
        known = y != held
        train, val, unknown = x[known & ~is_val], x[known & is_val], x[~known]
        labels = y[known & ~is_val]
        labels = np.searchsorted(np.unique(labels), labels)
        for name, fit in methods(train, labels):
            start = time.perf_counter()
            score = fit()
            seconds = time.perf_counter() - start
            s_val, s_out = score(val), score(unknown)
            threshold = calibrate(s_val, RATE)
            rows.setdefault(name, []).append([
                auroc(s_val, s_out), float((s_out > threshold).mean()),
                float((s_val > threshold).mean()), seconds])
    keys = ("auroc", "unknown_rejected", "val_rejected", "fit_seconds")
    return {name: dict(zip(keys, np.mean(values, 0).round(4).tolist(), strict=True))
            for name, values in rows.items()}


def main() -> None:
    from resnet_ft.data.standin import write_standin_images

    args = parser(__doc__, images=60, quick_images=12).parse_args()
    result: dict[str, object] = {"machine": machine(), "rate": RATE}
    with tempfile.TemporaryDirectory() as tmp:
        generated = write_standin_images(Path(tmp) / "gen", per_class=args.images)
        result["generated"] = evaluate(*features(generated, args.backbone, args.image_size))
    if SHARED.is_dir() and not args.quick:
        result["flowers_sample"] = evaluate(*features(SHARED, args.backbone, args.image_size))
    save("reject", result)


if __name__ == "__main__":
    main()
