"""tf.distribute: 2 mirrored replicas and a 2-worker cluster train what one device trains."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys

import numpy as np
import pytest

from resnet_ft.cli import main
from resnet_ft.runs.run import load_classifier

#: Same seeded global batches and no dropout (per-replica masks would differ from one
#: device's); what remains is float summation order across replicas.
COMMON = ("--epochs", 2, "--no-augment", "--dropout", 0, "--seed", 1, "--val-split", 0.25,
          "--image-size", 48, "--precision", "float32")
TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}


def _head_weights(run):
    model, _ = load_classifier(run)
    return model.get_layer("head").get_weights()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _train_process(args, env_extra, out):
    env = dict(os.environ, **env_extra)
    command = [sys.executable, "-m", "resnet_ft", "train", *map(str, args)]
    return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def one_device(flowers, backbone50, module_tmp):
    """The reference both strategies must reproduce: one device, the global batch of 8."""
    run = module_tmp("one-device") / "run"
    args = ("train", flowers, "--backbone", backbone50, *COMMON, "-o", run, "--batch-size", 8,
            "--cache-dir", run.parent / "cache")
    assert main([str(a) for a in args]) == 0
    return run


@pytest.fixture(scope="module")
def one_device_head(one_device):
    """The reference run's head weights, read once for both tests."""
    return _head_weights(one_device)


def test_mirrored_two_replicas_match_one_device(flowers, backbone50, one_device_head,
                                                 tmp_path):
    base = (flowers, "--backbone", backbone50, *COMMON)
    with open(tmp_path / "mirrored.log", "w") as log:
        process = _train_process(
            (*base, "-o", tmp_path / "two", "--batch-size", 4, "--strategy", "mirrored",
             "--cache-dir", tmp_path / "c2"), {"RESNET_FT_CPU_DEVICES": "2"}, log)
        assert process.wait(timeout=300) == 0, (tmp_path / "mirrored.log").read_text()
    assert "2 replicas, global batch 8" in (tmp_path / "mirrored.log").read_text()
    for ours, ref in zip(_head_weights(tmp_path / "two"), one_device_head, strict=True):
        np.testing.assert_allclose(ours, ref, **TOLERANCE)


def test_two_workers_on_localhost_agree(flowers, backbone50, one_device, one_device_head,
                                        tmp_path):
    """Two workers x batch 4 train what one device trains on the same global batch of 8.

    Comparing the workers with each other would pass if they never talked (each would
    train alone on the same seeded data); comparing with one device at batch 8 fails
    unless the gradients were really summed across the two workers. Extraction is
    divided: each worker decodes its half of the files into the shared store.
    """
    ports = [_free_port(), _free_port()]
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    processes, logs = [], []
    for index in range(2):
        config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        log = open(tmp_path / f"worker{index}.log", "w")  # noqa: SIM115 (closed below)
        logs.append(log)
        processes.append(_train_process(
            (flowers, "--backbone", backbone50, *COMMON, "-o", tmp_path / "run",
             "--batch-size", 4, "--strategy", "multi-worker", "--cache-dir",
             tmp_path / "shared"), {"TF_CONFIG": config}, log))
    try:
        codes = [p.wait(timeout=300) for p in processes]
    finally:
        for process in processes:
            process.kill()
        for log in logs:
            log.close()
    assert codes == [0, 0], [(tmp_path / f"worker{i}.log").read_text()[-2000:] for i in (0, 1)]
    files = len(list(flowers.rglob("*.jpg")))
    decoded = []
    for index in range(2):
        log = (tmp_path / f"worker{index}.log").read_text()
        assert ": 2 replicas, global batch 8" in log
        counts = re.findall(rf"extracting features \(worker {index + 1} of 2\): (\d+)/\1", log)
        decoded.append(int(counts[-1]))
        assert "not in the shared store" not in log  # nothing was decoded twice
    assert sum(decoded) == files and abs(decoded[0] - decoded[1]) <= 1, decoded
    for run in ("run", "run.worker-1"):
        for ours, ref in zip(_head_weights(tmp_path / run), one_device_head, strict=True):
            np.testing.assert_allclose(ours, ref, **TOLERANCE)
    histories = [(name / "history.csv").read_text().splitlines()
                 for name in (tmp_path / "run", tmp_path / "run.worker-1", one_device)]
    losses = [[line.split(",")[2] for line in history[1:]] for history in histories]
    assert losses[0] == losses[1]  # the workers computed identical losses, epoch by epoch
    for ours, ref in zip(losses[0], losses[2], strict=True):
        assert abs(float(ours) - float(ref)) <= 1e-4
