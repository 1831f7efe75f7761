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
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from resnet_ft.data.preprocessing import Preprocessing
from resnet_ft.features.identity import file_identity, key_digest
from resnet_ft.features.rows import FeatureRows, ShardIndex
from resnet_ft.features.shards import KEY_DTYPE, SUFFIX, read_shard, write_shard

SHARD_BYTES = 32 << 20
"""Values per shard: large enough that a million images are a few hundred files."""

SHARD_SECONDS = 120.0
"""A shard is also closed after this long, so a killed slow extraction loses at most that."""

ERROR_VIEW = 254


@dataclass
class FeatureTable:
    """Features of a list of files: ``values[i, view]`` and the files that failed.

    ``values`` is a :class:`~resnet_ft.features.rows.FeatureRows` over the
    store's shards, or an in-memory array where no store is used.
    """

    values: Any  # (N, views, *row shape): FeatureRows or np.ndarray (float32)
    errors: dict[int, str] = field(default_factory=dict)
    extracted: int = 0  # images that went through the backbone (cache misses)


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


class FeatureCache:
    """The shards of one backbone and one setting, their index, and a writer for new shards."""

    def __init__(self, root: Path, backbone_id: str, preprocessing: Preprocessing, *,
                 precision: str = "float32", kind: str = "pooled",
                 shard_bytes: int = SHARD_BYTES) -> None:
        self.base, self.backbone_id = Path(root), backbone_id
        settings = key_digest(preprocessing.to_dict(), kind)
        self.root = self.base / backbone_id[:32] / settings[:16]
        # float16 holds bfloat16 results exactly (fewer exponent bits needed, more
        # mantissa); exact float32 runs keep float32
        pooled16 = kind == "pooled" and precision != "float32"
        self.dtype = np.dtype(np.float16 if pooled16 or kind != "pooled" else np.float32)
        self.shard_bytes = shard_bytes
        self._index: ShardIndex | None = None

    @property
    def index(self) -> ShardIndex:
        """Every complete shard in the directory (read once, then extended by our writes)."""
        if self._index is None:
            self._index = ShardIndex()
            for path in sorted(self.root.glob(f"*{SUFFIX}")):
                shard = read_shard(path)
                if shard is not None:
                    self._index.add(shard)
        return self._index

    def reload(self) -> None:
        """Forget the index, so the next lookup also sees shards other processes wrote."""
        self._index = None

    def keys(self, paths: list[Path]) -> np.ndarray:
        """The files' key prefixes, from their identities (one ``stat`` each)."""
        return file_keys([file_identity(p) for p in paths])

    def table(self, prefixes: np.ndarray, views: int) -> tuple[FeatureTable, list[int]]:
        """What the store holds for these files, and the indices of the files it lacks."""
        errors = self.index.errors_of(entry_keys(prefixes, [ERROR_VIEW])[:, 0])
        ids = self.index.find(entry_keys(prefixes, views))
        missing = [int(i) for i in np.flatnonzero((ids < 0).any(axis=1)) if i not in errors]
        return FeatureTable(FeatureRows(self.index, ids), errors), missing

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
        """Store ``values[i, view]`` for file i (its key prefix) and every view."""
        self.keys.append(entry_keys(prefixes, values.shape[1]).reshape(-1))
        self.values.append(values.reshape(-1, *values.shape[2:]).astype(self.cache.dtype))
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
        shard = read_shard(path)
        if shard is not None:
            self.cache.index.add(shard)

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, kind: object, *_: object) -> None:
        if kind is None or kind is KeyboardInterrupt:
            self.flush()  # completed work is kept, also when the user stops the run
