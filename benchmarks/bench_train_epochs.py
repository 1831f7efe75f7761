"""Figures 1 and 2: the whole `resnet-ft train` process, timed from the shell.

1. 20 epochs vs 1 epoch, flip augmentation on, both on a cold feature cache
   (target: ratio <= 1.3); and the reference tutorial's loop, `--no-cache`
   (backbone every epoch), on a smaller set because it is ~20x slower.
2. A second run with other head hyper-parameters on the warm cache vs the
   cold run (target: <= 0.2).

    python benchmarks/bench_train_epochs.py --backbone B.keras [--images N] [--repeats R] [--quick]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OUT, dataset, machine, parser, save, stats


def train(data: Path, backbone: Path, run: Path, cache: Path, *extra: str) -> float:
    """Wall seconds of one `resnet-ft train` process."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "resnet_ft", "train", str(data), "--backbone", str(backbone),
         "-o", str(run), "--cache-dir", str(cache), *extra],
        check=True, stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def cached_figures(args, work: Path, size: tuple[str, str]) -> dict[str, list[float]]:
    """Figures 1 and 2 on the full set: cold 1 epoch, cold 20 epochs, warm rerun."""
    runs: dict[str, list[float]] = {"cold_1_epoch": [], "cold_20_epochs": [], "warm_rerun": []}
    data = dataset(work / "data", args.images)
    for repeat in range(args.repeats):
        cold = work / f"cache-{repeat}-a"
        runs["cold_1_epoch"].append(train(data, args.backbone, work / f"r{repeat}a",
                                          work / f"cache-{repeat}-b", "--epochs", "1", *size))
        runs["cold_20_epochs"].append(train(data, args.backbone, work / f"r{repeat}b", cold,
                                            "--epochs", "20", *size))
        runs["warm_rerun"].append(train(data, args.backbone, work / f"r{repeat}c", cold,
                                        "--epochs", "20", "--head-units", "512",
                                        "--dropout", "0.3", "--lr", "0.001", *size))
    return runs


def no_cache_figures(args, work: Path, size: tuple[str, str]) -> dict[str, list[float]]:
    """Figure 1b on a smaller set: cached 1 epoch vs the tutorial's loop for 20 epochs."""
    runs: dict[str, list[float]] = {"small_cold_1_epoch": [], "small_no_cache_20_epochs": []}
    small = dataset(work / "small", args.no_cache_images)
    for repeat in range(args.repeats):
        runs["small_cold_1_epoch"].append(train(small, args.backbone, work / f"s{repeat}a",
                                                work / f"cache-s{repeat}", "--epochs", "1",
                                                *size))
        runs["small_no_cache_20_epochs"].append(train(
            small, args.backbone, work / f"s{repeat}b", work / f"cache-n{repeat}",
            "--epochs", "20", "--no-cache", *size))
    return runs


def main() -> None:
    options = parser(__doc__, images=750, quick_images=20)
    options.add_argument("--no-cache-images", type=int, default=60,
                         help="images for the slow --no-cache run (at most --images)")
    options.add_argument("--only", choices=("cached", "no-cache"),
                         help="measure one group and keep the other's figures from the last run")
    args = options.parse_args()
    args.no_cache_images = min(args.no_cache_images, args.images // 2)
    size = ("--image-size", str(args.image_size))
    previous = OUT / "train_epochs.json"
    result = json.loads(previous.read_text()) if args.only and previous.exists() else {}
    figures = result.get("figures", {})
    with tempfile.TemporaryDirectory() as tmp:
        if args.only != "no-cache":
            figures.update({k: stats(v) for k, v in cached_figures(args, Path(tmp), size).items()})
            result.update(images=args.images)
        if args.only != "cached":
            figures.update({k: stats(v)
                            for k, v in no_cache_figures(args, Path(tmp), size).items()})
            result.update(no_cache_images=args.no_cache_images)

    def median(name: str) -> float:
        return figures[name]["median"]

    result.update({
        "machine": machine(), "image_size": args.image_size, "figures": figures,
        "ratio_20_over_1": median("cold_20_epochs") / median("cold_1_epoch"),
        "ratio_warm_over_cold": median("warm_rerun") / median("cold_20_epochs"),
        "ratio_no_cache_20_over_cached_1": (
            median("small_no_cache_20_epochs") / median("small_cold_1_epoch")),
    })
    save("train_epochs", result)


if __name__ == "__main__":
    main()
