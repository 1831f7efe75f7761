"""One shard of the feature store: many entries in one file, written once, never modified.

A shard is four ``.npy`` arrays back to back in one file: the entries' keys,
the keys of files that failed to decode, the failures' reasons (UTF-8 JSON),
and the values (rows of features). Standard ``.npy`` headers make it
self-describing; putting the values last lets readers memory-map them at an
offset, so a training epoch reads rows from the page cache instead of holding
every feature in RAM. A shard is written to a temporary name, fsynced once and
renamed (:func:`resnet_ft.util.atomic.atomic_path`); a reader also checks that
the file ends exactly where the values end, so a truncated file is never served.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from resnet_ft.util.atomic import atomic_path

KEY_DTYPE = np.dtype("S16")
SUFFIX = ".shard"


@dataclass
class Shard:
    """A shard's index part (read whole) and its values (memory-mapped on first use)."""

    path: Path
    keys: np.ndarray  # (n,) KEY_DTYPE
    errors: dict[bytes, str]
    offset: int
    shape: tuple[int, ...]
    dtype: np.dtype
    _values: np.ndarray | None = None

    @property
    def array(self) -> np.ndarray:
        """The rows, ``(n, *row shape)``: a plain read-only array over the memory-mapped file.

        Plain, not ``np.memmap``: indexing a memmap subclass costs several
        times more per call, and training indexes once per shard and batch.
        """
        if self._values is None:
            mapped = np.memmap(self.path, self.dtype, "r", self.offset, self.shape)
            self._values = np.asarray(mapped)
        return self._values


def write_shard(path: Path, keys: np.ndarray, values: np.ndarray,
                errors: dict[bytes, str]) -> None:
    """Write one shard atomically (one fsync): readers see all of it or nothing."""
    error_keys = np.array(list(errors), KEY_DTYPE)
    reasons = json.dumps(list(errors.values())).encode("utf-8")
    with atomic_path(path) as tmp, open(tmp, "wb") as out:
        for array in (np.asarray(keys, KEY_DTYPE), error_keys,
                      np.frombuffer(reasons, np.uint8), np.ascontiguousarray(values)):
            np.save(out, array, allow_pickle=False)


def read_shard(path: Path) -> Shard | None:
    """The shard at ``path``, or ``None`` when it is unreadable or not complete."""
    try:
        with open(path, "rb") as source:
            keys, error_keys, reasons = (_array(source) for _ in range(3))
            shape, dtype = _header(source)
            offset = source.tell()
            size = source.seek(0, 2)
        errors = dict(zip(error_keys.tolist(), json.loads(reasons.tobytes()), strict=True))
    except (OSError, ValueError, TypeError):
        return None
    complete = offset + int(np.prod(shape)) * dtype.itemsize == size
    if not complete or shape[0] != len(keys) or keys.dtype != KEY_DTYPE:
        return None
    return Shard(path, keys, errors, offset, shape, dtype)


def _array(source: BinaryIO) -> np.ndarray:
    """The next ``.npy`` array in ``source`` (small index parts only)."""
    return np.load(source, allow_pickle=False)


def _header(source: BinaryIO) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of the next ``.npy`` array, leaving ``source`` at its data."""
    fmt = np.lib.format
    version = fmt.read_magic(source)
    read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
    shape, fortran, dtype = read(source)
    if fortran or dtype.hasobject:
        raise ValueError("not a C-ordered numeric array")
    return shape, dtype
