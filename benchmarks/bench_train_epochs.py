"""Figures 1 and 2: the whole `resnet-ft train` process, timed from the shell.

1. 20 epochs vs 1 epoch, flip augmentation on, both on a cold feature cache
   (target: ratio <= 1.3); and the reference tutorial's loop, `--no-cache`
   (backbone every epoch), on a smaller set because it is ~20x slower.
2. A second run with other head hyper-parameters on the warm cache vs the
   cold run (target: <= 0.2).

    python benchmarks/bench_train_epochs.py --backbone B.keras [--images N] [--repeats R] [--quick]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import dataset, machine, parser, save, stats


def train(data: Path, backbone: Path, run: Path, cache: Path, *extra: str) -> float:
    """Wall seconds of one `resnet-ft train` process."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "resnet_ft", "train", str(data), "--backbone", str(backbone),
         "-o", str(run), "--cache-dir", str(cache), *extra],
        check=True, stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def main() -> None:
    options = parser(__doc__, images=750, quick_images=20)
    options.add_argument("--no-cache-images", type=int, default=60,
                         help="images for the slow --no-cache run (at most --images)")
    args = options.parse_args()
    args.no_cache_images = min(args.no_cache_images, args.images // 2)
    size = ("--image-size", str(args.image_size))
    runs: dict[str, list[float]] = {"cold_1_epoch": [], "cold_20_epochs": [], "warm_rerun": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
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
        small = dataset(work / "small", args.no_cache_images)
        runs["small_cold_1_epoch"] = [train(small, args.backbone, work / "s1",
                                            work / "cache-s", "--epochs", "1", *size)]
        runs["small_no_cache_20_epochs"] = [train(small, args.backbone, work / "s2",
                                                  work / "cache-s2", "--epochs", "20",
                                                  "--no-cache", *size)]
    figures = {name: stats(values) for name, values in runs.items()}

    def median(name: str) -> float:
        return figures[name]["median"]

    save("train_epochs", {
        "machine": machine(), "images": args.images, "image_size": args.image_size,
        "no_cache_images": args.no_cache_images, "figures": figures,
        "ratio_20_over_1": median("cold_20_epochs") / median("cold_1_epoch"),
        "ratio_warm_over_cold": median("warm_rerun") / median("cold_20_epochs"),
        "ratio_no_cache_20_over_cached_1": (
            median("small_no_cache_20_epochs") / median("small_cold_1_epoch")),
    })


if __name__ == "__main__":
    main()
