"""Ctrl-C during training: the step finishes, state is saved, exit 130, --resume completes."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

from conftest import SMALL


def test_sigint_saves_state_and_resume_finishes(flowers, backbone101, tmp_path):
    run = tmp_path / "run"
    args = [sys.executable, "-m", "resnet_ft", "train", str(flowers), "--backbone",
            str(backbone101), "-o", str(run), "--epochs", "30", "--no-cache", "--val-split",
            "0.25", *map(str, SMALL)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=env)
    deadline = time.monotonic() + 240
    lines = []
    for line in process.stdout:  # wait until at least one epoch is committed
        lines.append(line)
        if line.startswith("epoch 1/30") or time.monotonic() > deadline:
            break
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=240)
    assert process.returncode == 130, err
    [message] = [line for line in err.splitlines() if line.strip()]
    assert message.startswith("error: interrupted; state saved after epoch ")
    assert "--resume" in message
    done = json.loads((run / "state" / "state.json").read_text())["epoch"]
    assert done >= 1
    assert (run / "model.keras").is_file()  # the best epoch so far is usable right away

    resumed = subprocess.run(
        [sys.executable, "-m", "resnet_ft", "train", "-o", str(run), "--resume", "--epochs",
         str(done + 1)], capture_output=True, text=True, env=env, timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    epochs = [row["epoch"] for row in csv.DictReader((run / "history.csv").open())]
    assert epochs == [str(e) for e in range(1, done + 2)]
