"""Benchmark: `train` with 20 epochs vs 1 epoch (both on a cold feature cache), and --no-cache.

The feature cache makes the backbone's single forward pass the whole cost of a
fine-tune; this measures how close `train` gets to that limit. Each figure is
the wall time of the whole `resnet-ft train` process.

    python benchmarks/bench_train_epochs.py --backbone B.keras [--images N] [--repeats R] [--quick]

Images: ../shared/data/flowers-sample when present (cycled to N), else generated ones.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "flowers-sample"


def dataset(root: Path, count: int) -> Path:
    """A class-per-folder set of ``count`` images: the shared sample cycled, or generated."""
    target = root / "data"
    if SHARED.is_dir():
        classes = [sorted(c.glob("*.jpg")) for c in sorted(SHARED.iterdir()) if c.is_dir()]
        for index in range(count):  # round-robin over classes, so any count is balanced
            files = classes[index % len(classes)]
            source = files[(index // len(classes)) % len(files)]
            dest = target / source.parent.name / f"{index:05d}_{source.name}"
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, dest)
    else:
        from resnet_ft.standin import write_standin_images

        write_standin_images(target, per_class=max(count // 5, 2), min_size=134, max_size=512)
    return target


def timed_train(data: Path, backbone: Path, work: Path, *extra: str) -> float:
    run = work / f"run-{time.monotonic_ns()}"
    cache = work / f"cache-{time.monotonic_ns()}"  # a fresh directory: a cold cache
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "resnet_ft", "train", str(data), "--backbone", str(backbone),
         "-o", str(run), "--cache-dir", str(cache), *extra],
        check=True, stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", type=Path, required=True)
    parser.add_argument("--images", type=int, default=750)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--quick", action="store_true", help="smoke run: 40 images, 1 repeat")
    parser.add_argument("--no-cache-run", action="store_true", help="also time --no-cache")
    args = parser.parse_args()
    if args.quick:
        args.images, args.repeats, args.image_size = 40, 1, 64
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = dataset(work, args.images)
        size = ("--image-size", str(args.image_size))
        figures: dict[str, list[float]] = {"epochs_1": [], "epochs_20": []}
        for _ in range(args.repeats):
            figures["epochs_1"].append(timed_train(data, args.backbone, work, "--epochs", "1",
                                                   *size))
            figures["epochs_20"].append(timed_train(data, args.backbone, work, "--epochs", "20",
                                                    *size))
        if args.no_cache_run:
            figures["no_cache_epochs_20"] = [timed_train(
                data, args.backbone, work, "--epochs", "20", "--no-cache", *size)]
    summary = {
        name: {"median": statistics.median(v), "min": min(v), "max": max(v), "runs": len(v)}
        for name, v in figures.items()
    }
    summary["ratio_20_over_1"] = summary["epochs_20"]["median"] / summary["epochs_1"]["median"]
    if "no_cache_epochs_20" in summary:
        summary["ratio_no_cache_20_over_1"] = (
            summary["no_cache_epochs_20"]["median"] / summary["epochs_1"]["median"])
    summary["images"], summary["image_size"] = args.images, args.image_size
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
