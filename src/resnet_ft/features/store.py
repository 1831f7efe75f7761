"""The feature store: backbone outputs per image and view, kept on disk in shards.

With the backbone frozen, its output for an image never changes, so training
the head for 20 epochs needs only one forward pass per image (two with flip
augmentation: the original and the mirrored view). Entries live in shards
(:mod:`resnet_ft.features.shards`) of a few tens of MB under
``root/<backbone hash>/<settings hash>/``: the backbone's identity (weights and
compute precision, :mod:`resnet_ft.features.identity`) and the settings
(preprocessing and what is stored) choose the directory, the image file's
identity and the view choose the entry. A store of a million images is a few
hundred files; its index (16-byte keys, sorted) is the only part held in RAM,
and rows are read from memory-mapped shards as training needs them.
Undecodable files are stored as failures with their reason, so a rerun
neither decodes them again nor forgets why they were skipped.

Nothing is served unverified: every shard's index is checked against its
checksum when the store is opened, and its values before the first row is
served (:mod:`~resnet_ft.features.shards`). A shard that fails is set aside
(renamed ``*.shard.damaged``, kept for a post-mortem), one line says which
file and how many entries it held, and its entries become misses that are
computed again. Non-finite values are never stored.

Several processes may share a store: shards are written under unique names
(time and process id) and renamed into place complete, so no shard is ever
written twice under one name or read half-written; two processes that both
miss an entry both compute it, and either copy serves.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from resnet_ft.data.preprocessing import Preprocessing
from resnet_ft.features.identity import file_identity, key_digest
from resnet_ft.features.rows import FeatureRows, ShardIndex
from resnet_ft.features.shards import KEY_DTYPE, SUFFIX, Damaged, Shard, read_shard, write_shard

SHARD_BYTES = 32 << 20
"""Values per shard: large enough that a million images are a few hundred files."""

SHARD_SECONDS = 120.0
"""A shard is also closed after this long, so a killed slow extraction loses at most that."""

ERROR_VIEW = 254
#: What a shard that failed its checks is renamed to (its name plus this).
DAMAGED = ".damaged"


@dataclass
class FeatureTable:
    """Features of a list of files: ``values[i, view]`` and the files that failed.

    ``values`` is a :class:`~resnet_ft.features.rows.FeatureRows` over the
    store's shards, or an in-memory array where no store is used.
    """

    values: Any  # (N, views, *row shape): FeatureRows or np.ndarray (float32)
    errors: dict[int, str] = field(default_factory=dict)
    extracted: int = 0  # images that went through the backbone (cache misses)
    #: files whose outputs were not finite (never stored): ``{index: reason}``
    nonfinite: dict[int, str] = field(default_factory=dict)


def file_keys(identities: list[Any]) -> np.ndarray:
    """``(N, 15)`` bytes per file identity: the entry keys' common prefix."""
    digests = b"".join(hashlib.sha256(json.dumps(i).encode()).digest()[:15] for i in identities)
    return np.frombuffer(digests, np.uint8).reshape(len(identities), 15)


def entry_keys(prefixes: np.ndarray, views: int | list[int]) -> np.ndarray:
    """Keys ``(N, len(views))`` of the given views (``ERROR_VIEW``: the file's failure).

    The last byte is ``view + 1``, never zero: NumPy's fixed-width bytes drop
    trailing zeros when a key is read back as ``bytes`` (the failure key ends in 255).
    """
    views = list(range(views)) if isinstance(views, int) else views
    keys = np.empty((len(prefixes), len(views), 16), np.uint8)
    keys[:, :, :15] = prefixes[:, None, :]
    keys[:, :, 15] = np.array(views, np.uint8)[None, :] + 1
    return keys.reshape(len(prefixes), -1).view(KEY_DTYPE).reshape(len(prefixes), len(views))


def _stderr(line: str) -> None:
    sys.stderr.write(line + "\n")


class FeatureCache:
    """The shards of one backbone and one setting, their index, and a writer for new shards.

    ``warn`` receives the line said when a shard is set aside (stderr by default).
    """

    def __init__(self, root: Path, backbone_id: str, preprocessing: Preprocessing, *,
                 precision: str = "float32", kind: str = "pooled",
                 shard_bytes: int = SHARD_BYTES,
                 warn: Callable[[str], None] = _stderr) -> None:
        self.base, self.backbone_id = Path(root), backbone_id
        settings = key_digest(preprocessing.to_dict(), kind)
        self.root = self.base / backbone_id[:32] / settings[:16]
        # float16 holds bfloat16 results exactly (fewer exponent bits needed, more
        # mantissa); exact float32 runs keep float32
        pooled16 = kind == "pooled" and precision != "float32"
        self.dtype = np.dtype(np.float16 if pooled16 or kind != "pooled" else np.float32)
        self.shard_bytes, self.warn = shard_bytes, warn
        self._index: ShardIndex | None = None

    @property
    def index(self) -> ShardIndex:
        """Every shard in the directory whose index checks out (read once, then extended by
        our writes); the others are set aside."""
        if self._index is None:
            self._index = ShardIndex()
            for path in sorted(self.root.glob(f"*{SUFFIX}")):
                try:
                    self._index.add(read_shard(path))
                except FileNotFoundError:  # set aside by another process meanwhile
                    continue
                except Damaged as damage:
                    self.set_aside(path, damage)
        return self._index

    def set_aside(self, path: Path, damage: Damaged) -> None:
        """Rename a shard that failed its checks out of the store, and say so in one line."""
        target = path.with_name(path.name + DAMAGED)
        try:
            os.replace(path, target)
        except FileNotFoundError:
            return  # another process set it aside first (and said so)
        entries = f"{damage.entries} entries" if damage.entries >= 0 else "its entries"
        self.warn(f"feature store: set aside {path} ({entries}): {damage.reason}; they are "
                  f"computed again (the file is kept as {target.name})")

    def reload(self) -> None:
        """Forget the index, so the next lookup also sees shards other processes wrote."""
        self._index = None

    def keys(self, paths: list[Path]) -> np.ndarray:
        """The files' key prefixes, from their identities (one ``stat`` each)."""
        return file_keys([file_identity(p) for p in paths])

    def table(self, prefixes: np.ndarray, views: int) -> tuple[FeatureTable, list[int]]:
        """What the store holds for these files, and the indices of the files it lacks.

        Every shard the answer reads rows from is verified first; one that fails is
        set aside and the lookup made again without it.
        """
        while True:
            errors = self.index.errors_of(entry_keys(prefixes, [ERROR_VIEW])[:, 0])
            ids = self.index.find(entry_keys(prefixes, views))
            damaged = self._verify(self.index.shards_of(ids))
            if damaged is None:
                break
            self.index.remove(damaged)
        missing = [int(i) for i in np.flatnonzero((ids < 0).any(axis=1)) if i not in errors]
        return FeatureTable(FeatureRows(self.index, ids), errors), missing

    def _verify(self, shards: list[Shard]) -> Shard | None:
        """The first of ``shards`` whose values fail their checksum (set aside), or ``None``."""
        for shard in shards:
            try:
                shard.verify()
            except Damaged as damage:
                self.set_aside(shard.path, damage)
                return shard
        return None

    def writer(self) -> ShardWriter:
        """A writer whose shards join this store's index as they are committed."""
        return ShardWriter(self)


class ShardWriter:
    """Collects entries and commits them a shard at a time (and the rest on ``close``)."""

    def __init__(self, cache: FeatureCache) -> None:
        self.cache = cache
        self.keys: list[np.ndarray] = []
        self.values: list[np.ndarray] = []
        self.errors: dict[bytes, str] = {}
        self.rows, self.started = 0, time.monotonic()

    def put(self, prefixes: np.ndarray, values: np.ndarray) -> None:
        """Store ``values[i, view]`` for file i (its key prefix) and every view.

        Non-finite values are refused (extraction reports those files instead).
        """
        with np.errstate(over="ignore"):  # an overflow is caught just below
            stored = values.reshape(-1, *values.shape[2:]).astype(self.cache.dtype)
        if not np.isfinite(stored).all():
            raise ValueError("non-finite values are never stored")
        self.keys.append(entry_keys(prefixes, values.shape[1]).reshape(-1))
        self.values.append(stored)
        self.rows += len(self.keys[-1])
        row_bytes = self.values[-1][0].nbytes
        if (self.rows * row_bytes >= self.cache.shard_bytes
                or time.monotonic() - self.started >= SHARD_SECONDS):
            self.flush()

    def put_error(self, prefix: np.ndarray, reason: str) -> None:
        """Remember that the file cannot be decoded, and why."""
        self.errors[bytes(entry_keys(prefix[None], [ERROR_VIEW])[0, 0])] = reason

    def flush(self) -> None:
        """Commit what is collected as one shard (nothing to do when empty)."""
        if not self.keys and not self.errors:
            return
        keys = np.concatenate(self.keys) if self.keys else np.empty(0, KEY_DTYPE)
        values = np.concatenate(self.values) if self.values else np.empty(0, self.cache.dtype)
        path = self.cache.root / f"{time.time_ns():020d}-{os.getpid()}{SUFFIX}"
        write_shard(path, keys, values, self.errors)
        self.keys, self.values, self.errors = [], [], {}
        self.rows, self.started = 0, time.monotonic()
        try:
            self.cache.index.add(read_shard(path))
        except Damaged as damage:  # the disk did not keep what was written
            self.cache.set_aside(path, damage)

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, kind: object, *_: object) -> None:
        if kind is None or kind is KeyboardInterrupt:
            self.flush()  # completed work is kept, also when the user stops the run
