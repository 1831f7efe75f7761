"""Figures 1 and 2: the whole `resnet-ft train` process, timed from the shell.

1. 20 epochs vs 1 epoch, flip augmentation on, both on a cold feature cache
   (target: ratio <= 1.3); and the reference tutorial's loop, `--no-cache`
   (backbone every epoch), on a smaller set because it is ~20x slower.
2. A second run with other head hyper-parameters on the warm cache vs the
   cold run (target: <= 0.2).

Like with like: every run trains the same head (1024 units; the warm rerun
changes only learning rate and dropout, which cost nothing), the image files
are read once before any timed run so no run pays for a cold OS page cache,
the order of the runs alternates between repeats, and each ratio is the
median of the ratios of runs paired within one repeat.

    python benchmarks/bench_train_epochs.py --backbone B.keras [--images N] [--repeats R] [--quick]
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
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


def warm_os_cache(data: Path) -> None:
    """Read every image once, so that no timed run pays for the disk."""
    for path in data.rglob("*"):
        if path.is_file():
            path.read_bytes()


def alternating(runs: dict[str, Callable[[], float]], repeat: int) -> dict[str, float]:
    """Time every run once, in the given order on even repeats and reversed on odd ones."""
    names = list(runs) if repeat % 2 == 0 else list(reversed(runs))
    return {name: runs[name]() for name in names}


def cached_figures(args, work: Path, size: tuple[str, str]) -> dict[str, list[float]]:
    """Figures 1 and 2 on the full set: cold 1 epoch, cold 20 epochs, warm rerun."""
    runs: dict[str, list[float]] = {"cold_1_epoch": [], "cold_20_epochs": [], "warm_rerun": []}
    data = dataset(work / "data", args.images)
    warm_os_cache(data)
    for repeat in range(args.repeats):
        cold = work / f"cache-{repeat}-a"
        times = alternating({
            "cold_1_epoch": partial(train, data, args.backbone, work / f"r{repeat}a",
                                    work / f"cache-{repeat}-b", "--epochs", "1", *size),
            "cold_20_epochs": partial(train, data, args.backbone, work / f"r{repeat}b", cold,
                                      "--epochs", "20", *size),
        }, repeat)
        times["warm_rerun"] = train(data, args.backbone, work / f"r{repeat}c", cold, "--epochs",
                                    "20", "--dropout", "0.3", "--lr", "0.001", *size)
        for name, seconds in times.items():
            runs[name].append(seconds)
    return runs


def no_cache_figures(args, work: Path, size: tuple[str, str]) -> dict[str, list[float]]:
    """Figure 1b on a smaller set: cached 1 epoch vs the tutorial's loop for 20 epochs."""
    runs: dict[str, list[float]] = {"small_cold_1_epoch": [], "small_no_cache_20_epochs": []}
    small = dataset(work / "small", args.no_cache_images)
    warm_os_cache(small)
    for repeat in range(args.repeats):
        times = alternating({
            "small_cold_1_epoch": partial(train, small, args.backbone, work / f"s{repeat}a",
                                          work / f"cache-s{repeat}", "--epochs", "1", *size),
            "small_no_cache_20_epochs": partial(
                train, small, args.backbone, work / f"s{repeat}b", work / f"cache-n{repeat}",
                "--epochs", "20", "--no-cache", *size),
        }, repeat)
        for name, seconds in times.items():
            runs[name].append(seconds)
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
    measured: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.only != "no-cache":
            measured.update(cached_figures(args, Path(tmp), size))
            result.update(images=args.images)
        if args.only != "cached":
            measured.update(no_cache_figures(args, Path(tmp), size))
            result.update(no_cache_images=args.no_cache_images)
    figures.update({k: stats(v) for k, v in measured.items()})

    def paired(top: str, bottom: str) -> float:
        """Median over repeats of the ratio of two runs made in the same repeat."""
        return statistics.median(a / b for a, b in zip(raw[top], raw[bottom], strict=True))

    raw = result.setdefault("raw", {})
    raw.update({k: list(v) for k, v in measured.items()})
    result.update({
        "machine": machine(), "image_size": args.image_size, "figures": figures,
        "ratio_20_over_1": paired("cold_20_epochs", "cold_1_epoch"),
        "ratio_warm_over_cold": paired("warm_rerun", "cold_20_epochs"),
        "ratio_no_cache_20_over_cached_1": paired("small_no_cache_20_epochs",
                                                  "small_cold_1_epoch"),
    })
    save("train_epochs", result)


if __name__ == "__main__":
    main()
