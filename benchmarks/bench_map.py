"""The report's data map: UMAP vs PCA vs t-SNE on the pooled features of real photos.

Quality: trustworthiness (scikit-learn's; 1 = no false neighbours in 2-D),
kNN preservation (share of each image's K nearest neighbours in feature space,
by cosine, that are also among its K nearest on the map) and the kNN label
agreement on the map (share of images whose map neighbours' majority label is
theirs — how readable the colours are). Time: each method's fit in this warm
process, and UMAP's cost in a fresh process (import of umap-learn and numba,
plus the first fit's JIT compilation), which a `report` command pays each run.

    python benchmarks/bench_map.py --backbone B.keras [--images N] [--repeats R] [--quick]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import dataset, machine, parser, repeat, save, timed

#: Neighbours compared in feature space and on the map.
K = 10
COLD_UMAP = ("import time, sys; t = time.perf_counter(); import umap; i = time.perf_counter() - t;"
             "import numpy as np; x = np.load(sys.argv[1]); t = time.perf_counter();"
             "umap.UMAP(n_neighbors=15, metric='cosine', random_state=0).fit_transform(x);"
             "print(i, time.perf_counter() - t)")


def main() -> None:
    args = parser(__doc__, images=750, quick_images=40).parse_args()
    from resnet_ft.features.projection import project

    with tempfile.TemporaryDirectory() as tmp:
        data = dataset(Path(tmp) / "data", args.images)
        files = sorted(data.rglob("*.jpg"))
        features = _features(args.backbone, files, args.image_size)
        labels = np.array([sorted({f.parent.name for f in files}).index(f.parent.name)
                           for f in files])
        np.save(Path(tmp) / "features.npy", features)
        cold = subprocess.run([sys.executable, "-c", COLD_UMAP, str(Path(tmp) / "features.npy")],
                              capture_output=True, text=True, check=True).stdout.split()
    methods = {"pca": lambda: project(features, "pca"), "umap": lambda: project(features, "umap"),
               "tsne": lambda: _tsne(features)}
    result: dict[str, object] = {"machine": machine(), "images": len(files),
                                 "image_size": args.image_size, "k": K,
                                 "umap_cold_import_s": float(cold[0]),
                                 "umap_cold_first_fit_s": float(cold[1])}
    for name, method in methods.items():
        points = method()
        result[name] = {"fit_s": repeat(lambda m=method: timed(m), args.repeats),
                        **_quality(features, points, labels)}
    save("map", result)


def _features(backbone: Path, files: list[Path], image_size: int) -> np.ndarray:
    """Pooled features of ``files`` through the featurizer (the store of the default root)."""
    from rich.console import Console

    from resnet_ft.data.preprocessing import Preprocessing
    from resnet_ft.features.featurizer import Backbone, Featurizer, store_root

    featurizer = Featurizer(Backbone.from_file(backbone), Preprocessing(image_size), "float32",
                            store_root=store_root(None), console=Console(quiet=True))
    return np.asarray(featurizer.pooled(files, 1).values)[:, 0]


def _tsne(features: np.ndarray) -> np.ndarray:
    from sklearn.manifold import TSNE

    perplexity = min(30.0, (len(features) - 1) / 3)
    return TSNE(2, perplexity=perplexity, metric="cosine", init="pca",
                random_state=0).fit_transform(features)


def _quality(features: np.ndarray, points: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    from sklearn.manifold import trustworthiness

    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    high = _neighbours(-(unit @ unit.T))
    low = _neighbours(((points[:, None] - points[None]) ** 2).sum(-1))
    kept = np.mean([len(set(a) & set(b)) / K for a, b in zip(high, low, strict=True)])
    votes = np.array([np.bincount(labels[row], minlength=labels.max() + 1).argmax()
                      for row in low])
    return {"trustworthiness": float(trustworthiness(features, points, n_neighbors=K,
                                                     metric="cosine")),
            "knn_preserved": float(kept), "knn_label_agreement": float((votes == labels).mean()),
            "feature_knn_label_agreement": float(np.mean([
                np.bincount(labels[row], minlength=labels.max() + 1).argmax() == label
                for row, label in zip(high, labels, strict=True)]))}


def _neighbours(distance: np.ndarray) -> np.ndarray:
    distance = distance.copy()
    np.fill_diagonal(distance, np.inf)
    return np.argsort(distance, axis=1)[:, :K]


if __name__ == "__main__":
    main()
