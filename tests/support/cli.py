"""Running the CLI in-process and the assertions every command's tests make."""

from __future__ import annotations

import pytest

#: Small images and batches: the suite's default training options. float32 pinned: tests that
#: compare two paths (cached vs online, one device vs two) need exact arithmetic, and
#: ``--precision auto`` would pick bfloat16 on CPUs that have it.
SMALL = ("--image-size", 48, "--batch-size", 8, "--precision", "float32")


class CliResult:
    """Outcome of one in-process CLI invocation."""

    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    @property
    def error_lines(self) -> list[str]:
        """Non-empty stderr lines (the contract: exactly one ``error:`` line)."""
        return [line for line in self.err.splitlines() if line.strip()]


def assert_one_line_error(result: CliResult, *fragments: str, code: int = 2) -> None:
    """The failure contract: exit code, one ``error:`` line naming the problem, no traceback."""
    assert result.code == code, (result.code, result.err)
    assert len(result.error_lines) == 1, result.err
    line = result.error_lines[0]
    assert line.startswith("error: "), line
    assert "Traceback" not in result.err
    for fragment in fragments:
        assert fragment in line, (fragment, line)


def assert_convert_fails(cli, tmp_path, src, *fragments: str, extra=()) -> None:
    """``convert`` refuses ``src`` with one error line, and leaves nothing behind."""
    out = tmp_path / "out" / "backbone.keras"
    out.parent.mkdir(exist_ok=True)
    assert_one_line_error(cli("convert", src, "-o", out, *extra), *fragments)
    assert list(out.parent.iterdir()) == [], "a failed conversion must leave nothing behind"


def resume_one_more_epoch(cli, run, done: int) -> None:
    """``--resume`` an interrupted run for one more epoch; history has each epoch once.

    In this process: what was interrupted is the child, and resuming reads only what
    it left on disk.
    """
    import csv

    resumed = cli("train", "-o", run, "--resume", "--epochs", done + 1)
    assert resumed.code == 0, resumed.err
    epochs = [row["epoch"] for row in csv.DictReader((run / "history.csv").open())]
    assert epochs == [str(e) for e in range(1, done + 2)]


#: The default head on 5 classes: Dense(2048 -> 1024) + Dense(1024 -> 5).
HEAD_PARAMS = 2048 * 1024 + 1024 + 1024 * 5 + 5


def train_predict_summary(cli, tmp_path, backbone) -> dict:
    """One small end-to-end run on ``backbone``; returns ``summary --json`` of the run.

    Every family must go through train, predict and summary like a slim backbone.
    """
    import json

    from resnet_ft.data.standin import FLOWER_CLASSES, write_standin_images

    data = write_standin_images(tmp_path / "data", per_class=4, min_size=40, max_size=64)
    run = tmp_path / "run"
    result = cli("train", data, "--backbone", backbone, "-o", run, "--epochs", 1,
                 "--image-size", 48, "--batch-size", 8, "--cache-dir", tmp_path / "cache")
    assert result.code == 0, result.err
    result = cli("predict", run, next((data / "tulips").glob("*.jpg")), "--json")
    assert result.code == 0, result.err
    [entry] = json.loads(result.out)
    assert entry["label"] in FLOWER_CLASSES
    assert sum(t["probability"] for t in entry["top_k"]) == pytest.approx(1.0, abs=1e-4)
    result = cli("summary", run, "--json")
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert summary["trainable"] == HEAD_PARAMS
    return summary
