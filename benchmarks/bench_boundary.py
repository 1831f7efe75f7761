"""Issue 8 target: a `--trainable block4` epoch on the boundary cache vs one full forward pass.

Phase 2 of `--trainable block4` runs only block4 (forward and backward) on the
cached output of the frozen stages. This times one such epoch over N images
(batch 16, as `train` runs it) against one forward pass of the whole backbone
over the same images from their files. Target: <= 0.35.

    python benchmarks/bench_boundary.py --backbone B.keras [--images N] [--repeats R] [--quick]
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
    args = parser(__doc__, images=96, quick_images=16).parse_args()

    import tensorflow as tf
    from rich.console import Console

    from resnet_ft.data.folders import list_images
    from resnet_ft.data.preprocessing import Preprocessing
    from resnet_ft.features.boundary import compute_boundary
    from resnet_ft.features.extract import extract
    from resnet_ft.models.files import load_backbone
    from resnet_ft.models.head import build_head
    from resnet_ft.models.unfreeze import phase2_model, set_trainable, split_backbone
    from resnet_ft.training.config import TrainConfig
    from resnet_ft.training.sources import ArraySource
    from resnet_ft.training.step import make_optimizer
    from resnet_ft.training.step import train_step as _train_step

    quiet = Console(quiet=True)
    backbone = load_backbone(args.backbone)
    spec = Preprocessing(args.image_size)
    with tempfile.TemporaryDirectory() as tmp:
        paths = list_images(dataset(Path(tmp) / "data", args.images))
        set_trainable(backbone, "block4")
        lower, upper = split_backbone(backbone, "block4")
        shape = lower.compute_output_shape((1, args.image_size, args.image_size, 3))[1:]
        boundary = np.zeros((len(paths), 1, *shape), np.float16)
        compute_boundary(lower, paths, 1, spec, boundary, quiet, "boundary")
        model = phase2_model(upper, build_head(5, units=1024, dropout=0.5))
        optimizer = make_optimizer(TrainConfig(), 1e-5)
        optimizer.build(model.trainable_variables)
        step = _train_step(model, optimizer, np.ones(5, np.float32), 0.0,
                           tf.distribute.get_strategy())
        source = ArraySource(boundary, boundary)
        labels = np.arange(len(paths)) % 5
        order, views = np.arange(len(paths)), np.zeros(len(paths), np.int64)

        def epoch() -> float:
            started = time.perf_counter()
            seen = 0
            for x in source.batches(order, views, 16):
                step(x, labels[seen : seen + len(x)])
                seen += len(x)
            return time.perf_counter() - started

        def forward() -> float:
            started = time.perf_counter()
            extract(paths, backbone, spec, views=1, cache=None, console=quiet)
            return time.perf_counter() - started

        epoch()  # warm-up: tracing
        forward()
        epochs = stats([epoch() for _ in range(args.repeats)])
        forwards = stats([forward() for _ in range(args.repeats)])
    save("boundary", {"machine": machine(), "images": args.images, "image_size": args.image_size,
                      "block4_epoch_s": epochs, "full_forward_s": forwards,
                      "ratio_epoch_over_forward": epochs["median"] / forwards["median"]})


if __name__ == "__main__":
    main()
