"""Atomic file writes: a reader sees the old file or the complete new one, never a torn one.

Every artifact (converted backbones, run files, cache entries) goes through
here, so an interrupted process or a full disk never leaves a half-written
file that looks valid.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from resnet_ft.errors import OutputError


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success.

    The temporary file lives in the same directory so the final ``os.replace``
    is atomic on POSIX. On any exception the temporary file is removed and the
    target is left untouched. ``suffix`` defaults to the target's suffix
    because some writers (Keras) insist on a particular extension.
    """
    target = Path(target)
    directory = target.parent if str(target.parent) else Path(".")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=suffix if suffix is not None else target.suffix,
            dir=directory,
        )
    except OSError as exc:
        raise OutputError(f"cannot write to {directory}: {exc.strerror or exc}") from exc
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual mode
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes(target: str | os.PathLike[str], data: bytes) -> None:
    """Atomically replace ``target`` with ``data``."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text(target: str | os.PathLike[str], text: str) -> None:
    """Atomically replace ``target`` with ``text`` (UTF-8)."""
    write_bytes(target, text.encode("utf-8"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync(path: Path) -> None:
    """Flush file contents to disk before the rename makes them visible."""
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())
