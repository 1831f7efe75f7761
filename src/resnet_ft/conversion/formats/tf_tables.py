"""A TensorFlow checkpoint's tables, checked before TensorFlow's own reader opens them.

TensorFlow's C++ checkpoint reader trusts the entries of a table: a negative
dimension or an unknown dtype in a V2 ``.index`` aborts the whole process (a
failed CHECK, not an exception), and a shape too large for memory makes its
allocator retry for ten seconds before the size mismatch is reported. A
damaged or crafted checkpoint must be one ``error:`` line instead, so
:func:`check_checkpoint` reads the metadata itself and checks each entry's
dtype, shape and extent first.

The tables are LevelDB's format: blocks of prefix-compressed key/value entries,
each followed by a compression byte and a masked CRC-32C, an index block
pointing at them, and a 48-byte footer. Only metadata is read: a V2 ``.index``
whole (kilobytes), and of a V1 file (one table holding everything) the footer,
the index block and the first block, which holds the tensor list under the key
``""``. Tensor bytes are left to TensorFlow, which checksums them as it reads.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from resnet_ft.errors import CheckpointError

_FOOTER = 48
_MAGIC = 0xDB4775248B80FB57
_MASK_DELTA = 0xA282EAD8
#: Bytes per element of the dtypes a checkpoint of weights can hold (DT_STRING: variable).
_ITEM_BYTES = {
    "DT_FLOAT": 4, "DT_DOUBLE": 8, "DT_HALF": 2, "DT_BFLOAT16": 2, "DT_INT8": 1,
    "DT_INT16": 2, "DT_INT32": 4, "DT_INT64": 8, "DT_UINT8": 1, "DT_UINT16": 2,
    "DT_UINT32": 4, "DT_UINT64": 8, "DT_BOOL": 1, "DT_COMPLEX64": 8, "DT_COMPLEX128": 16,
    "DT_QINT8": 1, "DT_QUINT8": 1, "DT_QINT16": 2, "DT_QUINT16": 2, "DT_QINT32": 4,
    "DT_STRING": 0,
}
#: The fewest bytes one element takes in a V1 file (repeated proto fields: packed fixed-size
#: floats, varints of at least one byte for the rest).
_V1_MIN_BYTES = {"DT_FLOAT": 4, "DT_DOUBLE": 8, "DT_COMPLEX64": 8, "DT_COMPLEX128": 16}
#: Blocks up to this size have their checksum verified here (a pure-Python CRC runs at about
#: 10 MB/s); TensorFlow verifies every block it reads anyway, so this only makes a flipped byte
#: read as what it is. TensorFlow's writers make blocks of 256 KiB, plus one entry at most.
_CHECKED_BLOCK = 1 << 20
Entries = list[tuple[bytes, bytes]]


class _Corrupt(Exception):
    """The table's structure is broken; the message says where."""


def check_checkpoint(prefix: Path, shown: Path) -> None:
    """Check the V2 bundle at ``prefix`` or the V1 file ``prefix`` (``shown`` names it to the user).

    A prefix that is neither (a pattern, a missing file) is left to TensorFlow's
    reader, whose error message is the one to give.
    """
    index = Path(f"{prefix}.index")
    try:
        if index.is_file():
            with index.open("rb") as handle:
                table = _Table(handle)
                entries = [e for block in table.blocks() for e in table.entries(*block)]
            _check_bundle(prefix, entries, shown)
        elif prefix.is_file():
            _check_v1(prefix)
    except _Corrupt as exc:
        raise CheckpointError(f"cannot read checkpoint {shown}: {exc}") from exc
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {shown}: {exc.strerror or exc}") from exc


def _check_bundle(prefix: Path, entries: Entries, shown: Path) -> None:
    """Every variable of a V2 index: a known dtype, a real shape, bytes inside its data file."""
    from google.protobuf.message import DecodeError
    from tensorflow.core.protobuf.tensor_bundle_pb2 import BundleEntryProto, BundleHeaderProto

    if not entries or entries[0][0] != b"":
        raise _Corrupt("the index has no header entry (not a TensorFlow checkpoint index?)")
    try:
        header = BundleHeaderProto.FromString(entries[0][1])
    except DecodeError as exc:
        raise _Corrupt(f"unreadable index header ({exc})") from exc
    count = header.num_shards
    if not 1 <= count <= 99999:
        raise _Corrupt(f"the index header names {count} data files (corrupt index?)")
    shards = [Path(f"{prefix}.data-{i:05d}-of-{count:05d}") for i in range(count)]
    sizes = [shard.stat().st_size if shard.is_file() else None for shard in shards]
    for key, value in entries[1:]:
        name = key.decode("utf-8", "replace")
        try:
            entry = BundleEntryProto.FromString(value)
        except DecodeError as exc:
            raise _Corrupt(f"unreadable index entry for {name} ({exc})") from exc
        numel, item = _numel(name, entry.dtype, entry.shape)
        if entry.slices:  # a partitioned variable: its slices are entries of their own
            if numel * max(item, 1) > sum(size or 0 for size in sizes):
                raise _Corrupt(f"variable {name} declares more data than the checkpoint holds")
            continue
        if not (numel * item == entry.size if item else numel <= entry.size):
            # a number takes exactly its dtype's bytes, a string at least one (its length)
            raise _Corrupt(f"variable {name} has shape {_dims(entry.shape)} but its index entry "
                           f"holds {entry.size} bytes (corrupt index?)")
        if not 0 <= entry.shard_id < count or sizes[entry.shard_id] is None:
            missing = shards[entry.shard_id].name if 0 <= entry.shard_id < count else "?"
            raise _Corrupt(f"variable {name} is in data file {missing}, which is missing "
                           "(or not a file)")
        end, size = entry.offset + entry.size, sizes[entry.shard_id]
        if end > size:
            raise CheckpointError(
                f"cannot read variable {name} from {shown} (truncated or corrupt data file?): "
                f"it ends at byte {end} of {shards[entry.shard_id].name}, which has {size}"
            )


def _check_v1(path: Path) -> None:
    """The tensor list of a V1 file: known dtypes, real shapes, no more data than the file has."""
    from google.protobuf.message import DecodeError
    from tensorflow.core.util.saved_tensor_slice_pb2 import SavedTensorSlices

    with path.open("rb") as handle:
        table = _Table(handle)
        blocks = table.blocks()
        first = next(table.entries(*blocks[0]), None) if blocks else None
    if first is None or first[0] != b"":
        raise _Corrupt("no tensor list (not a TensorFlow checkpoint?)")
    try:
        meta = SavedTensorSlices.FromString(first[1]).meta
    except DecodeError as exc:
        raise _Corrupt(f"unreadable tensor list ({exc})") from exc
    for tensor in meta.tensor:
        numel, _ = _numel(tensor.name, tensor.type, tensor.shape)
        if numel * _V1_MIN_BYTES.get(_dtype_name(tensor.type), 1) > table.size:
            raise _Corrupt(f"variable {tensor.name} declares more data than the file holds "
                           "(corrupt file?)")


def _numel(name: str, dtype: int, shape: object) -> tuple[int, int]:
    """Elements of a stored shape and bytes per element; refuses what TensorFlow cannot take."""
    kind = _dtype_name(dtype)
    if kind not in _ITEM_BYTES:
        what = f"an unknown dtype ({dtype})" if kind == "" else f"dtype {kind}, which no weight has"
        raise _Corrupt(f"variable {name} has {what} (corrupt index?)")
    dims = _dims(shape)
    if shape.unknown_rank or any(d < 0 for d in dims):  # type: ignore[attr-defined]
        raise _Corrupt(f"variable {name} has an invalid shape {dims} (corrupt index?)")
    return math.prod(dims), _ITEM_BYTES[kind]


def _dims(shape: object) -> tuple[int, ...]:
    return tuple(dim.size for dim in shape.dim)  # type: ignore[attr-defined]


def _dtype_name(value: int) -> str:
    from tensorflow.core.framework import types_pb2

    try:
        return types_pb2.DataType.Name(value)
    except ValueError:  # no DataType has this number
        return ""


class _Table:
    """A table file read block by block (a V1 table is the whole checkpoint: never read all)."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.size = handle.seek(0, 2)

    def read(self, offset: int, length: int) -> bytes:
        self.handle.seek(offset)
        return self.handle.read(length)

    def blocks(self) -> list[tuple[int, int]]:
        """The (offset, size) of every data block, from the footer and the index block."""
        if self.size < _FOOTER:
            raise _Corrupt("file is too short to be an sstable")
        footer = self.read(self.size - _FOOTER, _FOOTER)
        if struct.unpack("<Q", footer[-8:])[0] != _MAGIC:
            raise _Corrupt("not an sstable (bad magic number)")
        _, pos = _varint(footer, 0)
        _, pos = _varint(footer, pos)  # the metaindex block: unused by TensorFlow
        offset, pos = _varint(footer, pos)
        length, _ = _varint(footer, pos)
        blocks = []
        for _, value in self.entries(offset, length):
            start, pos = _varint(value, 0)
            blocks.append((start, _varint(value, pos)[0]))
        return blocks

    def entries(self, offset: int, size: int) -> Iterator[tuple[bytes, bytes]]:
        """The entries of the block at ``offset``, checked: inside the file, uncompressed
        (TensorFlow writes no other) and, up to :data:`_CHECKED_BLOCK` bytes, its checksum."""
        if offset + size + 5 > self.size - _FOOTER:
            raise _Corrupt(f"a block at offset {offset} lies outside the file")
        raw = self.read(offset, size + 5)
        contents, kind, stored = raw[:size], raw[size:size + 1], raw[size + 1:]
        if size <= _CHECKED_BLOCK and struct.unpack("<I", stored)[0] != _masked_crc(raw[:-4]):
            raise _Corrupt(f"block checksum mismatch at offset {offset}")
        if kind != b"\x00":
            raise _Corrupt(f"compressed block at offset {offset} (TensorFlow writes none)")
        return _entries(contents)


def _entries(block: bytes) -> Iterator[tuple[bytes, bytes]]:
    """The key/value entries of a block, keys restored from their shared prefixes."""
    if len(block) < 4:
        raise _Corrupt("a block is too short")
    (restarts,) = struct.unpack("<I", block[-4:])
    end = len(block) - 4 - 4 * restarts
    if end < 0:
        raise _Corrupt("a block's restart table is longer than the block")
    key, pos = b"", 0
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        length, pos = _varint(block, pos)
        if shared > len(key) or pos + unshared + length > end:
            raise _Corrupt("an entry runs past its block")
        key = key[:shared] + block[pos:pos + unshared]
        pos += unshared
        yield key, block[pos:pos + length]
        pos += length


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for shift in range(0, 64, 7):
        if pos >= len(data):
            raise _Corrupt("a length runs past its block")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
    raise _Corrupt("a length is longer than 64 bits")


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
        table.append(crc)
    return table


_CRC_TABLE = _crc_table()


def _masked_crc(data: bytes) -> int:
    """LevelDB's masked CRC-32C (Castagnoli): a CRC stored inside CRC'd data is not degenerate."""
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF
