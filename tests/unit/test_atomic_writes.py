"""Atomic writes keep what was there when they fail, and say so in one line.

A failed write must never lose the previous output: the tests make the final rename fail
(as a full disk or a vanished directory does) and check the old bytes are still in place.
"""

from __future__ import annotations

import errno
import os

import pytest

from resnet_ft.errors import InputError, OutputError
from resnet_ft.util import atomic
from resnet_ft.util.atomic import atomic_dir, atomic_path, write_text
from resnet_ft.util.hashing import sha256_file


def _fail_on_call(monkeypatch, number: int) -> None:
    """Make the ``number``-th ``os.replace`` in resnet_ft.util.atomic fail with ENOSPC."""
    real, calls = os.replace, []

    def replace(src, dst):
        calls.append((src, dst))
        if len(calls) == number:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace)


def _listing(directory):
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*"))


def test_failed_directory_rename_puts_the_previous_output_back(tmp_path, monkeypatch):
    target = tmp_path / "export"
    target.mkdir()
    (target / "model.bin").write_bytes(b"old")
    _fail_on_call(monkeypatch, 2)  # 1: old out of the way, 2: new into place
    failure = pytest.raises(OutputError, match=r"^cannot write .*export: No space left on device$")
    with failure, atomic_dir(target) as tmp:
        (tmp / "model.bin").write_bytes(b"new")
    assert (target / "model.bin").read_bytes() == b"old"
    assert _listing(tmp_path) == ["export", "export/model.bin"]  # no temporary left


def test_failed_file_rename_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "metrics.json"
    target.write_text("old")
    _fail_on_call(monkeypatch, 1)
    with pytest.raises(OutputError, match="No space left on device"):
        write_text(target, "new")
    assert target.read_text() == "old"
    assert _listing(tmp_path) == ["metrics.json"]


def test_an_exception_inside_the_block_leaves_nothing(tmp_path):
    with pytest.raises(ValueError), atomic_dir(tmp_path / "out") as tmp:
        (tmp / "half").write_bytes(b"x")
        raise ValueError("writer failed")
    with pytest.raises(ValueError), atomic_path(tmp_path / "file.txt") as tmp:
        tmp.write_text("half")
        raise ValueError("writer failed")
    assert _listing(tmp_path) == []


@pytest.mark.parametrize("make", [atomic_dir, atomic_path])
def test_a_parent_that_is_a_file_is_one_line(tmp_path, make):
    (tmp_path / "file").write_text("x")
    failure = pytest.raises(OutputError, match=r"^cannot write to .*file")
    with failure, make(tmp_path / "file" / "out"):
        pass


def test_sha256_of_an_unreadable_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match=r"^cannot read .*missing\.ckpt: No such file"):
        sha256_file(tmp_path / "missing.ckpt")
    (tmp_path / "a").write_bytes(b"abc")
    assert sha256_file(tmp_path / "a") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")  # FIPS 180-2 "abc"
