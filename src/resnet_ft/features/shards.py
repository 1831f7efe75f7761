"""One shard of the feature store: many entries in one file, written once, checksummed, never
modified.

A shard is four ``.npy`` arrays back to back — the entries' keys, the keys of files that
failed to decode, the failures' reasons (UTF-8 JSON), and the values (rows of features) —
and a trailer: a magic number, the xxh3-128 digest of everything before the values'
data (the index: keys, failures, reasons and every header), the digest of the values'
data, and the number of entries (so a shard whose index cannot be parsed is still
reported with its size). Standard ``.npy`` headers make it self-describing; putting the
values last lets readers memory-map them at an offset, so a training epoch reads rows from
the page cache instead of holding every feature in RAM.

A shard is written to a temporary name, fsynced once and renamed
(:func:`resnet_ft.util.atomic.atomic_path`). A reader trusts nothing it has not checked:
:func:`read_shard` verifies the index digest (and the file's length) before any key is
used, and :meth:`Shard.verify` the values' digest, once per process, before any row is
served. A file that fails — a flipped bit, a truncated tail, a shard written by a version
without checksums — is :class:`Damaged`: the store sets it aside and recomputes its
entries (:mod:`resnet_ft.features.store`).

xxh3-128 was measured against crc32c and blake3 on a 32 MB shard here
(docs/concepts/reliability.md, ``benchmarks/bench_checksum.py``): the fastest (28 GB/s on
one core), with 128 bits where crc32c has 32; the store guards against corruption, not
against an adversary, so a cryptographic hash would only cost time.
"""

from __future__ import annotations

import io
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import xxhash

from resnet_ft.util.atomic import atomic_path

KEY_DTYPE = np.dtype("S16")
SUFFIX = ".shard"
#: The trailer: magic number, index digest, values digest, number of entries.
MAGIC = b"RFTSHRD2"
TRAILER = struct.Struct("<8s16s16sQ")


class Damaged(Exception):
    """A shard that cannot be trusted; ``entries`` is how many it claimed to hold (or -1)."""

    def __init__(self, reason: str, entries: int = -1) -> None:
        super().__init__(reason)
        self.reason, self.entries = reason, entries


@dataclass
class Shard:
    """A verified shard's index part (read whole) and its values (mapped, checked on first use)."""

    path: Path
    keys: np.ndarray  # (n,) KEY_DTYPE
    errors: dict[bytes, str]
    offset: int
    shape: tuple[int, ...]
    dtype: np.dtype
    values_digest: bytes
    _values: np.ndarray | None = field(default=None, repr=False)
    verified: bool = False

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

    def verify(self) -> None:
        """Check the values' digest (once per process); :class:`Damaged` when it differs."""
        if self.verified:
            return
        if xxhash.xxh3_128_digest(self.array) != self.values_digest:
            raise Damaged("checksum mismatch in its values", len(self.keys))
        self.verified = True


def write_shard(path: Path, keys: np.ndarray, values: np.ndarray,
                errors: dict[bytes, str]) -> None:
    """Write one shard atomically (one fsync): readers see all of it or nothing."""
    error_keys = np.array(list(errors), KEY_DTYPE)
    reasons = json.dumps(list(errors.values())).encode("utf-8")
    index = io.BytesIO()
    for array in (np.asarray(keys, KEY_DTYPE), error_keys, np.frombuffer(reasons, np.uint8)):
        np.save(index, array, allow_pickle=False)
    values = np.ascontiguousarray(values)
    np.lib.format.write_array_header_1_0(index, np.lib.format.header_data_from_array_1_0(values))
    data = values.tobytes()
    trailer = TRAILER.pack(MAGIC, xxhash.xxh3_128_digest(index.getvalue()),
                           xxhash.xxh3_128_digest(data), len(keys))
    with atomic_path(path) as tmp, open(tmp, "wb") as out:
        out.write(index.getvalue())
        out.write(data)
        out.write(trailer)


def read_shard(path: Path) -> Shard:
    """The shard at ``path`` with its index verified; :class:`Damaged` when it cannot be
    trusted (``FileNotFoundError`` when another process set it aside meanwhile)."""
    with open(path, "rb") as source:
        size = source.seek(0, 2)
        if size < TRAILER.size:
            raise Damaged("truncated")
        source.seek(size - TRAILER.size)
        magic, index_digest, values_digest, entries = TRAILER.unpack(source.read(TRAILER.size))
        if magic != MAGIC:
            raise Damaged(*_without_trailer(source, size))
        source.seek(0)
        keys, errors, offset, shape, dtype = _index(source, index_digest, entries)
    if offset + int(np.prod(shape)) * dtype.itemsize != size - TRAILER.size:
        raise Damaged("truncated or extended", len(keys))
    if shape[0] != len(keys):
        raise Damaged("keys and values disagree", len(keys))
    return Shard(path, keys, errors, offset, shape, dtype, values_digest)


def _index(source: BinaryIO, digest: bytes, entries: int
           ) -> tuple[np.ndarray, dict[bytes, str], int, tuple[int, ...], np.dtype]:
    """The keys, failures and the values' header, checked against the index digest
    (``entries``, from the trailer, names the shard's size when its index is unreadable)."""
    try:
        keys, error_keys, reasons = (_array(source) for _ in range(3))
        shape, dtype = _header(source)
        offset = source.tell()
    except (ValueError, TypeError, OSError, EOFError) as exc:
        detail = " ".join(str(exc).split())[:80]
        raise Damaged(f"unreadable index ({type(exc).__name__}: {detail})", entries) from exc
    source.seek(0)
    if xxhash.xxh3_128_digest(source.read(offset)) != digest:
        raise Damaged("checksum mismatch in its index", len(keys))
    if keys.dtype != KEY_DTYPE or error_keys.dtype != KEY_DTYPE:
        raise Damaged("keys of the wrong type", len(keys))
    try:
        errors = dict(zip(error_keys.tolist(), json.loads(reasons.tobytes()), strict=True))
    except (ValueError, TypeError) as exc:
        raise Damaged(f"unreadable failures ({exc})", len(keys)) from exc
    return keys, errors, offset, shape, dtype


def _without_trailer(source: BinaryIO, size: int) -> tuple[str, int]:
    """Why a file has no trailer, and its entries if it says: an earlier version's shard
    (no checksum), or one cut short or damaged."""
    source.seek(0)
    try:
        keys = _array(source)
        for _ in range(2):
            _array(source)
        shape, dtype = _header(source)
    except (ValueError, TypeError, OSError, EOFError):
        return "truncated or damaged (no checksum)", -1
    if source.tell() + int(np.prod(shape)) * dtype.itemsize == size:
        return "written by an earlier version, without a checksum", len(keys)
    return "truncated (no checksum)", len(keys)


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


