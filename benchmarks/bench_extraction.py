"""Figure 3: feature extraction from JPEG files vs the backbone on the same images in memory.

"From files" is the product's extraction path (tf.data: parallel Pillow decode,
TF resize/crop, prefetch, batched backbone). "In memory" runs the same compiled
backbone function on the same images already decoded and resized. Target:
files >= 0.9x in-memory throughput (decoding hidden behind compute).

    python benchmarks/bench_extraction.py --backbone B.keras [--images N] [--repeats R] [--quick]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import dataset, machine, parser, save, stats


def main() -> None:
    args = parser(__doc__, images=128, quick_images=16).parse_args()

    from rich.console import Console

    from resnet_ft.data.folders import list_images
    from resnet_ft.data.preprocessing import Preprocessing, image_dataset
    from resnet_ft.features.engines.tensorflow import pooled_features
    from resnet_ft.features.extract import EXTRACT_BATCH, extract
    from resnet_ft.models.files import load_backbone

    backbone = load_backbone(args.backbone)
    spec = Preprocessing(args.image_size)
    quiet = Console(quiet=True)
    with tempfile.TemporaryDirectory() as tmp:
        paths = list_images(dataset(Path(tmp) / "data", args.images))
        pixels = np.concatenate([b.numpy() for b, _ in image_dataset(
            [str(p) for p in paths], spec).batch(EXTRACT_BATCH)])
        run = pooled_features(backbone, 1)
        extract(paths[:EXTRACT_BATCH], backbone, spec, views=1, cache=None, console=quiet)

        def from_files() -> float:
            started = time.perf_counter()
            extract(paths, backbone, spec, views=1, cache=None, console=quiet)
            return len(paths) / (time.perf_counter() - started)

        def in_memory() -> float:
            started = time.perf_counter()
            for start in range(0, len(pixels), EXTRACT_BATCH):
                run(pixels[start : start + EXTRACT_BATCH]).numpy()
            return len(paths) / (time.perf_counter() - started)

        files = stats([from_files() for _ in range(args.repeats)])
        memory = stats([in_memory() for _ in range(args.repeats)])
    save("extraction", {
        "machine": machine(), "images": args.images, "image_size": args.image_size,
        "batch": EXTRACT_BATCH, "files_images_per_s": files, "memory_images_per_s": memory,
        "ratio_files_over_memory": files["median"] / memory["median"],
    })


if __name__ == "__main__":
    main()
