"""Doctor: time of each stage on simulated feature vectors, and the near-duplicate calibration.

1. Simulated data (no images): N pooled-feature vectors (2 views, 2048 floats,
   5 classes) with 50 planted near copies (cosine ~0.995), N x 20 perceptual
   hashes. Times the feature search as doctor runs it (exact blocked products
   up to ``EXACT_UP_TO`` vectors, an HNSW graph above) with the planted copies'
   recall, the hash search, and the out-of-fold heads (5 folds, the doctor's
   default 20 epochs at 3,670; at 100,000 two epochs are timed and the 20
   epochs extrapolated from the second, reported as such). Sizes: 3,670 and
   100,000.
2. Crossover: exact and approximate feature search timed on the same data at
   10,000 and 20,000 vectors (where ``EXACT_UP_TO`` comes from).
3. Calibration on the shared flowers sample: a copy of each photo by each
   transformation (resize 0.5-0.8x, JPEG quality 60-95, a 90 % crop at a random
   position, horizontal flip); recall of the default rule per transformation,
   and its false-positive rate over all pairs of distinct photos. Feature
   cosines use the backbone given.

    python benchmarks/bench_doctor.py --backbone B.keras [--sizes 3670,100000] [--quick]
"""

from __future__ import annotations

import io
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED, machine, save

PLANTED = 50


def simulated_features(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, set]:
    """(features (N, 2, 2048), labels, planted near-copy pairs)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 5, count)
    features = np.empty((count, 2, 2048), np.float32)
    centres = rng.normal(size=(5, 2048)).astype(np.float32)
    for start in range(0, count, 10_000):  # in blocks: bounded temporary memory
        stop = min(start + 10_000, count)
        features[start:stop] = (centres[labels[start:stop]][:, None]
                                + rng.normal(size=(stop - start, 2, 2048)))
    source = rng.choice(count, PLANTED, replace=False)
    copy = rng.choice(np.setdiff1d(np.arange(count), source), PLANTED, replace=False)
    features[copy] = features[source] + 0.1 * rng.normal(size=(PLANTED, 2, 2048))
    return features, labels, {(min(a, b), max(a, b)) for a, b in zip(source, copy, strict=True)}


def feature_search(features, labels, planted, exact_up_to=None) -> tuple[float, float]:
    """Seconds of doctor's feature search (normalising included) and the planted recall."""
    from resnet_ft.diagnostics.duplicates import Thresholds
    from resnet_ft.diagnostics.labels import NEIGHBOURS
    from resnet_ft.diagnostics.neighbours import feature_neighbours, normalise

    started = time.perf_counter()
    views = normalise(features, features[:, 0].mean(0))
    found = feature_neighbours(views, labels, 5, Thresholds().feature_confirm, NEIGHBOURS,
                               exact_up_to)
    seconds = time.perf_counter() - started
    return seconds, len(planted & set(found.pairs.as_dict())) / len(planted)


def simulated(count: int, label_epochs: int) -> dict[str, float]:
    """Seconds per doctor stage on ``count`` random feature vectors and hashes."""
    from resnet_ft.config import make_config
    from resnet_ft.data.folds import stratified_folds
    from resnet_ft.diagnostics.duplicates import HASH_WITH_FEATURES
    from resnet_ft.diagnostics.fingerprints import VARIANTS
    from resnet_ft.diagnostics.neighbours import EXACT_UP_TO, hash_pairs
    from resnet_ft.training.crossval.fit import cross_validate

    features, labels, planted = simulated_features(count)
    hashes = np.random.default_rng(1).integers(0, 2**63, (count, VARIANTS), dtype=np.uint64)
    result: dict[str, float] = {"vectors": count, "load_before": os.getloadavg()[0],
                                "feature_search": "exact" if count <= EXACT_UP_TO else "hnsw"}
    result["feature_search_s"], result["planted_recall"] = feature_search(features, labels,
                                                                          planted)
    started = time.perf_counter()
    hash_pairs(hashes, HASH_WITH_FEATURES)
    result["hash_search_s"] = time.perf_counter() - started
    config = make_config({"data_dir": "x", "backbone": "y", "epochs": label_epochs,
                          "batch_size": 32})
    ended = [time.perf_counter()]
    cross_validate(config, 5, features, labels, stratified_folds(labels, 5, 0),
                   lambda epoch, fits: ended.append(time.perf_counter()))
    epochs = np.diff(ended)  # the first one includes tracing and compiling
    result["label_heads_s"] = float(epochs.sum())
    result["label_epochs"] = label_epochs
    result["label_heads_20_epochs_s"] = float(epochs[0] + epochs[1:].mean() * 19)
    result["doctor_s"] = (result["feature_search_s"] + result["hash_search_s"]
                          + result["label_heads_20_epochs_s"])
    result["load_after"] = os.getloadavg()[0]
    return result


def crossover(count: int) -> dict[str, float]:
    """Exact and approximate feature search on the same ``count`` vectors."""
    features, labels, planted = simulated_features(count)
    exact_s, exact_recall = feature_search(features, labels, planted, exact_up_to=count)
    approximate_s, approximate_recall = feature_search(features, labels, planted, exact_up_to=0)
    return {"vectors": count, "exact_s": exact_s, "exact_recall": exact_recall,
            "hnsw_s": approximate_s, "hnsw_recall": approximate_recall,
            "load": os.getloadavg()[0]}


def _copy(image, kind: str, rng: random.Random):
    from PIL import Image, ImageOps

    if kind == "resize":
        scale = rng.uniform(0.5, 0.8)
        return image.resize((round(image.width * scale), round(image.height * scale)),
                            Image.Resampling.BILINEAR), 95
    if kind == "jpeg":
        return image, rng.randint(60, 95)
    if kind == "crop":
        width, height = round(image.width * 0.9), round(image.height * 0.9)
        left, top = rng.randint(0, image.width - width), rng.randint(0, image.height - height)
        return image.crop((left, top, left + width, top + height)), 95
    return ImageOps.mirror(image), 95


def calibration(backbone: Path, photos: list[Path], image_size: int) -> dict[str, object]:
    """Recall per transformation and false-positive rate of the default near-duplicate rule."""
    from PIL import Image
    from rich.console import Console

    from resnet_ft.data.preprocessing import Preprocessing
    from resnet_ft.diagnostics.duplicates import Thresholds
    from resnet_ft.diagnostics.fingerprints import fingerprints
    from resnet_ft.diagnostics.neighbours import normalise
    from resnet_ft.features.extract import extract
    from resnet_ft.models.files import load_backbone

    quiet, rng, rule = Console(file=io.StringIO()), random.Random(1), Thresholds()
    model, spec = load_backbone(backbone), Preprocessing(image_size)

    def measure(paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
        values = extract(paths, model, spec, views=2, cache=None, console=quiet).values
        return fingerprints(paths, quiet).hashes, values

    def accepted(bits: np.ndarray, cosine: np.ndarray) -> np.ndarray:
        return ((bits <= rule.hash_distance) | (cosine >= rule.feature_alone)
                | ((bits <= rule.hash_with_features) & (cosine >= rule.feature_confirm)))

    hashes, values = measure(photos)
    mean = values[:, 0].mean(0)
    views = normalise(values, mean)
    bits = np.full((len(photos), len(photos)), 255)
    for variant in range(hashes.shape[1]):
        bits = np.minimum(bits, np.bitwise_count(hashes[:, variant, None] ^ hashes[None, :, 0]))
    cosine = np.maximum(views[:, 0] @ views[:, 0].T, views[:, 0] @ views[:, 1].T)
    upper = np.triu_indices(len(photos), 1)
    false = accepted(np.minimum(bits, bits.T)[upper], np.maximum(cosine, cosine.T)[upper])
    result: dict[str, object] = {"photos": len(photos), "distinct_pairs": len(false),
                                 "false_pairs": int(false.sum()),
                                 "false_positive_rate": float(false.mean())}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("resize", "jpeg", "crop", "flip"):
            paths = []
            for index, photo in enumerate(photos):
                copy, quality = _copy(Image.open(photo).convert("RGB"), kind, rng)
                paths.append(Path(tmp) / f"{kind}_{index}.jpg")
                copy.save(paths[-1], quality=quality)
            copy_hashes, copy_values = measure(paths)
            copy_views = normalise(copy_values, mean)
            distance = np.minimum(
                np.bitwise_count(hashes ^ copy_hashes[:, :1]).min(1),
                np.bitwise_count(copy_hashes ^ hashes[:, :1]).min(1))
            similarity = np.maximum((views[:, 0] * copy_views[:, 0]).sum(1),
                                    (views[:, 1] * copy_views[:, 0]).sum(1))
            result[f"recall_{kind}"] = float(accepted(distance, similarity).mean())
    return result


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", type=Path, required=True)
    parser.add_argument("--sizes", default="3670,100000")
    parser.add_argument("--crossover", default="10000,20000")
    parser.add_argument("--photos", type=int, default=750)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny sizes")
    args = parser.parse_args()
    sizes = [500, 2000] if args.quick else [int(s) for s in args.sizes.split(",")]
    photos = sorted(SHARED.glob("*/*.jpg"))[: 20 if args.quick else args.photos]
    crossings = [2000] if args.quick else [int(s) for s in args.crossover.split(",") if s]
    result = {"machine": machine(),
              "simulated": [simulated(n, 2 if args.quick or n > 10_000 else 20)
                            for n in sizes],
              "crossover": [crossover(n) for n in crossings]}
    if photos:
        result["calibration"] = calibration(args.backbone, photos,
                                            64 if args.quick else args.image_size)
    save("doctor", result)


if __name__ == "__main__":
    main()
