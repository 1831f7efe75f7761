"""Experiment: settings that might speed up `auto` extraction further (kept only if they help).

Each setting runs in a fresh process (environment variables and thread pools
are fixed when TensorFlow starts): the shipped extractor (BN folded, the
precision ``auto`` picks) on the same random batches at 224 px. The settings
run in alternating order over ``--passes`` passes and each figure is the
median images/s over the passes' timed calls.

    python benchmarks/bench_bf16_knobs.py --backbone B.keras [--passes 2] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, save

#: name -> (environment additions, batch size, intra-op threads or 0 for TensorFlow's default)
SETTINGS = {
    "shipped (batch 32)": ({}, 32, 0),
    "batch 16": ({}, 16, 0),
    "batch 64": ({}, 64, 0),
    "TF_ONEDNN_ASSUME_FROZEN_WEIGHTS=1": ({"TF_ONEDNN_ASSUME_FROZEN_WEIGHTS": "1"}, 32, 0),
    "intra-op threads = 1": ({}, 32, 1),
}

CHILD = """
import json, sys, time
import numpy as np
import tensorflow as tf
backbone, batch, threads, size, calls = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \\
    int(sys.argv[4]), int(sys.argv[5])
if threads:
    tf.config.threading.set_intra_op_parallelism_threads(threads)
from resnet_ft.models.files import backbone_metadata, load_backbone
from resnet_ft.models.folding import folded_copy
from resnet_ft.models.precision import policy, resolve_precision
with policy(resolve_precision("auto")[0]):
    model = folded_copy(load_backbone(backbone), backbone_metadata(backbone))
run = tf.function(lambda x: model(x, training=False))
x = np.random.default_rng(0).uniform(0, 255, (batch, size, size, 3)).astype(np.float32)
run(x); run(x)
rates = []
for _ in range(calls):
    began = time.perf_counter()
    np.asarray(run(x))
    rates.append(batch / (time.perf_counter() - began))
print(json.dumps(rates))
"""


def measure(backbone: Path, name: str, size: int, calls: int) -> list[float]:
    env, batch, threads = SETTINGS[name]
    out = subprocess.run([sys.executable, "-c", CHILD, str(backbone), str(batch), str(threads),
                          str(size), str(calls)], env={**os.environ, **env}, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", type=Path, required=True)
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    size, calls = (96, 2) if args.quick else (224, 4)
    rates: dict[str, list[float]] = {name: [] for name in SETTINGS}
    for number in range(1 if args.quick else args.passes):
        order = list(SETTINGS) if number % 2 == 0 else list(reversed(SETTINGS))
        for name in order:
            rates[name] += measure(args.backbone, name, size, calls)
    save("bf16_knobs", {"machine": machine(), "size": size,
                        "images_per_s": {k: statistics.median(v) for k, v in rates.items()}})


if __name__ == "__main__":
    main()
