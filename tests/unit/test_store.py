"""The sharded feature store: entries round-trip, torn shards are never served, storage dtypes.

Entries are written through the store's public writer with synthetic file
identities (as the million-entry benchmark does); the expectations are
computed here with plain NumPy.
"""

from __future__ import annotations

import numpy as np
import pytest

from resnet_ft.data.preprocessing import Preprocessing
from resnet_ft.features.store import FeatureCache, file_keys

ROW = 16 * 4  # a 16-channel float32 row, in bytes


def _cache(root, **options) -> FeatureCache:
    return FeatureCache(root, "b" * 64, Preprocessing(32), **options)


def _identities(n: int) -> list[list[object]]:
    return [[f"/photos/{i:06d}.jpg", 1000 + i, 1_700_000_000_000_000_000 + i] for i in range(n)]


def _fill(cache: FeatureCache, values: np.ndarray, per_put: int = 2) -> np.ndarray:
    prefixes = file_keys(_identities(len(values)))
    with cache.writer() as writer:
        for start in range(0, len(values), per_put):
            writer.put(prefixes[start : start + per_put], values[start : start + per_put])
    return prefixes


def test_entries_round_trip_through_shards(tmp_path):
    values = np.random.default_rng(0).random((10, 2, 16), dtype=np.float32)
    # 8 rows per shard: puts of 2 files x 2 views commit a shard every second put
    prefixes = _fill(_cache(tmp_path, shard_bytes=8 * ROW), values)
    shards = sorted(tmp_path.rglob("*.shard"))
    assert len(shards) == 3  # 8 + 8 + 4 rows
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file()) == shards  # no leftovers

    table, missing = _cache(tmp_path).table(prefixes, 2)  # a new process's view of the store
    assert missing == [] and table.errors == {}
    assert table.values.shape == (10, 2, 16)
    assert np.array_equal(np.asarray(table.values), values)
    pick = np.array([0, 1, 1, 0, 1, 0, 0, 1, 1, 0])
    assert np.array_equal(table.values[np.arange(10), pick], values[np.arange(10), pick])
    lazy = table.values[np.array([True, False] * 5)]  # still a table of rows, not read yet
    assert lazy.shape == (5, 2, 16) and np.array_equal(lazy[:, 1], values[::2, 1])


def test_misses_and_remembered_failures(tmp_path):
    values = np.ones((3, 1, 16), np.float32)
    cache = _cache(tmp_path)
    prefixes = file_keys(_identities(5))
    with cache.writer() as writer:
        writer.put(prefixes[:3], values)
        writer.put_error(prefixes[3], "cannot identify image file")
    table, missing = _cache(tmp_path).table(prefixes, 1)
    assert missing == [4]  # file 3 failed before: remembered, not retried
    assert table.errors == {3: "cannot identify image file"}
    # a second view of the same files is a miss; the first view still a hit
    assert _cache(tmp_path).table(prefixes[:3], 2)[1] == [0, 1, 2]
    # the same file with another size or mtime is another file
    changed = _identities(1)
    changed[0][2] += 1
    assert _cache(tmp_path).table(file_keys(changed), 1)[1] == [0]


def test_a_torn_shard_is_never_served(tmp_path):
    values = np.random.default_rng(1).random((8, 1, 16), dtype=np.float32)
    prefixes = _fill(_cache(tmp_path, shard_bytes=4 * ROW), values, per_put=4)
    first, second = sorted(tmp_path.rglob("*.shard"))
    second.write_bytes(second.read_bytes()[:-1])  # as if the disk lost the last byte
    (first.parent / f".{first.name}.tmp").write_bytes(first.read_bytes()[:50])  # a dead writer's
    table, missing = _cache(tmp_path).table(prefixes, 1)
    assert missing == [4, 5, 6, 7]
    assert np.array_equal(np.asarray(table.values[:4]), values[:4])


def _bfloat16_representable(values: np.ndarray) -> np.ndarray:
    """Round toward zero to bfloat16 by clearing the low 16 bits (independent of TensorFlow)."""
    return (values.view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32)


@pytest.mark.parametrize("precision, dtype", [("float32", np.float32), ("bfloat16", np.float16)])
def test_storage_dtype_keeps_the_computed_values(tmp_path, precision, dtype):
    rng = np.random.default_rng(2)
    # ReLU-pooled features: non-negative, here spanning 1e-4 .. 1e3
    values = 10.0 ** rng.uniform(-4, 3, (6, 2, 16)).astype(np.float32)
    if precision != "float32":
        values = _bfloat16_representable(values)  # what a bfloat16 backbone outputs
    prefixes = _fill(_cache(tmp_path, precision=precision), values)
    shard = next(tmp_path.rglob("*.shard"))
    table, _ = _cache(tmp_path, precision=precision).table(prefixes, 2)
    assert np.array_equal(np.asarray(table.values), values)  # bit-exact: training sees the same
    # float16 halves the file for bfloat16 runs; exact float32 runs keep float32
    assert shard.stat().st_size == pytest.approx(6 * 2 * 16 * np.dtype(dtype).itemsize, abs=800)


def test_settings_choose_the_directory(tmp_path):
    base = _cache(tmp_path)
    others = [FeatureCache(tmp_path, "c" * 64, Preprocessing(32)),
              FeatureCache(tmp_path, "b" * 64, Preprocessing(48)),
              FeatureCache(tmp_path, "b" * 64, Preprocessing(32, "squash")),
              FeatureCache(tmp_path, "b" * 64, Preprocessing(32), kind="boundary:block4")]
    assert len({base.root, *(o.root for o in others)}) == 5
    assert all(o.root.parent.parent == tmp_path for o in others)
