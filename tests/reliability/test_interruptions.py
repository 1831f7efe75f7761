"""kill -9, full disks and read-only places: finished work is never lost or left torn."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time

import keras
from conftest import SMALL, assert_one_line_error, resume_one_more_epoch

from resnet_ft.models.files import load_model


def test_kill_9_then_resume(flowers, backbone101, tmp_path):
    run = tmp_path / "run"
    args = [sys.executable, "-m", "resnet_ft", "train", str(flowers), "--backbone",
            str(backbone101), "-o", str(run), "--epochs", "40", "--no-cache", "--val-split",
            "0.25", *map(str, SMALL)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True, env=env)
    deadline = time.monotonic() + 240
    for line in process.stdout:
        if line.startswith("epoch 2/40") or time.monotonic() > deadline:
            break
    time.sleep(0.3)  # land somewhere inside epoch 3
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    state = json.loads((run / "state" / "state.json").read_text())
    done = state["epoch"]
    assert done >= 2
    if (run / "model.keras").exists():  # whenever it exists, it is complete
        load_model(run / "model.keras")
    resume_one_more_epoch(run, done, env)
    load_model(run / "model.keras")
    assert not [p.name for p in (run / "state").iterdir() if p.name.startswith(".")]


def test_read_only_output_directory(cli, standin_checkpoint, flowers, backbone101):
    result = cli("convert", standin_checkpoint, "-o", "/proc/resnet_ft_test/backbone.keras")
    assert_one_line_error(result, "cannot write", code=1)
    result = cli("train", flowers, "--backbone", backbone101, "-o", "/proc/resnet_ft_run")
    assert result.code == 1 and len(result.error_lines) == 1, result.err
    assert result.error_lines[0].startswith("error: ")


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_disk_full_during_convert_leaves_nothing(cli, standin_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setattr(keras.Model, "save", _disk_full)
    out = tmp_path / "out" / "backbone.keras"
    result = cli("convert", standin_checkpoint, "-o", out)
    assert_one_line_error(result, "cannot write", "No space left on device", code=1)
    assert list(out.parent.iterdir()) == []


def test_disk_full_while_caching_leaves_no_torn_entry(flowers, backbone101, tmp_path, cli,
                                                      monkeypatch):
    import resnet_ft.util.atomic

    calls = {"n": 0}
    real_fsync = resnet_ft.util.atomic._fsync

    def fail_later(path):
        calls["n"] += 1
        if calls["n"] > 5:
            _disk_full()
        real_fsync(path)

    monkeypatch.setattr(resnet_ft.util.atomic, "_fsync", fail_later)
    cache = tmp_path / "cache"
    result = cli("train", flowers, "--backbone", backbone101, "-o", tmp_path / "run",
                 "--cache-dir", cache, *SMALL)
    assert_one_line_error(result, "No space left on device", code=1)
    entries = [p for p in cache.rglob("*") if p.is_file()]
    assert all(p.suffix in (".npy", ".err") and not p.name.startswith(".") for p in entries)
    assert len(entries) <= 5


def test_second_train_into_nonempty_dir(trained, cli):
    run, _ = trained
    refused = cli("train", "--config", run / "config.yaml", "-o", run)
    assert_one_line_error(refused, "not empty", "--resume", "--overwrite")
    assert (run / "model.keras").is_file()  # refusing did not touch the run
