"""Ctrl-C during training: the step finishes, state is saved, exit 130, --resume completes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from support.cli import SMALL, resume_one_more_epoch
from support.process import LineWatcher


def test_sigint_saves_state_and_resume_finishes(flowers, backbone50, tmp_path, cli):
    run = tmp_path / "run"
    args = [sys.executable, "-m", "resnet_ft", "train", str(flowers), "--backbone",
            str(backbone50), "-o", str(run), "--epochs", "30", "--no-cache", "--val-split",
            "0.25", *map(str, SMALL)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=env)
    watcher = LineWatcher(process)
    try:  # wait until at least one epoch is committed; fails (not hangs) on a silent child
        watcher.wait_for(lambda line: line.startswith("epoch 1/30"), timeout=240)
    except AssertionError:
        process.kill()
        raise
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=240)
    assert process.returncode == 130, err
    [message] = [line for line in err.splitlines() if line.strip()]
    assert message.startswith("error: interrupted; state saved after epoch ")
    assert "--resume" in message
    done = json.loads((run / "state" / "state.json").read_text())["epoch"]
    assert done >= 1
    assert (run / "model.keras").is_file()  # the best epoch so far is usable right away

    resume_one_more_epoch(cli, run, done)
