"""The feature store never serves changed bytes: every shard is checksummed and checked.

A shard is filled by a real extraction (a tiny seeded CNN over generated images, as the
kill tests use), then one byte is flipped in each part of the file in turn — keys,
failure keys, failure reasons, the values' header, the values, the trailer — or the file
is cut short, or rewritten in the format of earlier versions (no checksum). Each time the
next extraction must give exactly the numbers of an undamaged store, recompute the shard's
entries, set the file aside (renamed, not deleted) and say so in one line.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from support import store_worker

from resnet_ft.data.preprocessing import Preprocessing
from resnet_ft.data.standin import write_standin_images
from resnet_ft.features.extract import extract
from resnet_ft.features.store import FeatureCache

#: The trailer: 8 bytes of magic, two 16-byte digests, the number of entries (8 bytes).
TRAILER = 48


@pytest.fixture(scope="module")
def images(module_tmp) -> list[Path]:
    root = write_standin_images(module_tmp("images"), classes=("a", "b"),
                                per_class=3, min_size=40, max_size=60)
    unreadable = root / "a" / "broken.jpg"
    unreadable.write_bytes(b"\xff\xd8 not a jpeg")  # stored as a failure with its reason
    return store_worker.images(root)


@pytest.fixture(scope="module")
def model():
    return store_worker.tiny_backbone()


def _extract(images, model, cache_dir: Path, said: list[str]):
    cache = FeatureCache(cache_dir, "f" * 64, Preprocessing(store_worker.SIZE),
                         warn=said.append)
    return extract(images, model, Preprocessing(store_worker.SIZE), views=2, cache=cache,
                   console=Console(quiet=True), batch_size=4)


def _parts(path: Path) -> dict[str, tuple[int, int]]:
    """Byte ranges of each part of a shard, read with numpy's own .npy format functions."""
    data = path.read_bytes()
    source = io.BytesIO(data)
    parts = {}
    for name in ("keys", "failure keys", "reasons"):
        start = source.tell()
        np.lib.format.read_magic(source)
        shape, _, dtype = np.lib.format.read_array_header_1_0(source)
        header_end = source.tell()
        source.seek(header_end + int(np.prod(shape)) * dtype.itemsize)
        parts[f"{name} header"] = (start, header_end)
        parts[name] = (header_end, source.tell())
    start = source.tell()
    np.lib.format.read_magic(source)
    np.lib.format.read_array_header_1_0(source)
    parts["values header"] = (start, source.tell())
    parts["values"] = (source.tell(), len(data) - TRAILER)
    parts["trailer"] = (len(data) - TRAILER, len(data))
    return parts


@pytest.fixture(scope="module")
def clean(images, model, module_tmp):
    """The numbers of an undamaged store, and its one shard's bytes."""
    cache_dir = module_tmp("clean")
    said: list[str] = []
    table = _extract(images, model, cache_dir, said)
    assert table.extracted == len(images) - 1 and said == []
    shard, = cache_dir.rglob("*.shard")
    return np.asarray(table.values), dict(table.errors), shard.read_bytes(), shard.name


PARTS = ["keys", "failure keys", "reasons", "keys header", "values header", "values", "trailer"]


@pytest.mark.parametrize("part", PARTS)
def test_a_flipped_byte_anywhere_is_set_aside_and_recomputed(images, model, clean, tmp_path,
                                                            part):
    values, errors, data, name = clean
    shard = _install(tmp_path, data, name)
    start, end = _parts(shard)[part]
    damaged = bytearray(data)
    damaged[(start + end) // 2] ^= 0x10  # one bit, in the middle of the part
    shard.write_bytes(bytes(damaged))
    said: list[str] = []
    table = _extract(images, model, tmp_path / "store", said)
    assert np.array_equal(np.asarray(table.values), values)  # what an undamaged store serves
    assert table.errors == errors
    assert table.extracted == len(images) - 1  # every entry of the shard computed again
    _assert_set_aside(shard, said, entries=2 * (len(images) - 1))


def _install(tmp_path: Path, data: bytes, name: str) -> Path:
    """The clean store's shard (or what is left of it) in a new store; its path."""
    root = FeatureCache(tmp_path / "store", "f" * 64, Preprocessing(store_worker.SIZE)).root
    root.mkdir(parents=True)
    (root / name).write_bytes(data)
    return root / name


def _assert_set_aside(shard: Path, said: list[str], entries: int) -> None:
    real = shard
    assert not real.exists()
    kept = real.with_name(real.name + ".damaged")
    assert kept.is_file()  # nothing lost for a post-mortem
    assert len(said) == 1, said
    assert str(real) in said[0] and f"({entries} entries)" in said[0], said[0]
    assert len(list(real.parent.glob("*.shard"))) == 1  # the recomputed entries' new shard


def test_a_truncated_shard_is_set_aside(images, model, clean, tmp_path):
    values, _, data, name = clean
    shard = _install(tmp_path, data[: len(data) // 2], name)
    said: list[str] = []
    table = _extract(images, model, tmp_path / "store", said)
    assert np.array_equal(np.asarray(table.values), values)
    assert table.extracted == len(images) - 1
    assert shard.with_name(shard.name + ".damaged").is_file()
    assert len(said) == 1 and "truncated" in said[0] and str(shard) in said[0]


def test_a_shard_of_an_earlier_version_is_not_trusted(images, model, clean, tmp_path):
    """Written before checksums (the same arrays, no trailer): a miss once, then rewritten."""
    values, _, data, name = clean
    _install(tmp_path, data[:-TRAILER], name)
    said: list[str] = []
    table = _extract(images, model, tmp_path / "store", said)
    assert np.array_equal(np.asarray(table.values), values)
    assert table.extracted == len(images) - 1
    assert len(said) == 1 and "earlier version" in said[0]
    assert f"({2 * (len(images) - 1)} entries)" in said[0]
    again: list[str] = []
    assert _extract(images, model, tmp_path / "store", again).extracted == 0 and again == []


def test_a_damaged_index_does_not_stay_forever(images, model, clean, tmp_path):
    """A damaged key made its entries quiet misses before; now the file is set aside once."""
    _, _, data, name = clean
    shard = _install(tmp_path, data, name)
    start, _ = _parts(shard)["keys"]
    damaged = bytearray(data)
    damaged[start] ^= 0x01
    shard.write_bytes(bytes(damaged))
    _extract(images, model, tmp_path / "store", [])
    said: list[str] = []
    assert _extract(images, model, tmp_path / "store", said).extracted == 0
    assert said == []


def test_values_are_checked_before_the_first_row_is_served(images, model, clean, tmp_path):
    """The index opens, the lookup finds every entry, and still the changed value is caught."""
    _, _, data, name = clean
    shard = _install(tmp_path, data, name)
    _, end = _parts(shard)["values"]
    damaged = bytearray(data)
    damaged[end - 1] ^= 0x40  # the last value's last byte
    shard.write_bytes(bytes(damaged))
    said: list[str] = []
    cache = FeatureCache(tmp_path / "store", "f" * 64, Preprocessing(store_worker.SIZE),
                         warn=said.append)
    prefixes = cache.keys(images)
    assert len(cache.index.shards) == 1  # the index is intact
    table, missing = cache.table(prefixes, 2)
    assert len(missing) == len(images) and len(said) == 1  # not one entry served (failures too)
    assert np.asarray(table.values).sum() == 0


def test_non_finite_values_are_never_stored(tmp_path):
    cache = FeatureCache(tmp_path, "f" * 64, Preprocessing(32), precision="mixed_bfloat16")
    prefixes = cache.keys([tmp_path])
    with pytest.raises(ValueError, match="never stored"), cache.writer() as writer:
        writer.put(prefixes, np.array([[[1.0, np.nan]]], np.float32))
    with pytest.raises(ValueError, match="never stored"), cache.writer() as writer:
        writer.put(prefixes, np.array([[[1.0, 7e4]]], np.float32))  # inf as float16
    assert list(tmp_path.rglob("*.shard")) == []
    assert json.dumps(cache.table(prefixes, 1)[1]) == "[0]"
