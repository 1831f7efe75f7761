"""Issue 8 target: a `--trainable block4` epoch of `train` itself vs one full forward pass.

Phase 2 of `--trainable block4` runs only block4 (forward and backward) on the
frozen stages' output, cached on disk as a float16 memmap. The figure is the
product's own phase-2 epoch, as `train` reports it in `history.csv` (a
`resnet-ft train --trainable block4 --head-epochs 0` run whose boundary cache
was filled by an earlier run, so the epoch reads the memmap from disk exactly
as a real run does), against one forward pass of the whole backbone over the
same images from their JPEG files at the same batch size. Both sides are
timed in every repeat, alternating which goes first. Target: <= 0.35.

    python benchmarks/bench_boundary.py --backbone B.keras [--images N] [--repeats R] [--quick]
"""

from __future__ import annotations

import csv
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import dataset, machine, parser, save, stats

BATCH = 16  # train's default batch size, used on both sides


def phase2_epoch(data: Path, backbone: Path, run: Path, cache: Path, size: int) -> float:
    """Seconds of the second phase-2 epoch of a `train` process (the first one traces)."""
    subprocess.run(
        [sys.executable, "-m", "resnet_ft", "train", str(data), "--backbone", str(backbone),
         "-o", str(run), "--cache-dir", str(cache), "--trainable", "block4", "--head-epochs",
         "0", "--epochs", "2", "--batch-size", str(BATCH), "--image-size", str(size),
         "--no-augment", "--overwrite"],
        check=True, stdout=subprocess.DEVNULL)
    with (run / "history.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["phase"] for r in rows] == ["2", "2"], rows
    return float(rows[1]["seconds"])


def main() -> None:
    args = parser(__doc__, images=96, quick_images=16).parse_args()

    from rich.console import Console

    from resnet_ft.data.folders import list_images
    from resnet_ft.data.preprocessing import Preprocessing
    from resnet_ft.features.extract import extract
    from resnet_ft.models.files import load_backbone

    quiet = Console(quiet=True)
    backbone = load_backbone(args.backbone)
    spec = Preprocessing(args.image_size)
    with tempfile.TemporaryDirectory() as tmp:
        data = dataset(Path(tmp) / "data", args.images)
        paths = list_images(data)
        cache = Path(tmp) / "cache"

        def epoch() -> float:
            return phase2_epoch(data, args.backbone, Path(tmp) / "run", cache, args.image_size)

        def forward() -> float:
            started = time.perf_counter()
            extract(paths, backbone, spec, views=1, cache=None, console=quiet,
                    batch_size=BATCH)
            return time.perf_counter() - started

        epoch()  # fills the feature and boundary caches; its timing is not used
        forward()  # warm-up: tracing, oneDNN primitives
        epochs, forwards = [], []
        for repeat in range(args.repeats):
            order = (epoch, forward) if repeat % 2 == 0 else (forward, epoch)
            times = {run: run() for run in order}
            epochs.append(times[epoch])
            forwards.append(times[forward])
    save("boundary", {
        "machine": machine(), "images": len(paths), "image_size": args.image_size,
        "batch": BATCH, "block4_epoch_s": stats(epochs), "full_forward_s": stats(forwards),
        "ratio_epoch_over_forward": statistics.median(
            e / f for e, f in zip(epochs, forwards, strict=True)),
    })


if __name__ == "__main__":
    main()
