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
from support.cli import SMALL, assert_one_line_error, resume_one_more_epoch
from support.process import LineWatcher

from resnet_ft.models.files import load_model


def test_kill_9_then_resume(flowers, backbone50, tmp_path, cli):
    """A second writer is refused while the run is alive; a killed run's lock blocks nothing."""
    run = tmp_path / "run"
    args = [sys.executable, "-m", "resnet_ft", "train", str(flowers), "--backbone",
            str(backbone50), "-o", str(run), "--epochs", "40", "--no-cache", "--val-split",
            "0.25", *map(str, SMALL)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True, env=env)
    watcher = LineWatcher(process)
    try:
        watcher.wait_for(lambda line: line.startswith("epoch 2/40"), timeout=240)
        second = cli("train", "-o", run, "--resume", "--epochs", 41)
        assert_one_line_error(second, f"run directory {run} is being written by another "
                              f"resnet-ft process (pid {process.pid})")
        again = cli("train", flowers, "--backbone", backbone50, "-o", run, "--overwrite")
        assert_one_line_error(again, f"pid {process.pid}")
        time.sleep(0.3)  # land somewhere inside epoch 3
    finally:
        process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    state = json.loads((run / "state" / "state.json").read_text())
    done = state["epoch"]
    assert done >= 2
    if (run / "model.keras").exists():  # whenever it exists, it is complete
        load_model(run / "model.keras")
    resume_one_more_epoch(cli, run, done)
    load_model(run / "model.keras")
    assert not [p.name for p in (run / "state").iterdir() if p.name.startswith(".")]


def test_read_only_output_directory(cli, standin_checkpoint, flowers, backbone50):
    result = cli("convert", standin_checkpoint, "-o", "/proc/resnet_ft_test/backbone.keras")
    assert_one_line_error(result, "cannot write", code=1)
    result = cli("train", flowers, "--backbone", backbone50, "-o", "/proc/resnet_ft_run")
    assert result.code == 1 and len(result.error_lines) == 1, result.err
    assert result.error_lines[0].startswith("error: ")


def test_really_read_only_mount(standin_checkpoint, flowers, backbone50, tmp_path):
    """A read-only tmpfs, mounted in a private mount namespace (chmod does not stop root)."""
    target = tmp_path / "ro"
    target.mkdir()
    python = f"{sys.executable} -m resnet_ft"
    script = (
        f"mount -t tmpfs -o ro,size=1m tmpfs {target} || exit 99; "
        f"{python} convert {standin_checkpoint} -o {target}/b.keras 2> {tmp_path}/convert.err; "
        f"echo $? > {tmp_path}/convert.code; "
        f"{python} train {flowers} --backbone {backbone50} -o {target}/run "
        f"--image-size 48 2> {tmp_path}/train.err; echo $? > {tmp_path}/train.code; "
        f"ls -A {target} > {tmp_path}/left"
    )
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    for command, fragment in (("convert", "Read-only file system"),
                              ("train", "Read-only file system")):
        assert (tmp_path / f"{command}.code").read_text().strip() == "1"
        lines = [x for x in (tmp_path / f"{command}.err").read_text().splitlines() if x.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), lines
        assert fragment in lines[0] and "Traceback" not in lines[0]
    assert (tmp_path / "left").read_text() == ""  # nothing was written, not even a temp file


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_disk_full_during_convert_leaves_nothing(cli, standin_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setattr(keras.Model, "save", _disk_full)
    out = tmp_path / "out" / "backbone.keras"
    result = cli("convert", standin_checkpoint, "-o", out)
    assert_one_line_error(result, "cannot write", "No space left on device", code=1)
    assert list(out.parent.iterdir()) == []


def test_disk_full_while_caching_leaves_no_torn_entry(flowers, backbone50, tmp_path, cli,
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
    result = cli("train", flowers, "--backbone", backbone50, "-o", tmp_path / "run",
                 "--cache-dir", cache, *SMALL)
    assert_one_line_error(result, "No space left on device", code=1)
    entries = [p for p in cache.rglob("*") if p.is_file()]
    assert all(p.suffix == ".shard" and not p.name.startswith(".") for p in entries)
    monkeypatch.setattr(resnet_ft.util.atomic, "_fsync", real_fsync)  # space again
    again = cli("train", flowers, "--backbone", backbone50, "-o", tmp_path / "run2",
                "--cache-dir", cache, *SMALL)
    assert again.code == 0, again.err


def test_second_train_into_nonempty_dir(trained, cli):
    run, _ = trained
    # --precision auto: nothing is said about the run it refuses (the error is the one line)
    refused = cli("train", "--config", run / "config.yaml", "-o", run, "--precision", "auto")
    assert_one_line_error(refused, "not empty", "--resume", "--overwrite")
    assert refused.out == ""
    assert (run / "model.keras").is_file()  # refusing did not touch the run
