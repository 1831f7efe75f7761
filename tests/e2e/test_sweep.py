"""``sweep``: trials train heads as ``train`` does, and a killed sweep resumes without repeats."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml
from support.cli import SMALL, assert_one_line_error

SWEEP = ("--image-size", 48, "--val-split", 0.25)
#: The preprocessing and precision of the ``trained`` fixture: its cache serves these sweeps.
WARM = (*SMALL[:2], "--precision", "float32")


def _trials(sweep_dir):
    with open(sweep_dir / "trials.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _finished(sweep_dir):
    return [r for r in _trials(sweep_dir) if r["state"] in ("complete", "pruned")]


@pytest.fixture(scope="module")
def swept(trained, flowers, backbone50, module_tmp):
    """Four trials scored on train's validation split (--folds 1), on the warm cache."""
    from resnet_ft.cli import main

    _, cache = trained
    out = module_tmp("sweeps") / "flowers"
    args = ["sweep", flowers, "--backbone", backbone50, "-o", out, "--trials", 4, "--folds", 1,
            "--cache-dir", cache, *SWEEP]
    assert main([str(a) for a in args]) == 0
    return out, cache


def test_sweep_directory_contents(swept):
    out, _ = swept
    rows = _trials(out)
    assert [r["number"] for r in rows] == ["0", "1", "2", "3"]
    assert {"lr", "dropout", "head_units", "label_smoothing", "weight_decay", "optimizer",
            "epochs", "class_weight", "score_mean", "score_std"} <= set(rows[0])
    assert all(r["state"] in ("complete", "pruned") for r in rows)
    assert (out / "importance.png").read_bytes()[:4] == b"\x89PNG"
    best = yaml.safe_load((out / "best.yaml").read_text())
    complete = [r for r in rows if r["state"] == "complete"]
    winner = max(complete, key=lambda r: float(r["score_mean"]))
    assert best["lr"] == pytest.approx(float(winner["lr"]), rel=1e-5)
    assert best["epochs"] == int(winner["epochs"]) and best["optimizer"] == winner["optimizer"]


def test_best_trial_reproduces_through_train(swept, cli, tmp_path):
    """The sweep confirms its winner with train's own loop (same seed, same split), and
    ``train --config best.yaml`` reproduces that confirmed score: accuracy and best epoch
    exactly, val_loss to 1e-4 relative (oneDNN may reorder float32 sums between processes).

    The search's own score comes from the compiled trainer: train's arithmetic up to float32
    rounding, which Adam can amplify on barely separable features (docs/commands/sweep.md: up
    to a few percent); here the two agree to well within one validation image and 1 % of the loss.
    """
    out, _ = swept
    rows = _trials(out)
    winner = max((r for r in rows if r["state"] == "complete"),
                 key=lambda r: float(r["score_mean"]))
    assert [r["number"] for r in rows if r["confirmed_score_mean"]] == [winner["number"]]
    assert (out / "best.yaml").read_text().startswith(f"# trial {winner['number']}, ")
    run = tmp_path / "run"
    result = cli("train", "--config", out / "best.yaml", "-o", run)
    assert result.code == 0, result.err
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["accuracy"] == pytest.approx(float(winner["confirmed_accuracy_mean"]),
                                                abs=1e-9)
    assert metrics["val_loss"] == pytest.approx(float(winner["confirmed_val_loss_mean"]),
                                                rel=1e-4)
    assert str(metrics["best_epoch"]) == winner["confirmed_best_epochs"]
    assert float(winner["accuracy_mean"]) == pytest.approx(metrics["accuracy"], abs=0.099)
    assert float(winner["val_loss_mean"]) == pytest.approx(metrics["val_loss"], rel=1e-2)


def test_existing_sweep_needs_resume_or_overwrite(swept, cli, flowers, backbone50):
    out, cache = swept
    result = cli("sweep", flowers, "--backbone", backbone50, "-o", out, "--cache-dir", cache,
                 *SWEEP)
    assert_one_line_error(result, "not empty", "--resume")


def test_killed_sweep_resumes_without_repeating_finished_trials(trained, flowers, backbone50,
                                                                 tmp_path, cli):
    _, cache = trained
    out = tmp_path / "sweep"
    args = ["sweep", flowers, "--backbone", backbone50, "-o", out, "--trials", 6,
            "--folds", 2, "--cache-dir", cache, *SWEEP]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.Popen([sys.executable, "-m", "resnet_ft", *map(str, args)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            if (out / "trials.csv").is_file() and len(_finished(out)) >= 2:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the sweep finished no trial in time")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    before = {r["number"]: r for r in _finished(out)}  # a row being written is not finished
    assert 2 <= len(before) < 6
    result = cli("sweep", "-o", out, "--resume")
    assert result.code == 0, result.err
    after = _trials(out)
    numbers = [r["number"] for r in after]
    assert len(numbers) == len(set(numbers))  # each trial number once
    assert sum(r["state"] in ("complete", "pruned") for r in after) == 6
    for number, row in before.items():  # finished before the kill: kept, not run again
        kept = next(r for r in after if r["number"] == number)
        assert _trial_columns(row) == _trial_columns(kept)
    assert sum(bool(r["confirmed_score_mean"]) for r in after) == 1  # the winner, at the end
    failed = [r for r in after if r["state"] == "fail"]
    assert len(failed) <= 1  # the trial the kill interrupted, if any
    for row in failed:
        retry = next(r for r in after if r["retry_of"] == row["number"])
        # the kill may land between two suggestions: settings the trial had drawn are kept
        for key in ("lr", "epochs", "dropout", "head_units"):
            if row.get(key):
                assert retry[key] == row[key], key


@pytest.mark.parametrize(("option", "message"), [
    ({"trainable": "block4"}, "trainable must be head"),
    ({"augment": ["flip", "crop"]}, "augment must be flip or none"),
], ids=["trainable", "augment"])
def test_sweep_refuses_settings_without_cached_features(cli, flowers, backbone50, tmp_path,
                                                        option, message):
    result = cli("sweep", flowers, "--backbone", backbone50, "-o", tmp_path / "s",
                 "--config", _config(tmp_path, **option), *SMALL[:2])
    assert_one_line_error(result, message)


@pytest.mark.parametrize(("options", "message"), [
    (("--trials", 0), "--trials and --folds must be at least 1"),
    (("--metric", "f1"), "--metric must be one of accuracy, loss (got 'f1')"),
    (("--folds", 9), "--folds 9 needs at least 9 usable images per class (the smallest "
                     "class has 8)"),
], ids=["trials", "metric", "folds"])
def test_sweep_refuses_settings_it_cannot_score(cli, trained, flowers, backbone50, tmp_path,
                                                options, message):
    """Each refusal is one line, before any trial, and leaves no trials.csv behind."""
    _, cache = trained
    out = tmp_path / "s"
    result = cli("sweep", flowers, "--backbone", backbone50, "-o", out, "--cache-dir", cache,
                 *WARM, *options)
    assert_one_line_error(result, message)
    assert not (out / "trials.csv").exists()


def test_fixed_split_without_validation_images_is_refused(cli, trained, flowers, backbone50,
                                                          tmp_path):
    """--folds 1 scores on the split's val rows: with none, a one-line error, not a crash."""
    _, cache = trained
    split = tmp_path / "split.csv"
    rows = [f"{p},{p.parent.name},train" for p in sorted(flowers.glob("*/*.jpg"))]
    split.write_text("file,label,subset\n" + "\n".join(rows) + "\n")
    config = _config(tmp_path, split=str(split))
    result = cli("sweep", flowers, "--backbone", backbone50, "-o", tmp_path / "s",
                 "--cache-dir", cache, "--folds", 1, "--config", config, *WARM)
    assert_one_line_error(result, "--folds 1 needs validation images")


def test_resume_refuses_another_sweeps_settings(swept, cli, flowers, backbone50, tmp_path):
    """--resume with other folds would mix scores of two searches in one study."""
    out, cache = swept
    result = cli("sweep", flowers, "--backbone", backbone50, "-o", out, "--cache-dir", cache,
                 "--resume", "--folds", 2, *SWEEP)
    assert_one_line_error(result, "started with other settings (folds)", "new -o")
    empty = tmp_path / "empty"
    empty.mkdir()
    result = cli("sweep", flowers, "--backbone", backbone50, "-o", empty, "--resume", *SWEEP)
    assert_one_line_error(result, "sweep.yaml is missing or damaged")


def _trial_columns(row):
    """A trials.csv row without the confirmation, which the winner gets at the sweep's end."""
    return {k: v for k, v in row.items() if not k.startswith("confirmed_")}


def _config(tmp_path, **options):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(options))
    return path
