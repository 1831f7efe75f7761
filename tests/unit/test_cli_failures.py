"""Failures no command expects still end as one line and an exit code; ``--debug`` shows them.

The library raises its own errors for what users get wrong; these tests plant the
others (a full disk, Ctrl-C, a bug) inside a command and check what ``main`` makes of them.
"""

from __future__ import annotations

import errno

import pytest
from support.cli import assert_one_line_error

from resnet_ft.cli import main

PLANTED = [
    (OSError(errno.ENOSPC, "No space left on device", "/runs/a/model.keras"), 1,
     "error: No space left on device (/runs/a/model.keras)"),
    (OSError(errno.EACCES, "Permission denied"), 1, "error: Permission denied"),
    (KeyboardInterrupt(), 130, "error: interrupted"),
    (RuntimeError("boom\n  at layer 3"), 1,
     "error: unexpected RuntimeError: boom at layer 3 (run with --debug for the traceback)"),
]


@pytest.fixture
def failing_summary(monkeypatch):
    """``resnet-ft summary`` whose library call raises the given exception."""
    from resnet_ft.runs import run

    def plant(exc: BaseException) -> None:
        def summarize(_):
            raise exc
        monkeypatch.setattr(run, "summarize", summarize)

    return plant


@pytest.mark.parametrize(("exc", "code", "line"), PLANTED)
def test_unexpected_failures_are_one_line(failing_summary, cli, tmp_path, exc, code, line):
    failing_summary(exc)
    result = cli("summary", tmp_path / "any.keras")
    assert_one_line_error(result, code=code)
    assert result.error_lines == [line]


@pytest.mark.parametrize("exc", [OSError(errno.ENOSPC, "No space left on device"),
                                 RuntimeError("boom")])
def test_debug_shows_the_exception_itself(failing_summary, tmp_path, monkeypatch, exc):
    failing_summary(exc)
    with pytest.raises(type(exc)):
        main(["summary", str(tmp_path / "any.keras"), "--debug"])
    monkeypatch.setenv("RESNET_FT_DEBUG", "1")
    with pytest.raises(type(exc)):
        main(["summary", str(tmp_path / "any.keras")])


def test_usage_errors_name_the_command_and_its_help(cli):
    result = cli("summary", "--no-such-option")
    assert_one_line_error(result, "No such option: --no-such-option",
                          "(see 'resnet-ft summary --help')")
    result = cli("no-such-command")
    assert_one_line_error(result, "No such command", "(see 'resnet-ft --help')")


def test_bare_command_prints_help_and_succeeds(cli):
    result = cli()
    assert result.code == 0
    assert "convert" in result.out and "train" in result.out


def test_a_missing_data_folder_is_the_only_line_train_prints(cli, tmp_path):
    """Nothing is said about the run (the precision ``auto`` chose) before its data is found."""
    backbone = tmp_path / "b.keras"
    backbone.write_bytes(b"")
    result = cli("train", tmp_path / "nope", "--backbone", backbone, "-o", tmp_path / "run",
                 "--precision", "auto")
    assert_one_line_error(result, f"data directory not found: {tmp_path / 'nope'}")
    assert result.out == "" and not (tmp_path / "run").exists()
