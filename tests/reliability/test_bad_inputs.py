"""Messy folders: train, predict, evaluate and the feature cache never crash on bad files."""

from __future__ import annotations

import csv
import json
import re

import pytest
from support.cli import SMALL, assert_one_line_error
from support.corpus import CLASSES, build

from resnet_ft.data.images import decode_image


@pytest.fixture(scope="module")
def corpus(module_tmp):
    return build(module_tmp("messy") / "data")


@pytest.fixture(scope="module")
def messy_run(corpus, backbone50, module_tmp):
    from resnet_ft.cli import main

    work = module_tmp("messy_run")
    args = ["train", corpus.root, "--backbone", backbone50, "-o", work / "run", "--epochs", 1,
            "--val-split", 0.3, "--cache-dir", work / "cache", *SMALL]
    assert main([str(a) for a in args]) == 0
    return work


def _skipped(run):
    return {row["file"]: row["reason"] for row in csv.DictReader((run / "skipped.csv").open())}


def test_train_completes_on_every_decodable_image(corpus, messy_run):
    run = messy_run / "run"
    assert json.loads((run / "labels.json").read_text()) == CLASSES
    skipped = _skipped(run)
    assert set(skipped) == {str(p) for p in corpus.bad}
    for path, reason in corpus.bad.items():
        assert skipped[str(path)].startswith(reason), (path, skipped[str(path)])
    split = list(csv.DictReader((run / "split.csv").open()))
    assert len(split) == corpus.decodable + len(corpus.bad)  # nothing else was dropped
    assert not any("loop" in row["file"] or "self" in row["file"] for row in split)


def test_exif_rotation_is_applied(corpus):
    rotated = next(p for p in corpus.odd if p.name == "rotated.jpg")
    assert decode_image(rotated).shape == (64, 48, 3)  # stored 64 wide x 48 high


def test_train_prints_report_and_strict_refuses(corpus, backbone50, messy_run, cli):
    args = ("train", corpus.root, "--backbone", backbone50, "--epochs", 1, "--val-split", 0.3,
            "--cache-dir", messy_run / "cache", *SMALL)
    again = cli(*args, "-o", messy_run / "again")
    assert again.code == 0, again.err
    assert "extracting features" not in again.out  # failures were cached too
    assert f"skipped {len(corpus.bad)} file(s)" in again.out
    assert "ignoring folder(s) without images: empty" in again.out
    for path in corpus.bad:
        assert str(path) in again.out
    strict = cli(*args, "-o", messy_run / "strict", "--strict")
    assert_one_line_error(strict, "--strict", f"{len(corpus.bad)} file(s) cannot be decoded")


def test_predict_each_bad_file(corpus, messy_run, cli):
    good = corpus.odd[:2]
    for bad, reason in corpus.bad.items():
        result = cli("predict", messy_run / "run", *good, bad, "--json")
        assert result.code == 1
        entries = json.loads(result.out)
        assert [e.get("label") is not None for e in entries] == [True, True, False]
        assert entries[2]["error"].startswith(reason)
        assert [line for line in result.err.splitlines() if line] == [
            f"error: {bad}: {entries[2]['error']}"]


def test_predict_odd_files_all_succeed(corpus, messy_run, cli):
    result = cli("predict", messy_run / "run", *corpus.odd, "--json")
    assert result.code == 0, result.err
    assert all("label" in e for e in json.loads(result.out))


def test_evaluate_skips_bad_files(corpus, messy_run, cli):
    result = cli("evaluate", messy_run / "run", corpus.root, "--json", "-o",
                 messy_run / "eval")
    assert result.code == 0, result.err
    assert json.loads(result.out)["n"] == corpus.decodable
    for path in corpus.bad:
        assert f"skipped {path}" in result.err


def test_torn_cache_entry_is_never_served(corpus, backbone50, messy_run, cli, tmp_path):
    cache = tmp_path / "cache"
    args = ("train", corpus.root, "--backbone", backbone50, "--epochs", 1, "--val-split", 0.3,
            "--no-augment", "--cache-dir", cache, *SMALL)
    first = cli(*args, "-o", tmp_path / "first")
    assert first.code == 0, first.err
    progress = re.search(r"extracting features: (\d+)/\1", first.out).group(0)
    shard, = cache.rglob("*.shard")  # the whole corpus fits in one shard
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])  # the disk lost its tail
    second = cli(*args, "-o", tmp_path / "second")
    assert second.code == 0, second.err
    assert progress in second.out  # every entry recomputed, none served from the torn shard
    third = cli(*args, "-o", tmp_path / "third")
    assert third.code == 0 and "extracting features" not in third.out  # the new shard serves
