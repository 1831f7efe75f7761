"""Finding and reading store entries: a sorted key index over shards, and lazy row tables.

The index holds only keys (16 bytes per entry) and where each entry lives;
values stay in the memory-mapped shards until a batch asks for them. A
:class:`FeatureRows` is what training sees: a ``(files, views, ...)`` table
that slices like an array and reads rows only when a batch is taken.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from resnet_ft.features.shards import KEY_DTYPE, Shard


class ShardIndex:
    """Every entry of a set of shards, findable by key; rows gathered from the shards."""

    def __init__(self) -> None:
        self.shards: list[Shard] = []
        self.errors: dict[bytes, str] = {}
        self._keys: list[np.ndarray] = []
        self._starts = [0]
        self._dead: set[int] = set()
        self._sorted: tuple[np.ndarray, np.ndarray] | None = None

    def add(self, shard: Shard) -> None:
        """Make a shard's entries findable (the sort is redone at the next lookup)."""
        self.shards.append(shard)
        self._keys.append(shard.keys)
        self._starts.append(self._starts[-1] + len(shard.keys))
        self.errors.update(shard.errors)
        self._sorted = None

    def remove(self, shard: Shard) -> None:
        """Make a shard's entries unfindable (one that failed its checks).

        Its place in the index stays, with keys no entry can have (all zero bytes:
        a real key never ends in zero), so row ids of the other shards keep their
        meaning for tables already handed out.
        """
        position = next(i for i, known in enumerate(self.shards) if known is shard)
        self._dead.add(position)
        self._keys[position] = np.zeros(len(shard.keys), KEY_DTYPE)
        self.errors = {}
        for index, known in enumerate(self.shards):
            if index not in self._dead:
                self.errors.update(known.errors)
        self._sorted = None

    def shards_of(self, ids: np.ndarray) -> list[Shard]:
        """The shards rows ``ids`` (any shape; ``-1``: none) are read from."""
        found = np.unique(ids[ids >= 0])
        which = np.unique(np.searchsorted(np.asarray(self._starts), found, side="right") - 1)
        return [self.shards[int(i)] for i in which]

    @property
    def row_shape(self) -> tuple[int, ...]:
        """The shape of one entry's value (``(0,)`` while the store is empty)."""
        return next((s.shape[1:] for s in self.shards if len(s.keys)), (0,))

    def find(self, keys: np.ndarray) -> np.ndarray:
        """Row ids of ``keys`` (any shape), ``-1`` where the store has no such entry."""
        if self._sorted is None:
            every = np.concatenate(self._keys) if self._keys else np.empty(0, KEY_DTYPE)
            order = np.argsort(every, kind="stable")
            self._sorted = every[order], order
        ordered, order = self._sorted
        flat = keys.reshape(-1)
        if not len(ordered):
            return np.full(keys.shape, -1, np.int64)
        position = np.minimum(np.searchsorted(ordered, flat), len(ordered) - 1)
        found = ordered[position] == flat
        return np.where(found, order[position], -1).reshape(keys.shape)

    def errors_of(self, keys: np.ndarray) -> dict[int, str]:
        """``{i: reason}`` for the failure keys the store holds."""
        return {i: self.errors[k] for i, k in enumerate(keys.tolist()) if k in self.errors}

    def gather(self, ids: np.ndarray) -> np.ndarray:
        """The rows ``ids`` (any shape) as float32, zeros where an id is ``-1``.

        A shuffled batch touches nearly as many shards as it has rows, so the
        ids are grouped by shard with one sort and each shard is read with one
        fancy index on its plain-array view (per-shard masks cost more than
        the reads).
        """
        flat = ids.reshape(-1)
        out = np.zeros((len(flat), *self.row_shape), np.float32)
        starts = np.asarray(self._starts)
        present = np.flatnonzero(flat >= 0)
        which = np.searchsorted(starts, flat[present], side="right") - 1
        order = np.argsort(which, kind="stable")
        present, which = present[order], which[order]
        bounds = np.flatnonzero(np.diff(which)) + 1
        for rows, shards in zip(np.split(present, bounds), np.split(which, bounds), strict=True):
            if len(rows):
                shard = shards[0]
                out[rows] = self.shards[shard].array[flat[rows] - starts[shard]]
        return out.reshape(*ids.shape, *self.row_shape)


class FeatureRows:
    """A ``(files, views, *row shape)`` table whose rows stay in the store until read.

    Indexing that keeps the (files, views) axes (slices, masks, index arrays
    on the first axis) gives another lazy table; indexing that picks a view
    per file, and ``np.asarray``, read the rows (as float32).
    """

    def __init__(self, index: ShardIndex, ids: np.ndarray) -> None:
        self.index, self.ids = index, ids

    @property
    def shape(self) -> tuple[int, ...]:
        return (*self.ids.shape, *self.index.row_shape)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, item: Any) -> Any:
        ids = self.ids[item]
        return FeatureRows(self.index, ids) if ids.ndim == 2 else self.index.gather(ids)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        values = self.index.gather(self.ids)
        return values if dtype is None else values.astype(dtype)
