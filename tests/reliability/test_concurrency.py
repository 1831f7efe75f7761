"""Two processes, one feature store: both succeed and compute what one process computes.

Real processes, started together on the same data and ``--cache-dir``: two ``train`` runs,
and a ``train`` beside a ``doctor``. Their results must equal those of a process that had
the store to itself, and the store must hold only complete, verified shards, each under
its own name (no temporary file left, nothing set aside as damaged).
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

from support.cli import SMALL

from resnet_ft.features.shards import read_shard

TRAIN = ("--epochs", 2, "--val-split", 0.25, *SMALL)


def _start(*args: object) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "resnet_ft", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen) -> str:
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-2000:]
    return out


def _losses(run: Path) -> list[tuple[str, str, str]]:
    with (run / "history.csv").open(newline="") as handle:
        return [(r["epoch"], r["loss"], r["val_loss"]) for r in csv.DictReader(handle)]


def _assert_clean_store(cache: Path) -> None:
    files = [p for p in cache.rglob("*") if p.is_file()]
    shards = [p for p in files if p.suffix == ".shard"]
    assert shards and len(files) == len(shards), files  # no temporary or damaged files
    for shard in shards:
        read_shard(shard).verify()  # every one complete, its checksums right
    assert len({p.name for p in shards}) == len(shards)


def test_two_train_runs_share_a_store(flowers, backbone50, tmp_path, cli):
    cache = tmp_path / "shared"
    runs = [tmp_path / "a", tmp_path / "b"]
    started = [_start("train", flowers, "--backbone", backbone50, "-o", run, "--cache-dir",
                      cache, *TRAIN) for run in runs]
    for process in started:
        _finish(process)
    alone = cli("train", flowers, "--backbone", backbone50, "-o", tmp_path / "alone",
                "--cache-dir", tmp_path / "own", *TRAIN)
    assert alone.code == 0, alone.err
    expected = _losses(tmp_path / "alone")
    assert [_losses(run) for run in runs] == [expected, expected]
    _assert_clean_store(cache)


def test_train_beside_doctor(flowers, backbone50, tmp_path, cli):
    cache = tmp_path / "shared"
    common = ("--backbone", backbone50, "--cache-dir", cache, "--image-size", 48,
              "--precision", "float32", "--val-split", 0.25)
    doctor = _start("doctor", flowers, *common, "-o", tmp_path / "doctor", "--json")
    train = _start("train", flowers, "--backbone", backbone50, "-o", tmp_path / "run",
                   "--cache-dir", cache, *TRAIN)
    report = json.loads(_finish(doctor))
    _finish(train)
    alone = cli("doctor", flowers, *common[:2], "--cache-dir", tmp_path / "own", *common[4:],
                "-o", tmp_path / "doctor-alone", "--json")
    assert alone.code == 0, alone.err
    expected = json.loads(alone.out)
    kinds = ("exact_duplicates", "near_duplicates", "duplicate_groups", "label_issues", "slices",
             "outliers", "quality", "unreadable", "shape")
    assert {k: report[k] for k in kinds} == {k: expected[k] for k in kinds}
    _assert_clean_store(cache)
