"""Sweep: trials per minute on the shared flowers sample with a warm feature cache.

The cache is filled first (untimed, by one ``load_features`` pass: the sweep's
own reader); then ``sweep`` runs T trials in this process with 3-fold
cross-validation (the default) and with ``--folds 1``, each twice: as the CLI
runs it (median pruning: a pruned trial ends early and counts as a trial) and
with pruning off (every trial runs all its epochs). Reported per run: trials
per minute of the search (the winner's confirmation by ``train``'s own loop,
run once at the end, is timed apart), how many trials were pruned, and the
epochs trained against the epochs drawn. Target: >= 20 trials/min on 2 cores.

    python benchmarks/bench_sweep.py --backbone B.keras [--trials 20] [--quick]
"""

from __future__ import annotations

import csv
import io
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import dataset, machine, parser, save


def one_sweep(config: object, out: Path, trials: int, folds: int,
              prune: bool) -> dict[str, object]:
    """One sweep's speed, pruning and confirmation figures."""
    from rich.console import Console

    from resnet_ft.tuning.run import sweep

    started = time.perf_counter()
    found = sweep(config, out, trials=trials, folds=folds, prune=prune,
                  console=Console(file=io.StringIO()))
    seconds = time.perf_counter() - started
    confirm = found.confirmed.get("seconds", 0.0)
    with open(out / "trials.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["state"] in ("complete", "pruned")]
    return {
        "trials_per_min": trials / ((seconds - confirm) / 60),
        "trials_per_min_with_confirmation": trials / (seconds / 60),
        "search_s": seconds - confirm, "confirmation_s": confirm,
        "pruned": found.pruned, "complete": trials - found.pruned,
        "epochs_trained": sum(int(r["epochs_done"]) for r in rows),
        "epochs_drawn": sum(int(r["epochs"]) for r in rows),
        "best": found.best_score, "best_confirmed": found.confirmed.get("score_mean"),
        "extracted": found.extracted,
    }


def main() -> None:
    from rich.console import Console

    from resnet_ft.config import make_config
    from resnet_ft.training.crossval.features import load_features

    options = parser(__doc__, images=750, quick_images=40)
    options.add_argument("--trials", type=int, default=20)
    args = options.parse_args()
    trials = 3 if args.images <= 40 else args.trials
    result: dict[str, object] = {"machine": machine(), "images": args.images,
                                 "image_size": args.image_size, "trials": trials,
                                 "load_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        data = dataset(Path(tmp) / "data", args.images)
        config = make_config({"data_dir": str(data), "backbone": str(args.backbone),
                              "cache_dir": str(Path(tmp) / "cache"),
                              "image_size": args.image_size})
        load_features(config, 2, Console(file=io.StringIO()))  # warm the cache
        for folds in (3, 1):
            for prune in (True, False):
                name = f"folds_{folds}" + ("" if prune else "_no_pruning")
                result[name] = one_sweep(config, Path(tmp) / name, trials, folds, prune)
    result["load_after"] = os.getloadavg()[0]
    save("sweep", result)


if __name__ == "__main__":
    main()
