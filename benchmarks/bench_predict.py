"""Figure 6: `resnet-ft predict` on one image, whole process, and where the time goes.

Reports the wall time of `resnet-ft predict RUN IMAGE --json` from the shell,
its split (Python + TensorFlow import, model load, inference) measured in a
separate process doing the same steps, and `resnet-ft --help` (must not
import TensorFlow; target < 1 s).

    python benchmarks/bench_predict.py --run RUN_DIR --image IMG [--repeats R]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, save, stats

PHASES = """
import json, sys, time
t0 = time.perf_counter()
import tensorflow, keras
t1 = time.perf_counter()
from resnet_ft.inference.loaders import load_predictor
from resnet_ft.inference.predict import predict_files
predictor = load_predictor(sys.argv[1])
t2 = time.perf_counter()
predict_files(predictor, [__import__("pathlib").Path(sys.argv[2])])
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "load": t2 - t1, "inference": t3 - t2}))
"""


def wall(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--image", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.repeats = 1
    cli = [sys.executable, "-m", "resnet_ft"]
    whole = [wall([*cli, "predict", str(args.run), str(args.image), "--json"])
             for _ in range(args.repeats)]
    help_times = [wall([*cli, "--help"]) for _ in range(args.repeats)]
    phases = [json.loads(subprocess.run(
        [sys.executable, "-c", PHASES, str(args.run), str(args.image)], check=True,
        capture_output=True, text=True).stdout.strip().splitlines()[-1])
        for _ in range(args.repeats)]
    save("predict", {
        "machine": machine(),
        "predict_one_image_s": stats(whole),
        "help_s": stats(help_times),
        "phases_s": {name: stats([p[name] for p in phases]) for name in phases[0]},
    })


if __name__ == "__main__":
    main()
