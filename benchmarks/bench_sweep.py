"""Sweep: trials per minute on the shared flowers sample with a warm feature cache.

The cache is filled first (untimed, by one ``load_features`` pass: the sweep's
own reader); then ``sweep`` runs T trials in this process with 3-fold
cross-validation (the default) and with ``--folds 1``. Target: >= 20 trials/min
on 2 cores.

    python benchmarks/bench_sweep.py --backbone B.keras [--trials 20] [--quick]
"""

from __future__ import annotations

import io
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import dataset, machine, parser, save


def main() -> None:
    from rich.console import Console

    from resnet_ft.training.config import make_config
    from resnet_ft.tuning.features import load_features
    from resnet_ft.tuning.run import sweep

    options = parser(__doc__, images=750, quick_images=40)
    options.add_argument("--trials", type=int, default=20)
    args = options.parse_args()
    trials = 3 if args.images <= 40 else args.trials
    quiet = Console(file=io.StringIO())
    result: dict[str, object] = {"machine": machine(), "images": args.images,
                                 "image_size": args.image_size, "trials": trials}
    with tempfile.TemporaryDirectory() as tmp:
        data = dataset(Path(tmp) / "data", args.images)
        config = make_config({"data_dir": str(data), "backbone": str(args.backbone),
                              "cache_dir": str(Path(tmp) / "cache"),
                              "image_size": args.image_size})
        load_features(config, 2, quiet)  # warm the cache
        for folds in (3, 1):
            started = time.perf_counter()
            found = sweep(config, Path(tmp) / f"sweep{folds}", trials=trials, folds=folds,
                          console=quiet)
            minutes = (time.perf_counter() - started) / 60
            result[f"folds_{folds}"] = {"trials_per_min": trials / minutes,
                                        "best": found.best_score, "extracted": found.extracted}
    save("sweep", result)


if __name__ == "__main__":
    main()
