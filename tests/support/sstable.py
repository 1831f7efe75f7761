"""Read and write the SSTable files TensorFlow keeps checkpoint indexes in, from the format spec.

A V2 checkpoint's ``.index`` (and a V1 checkpoint as a whole) is a LevelDB
table: blocks of prefix-compressed key/value entries, each followed by a
compression byte and a masked CRC-32C, an index block mapping each data
block's last key to its place, and a 48-byte footer. Because every block is
checksummed, a flipped byte never reaches TensorFlow's parser; a test that
wants a well-formed table holding a damaged entry (a huge or negative shape,
an unknown dtype) rewrites the table here with valid checksums.

Written after LevelDB's ``doc/table_format.md`` and TensorFlow's
``tsl/lib/io/format.cc``; nothing here comes from TensorFlow.
"""

from __future__ import annotations

import struct

_MAGIC = 0xDB4775248B80FB57
_FOOTER = 48
_MASK_DELTA = 0xA282EAD8
_CRC_TABLE: list[int] = []


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli, reflected polynomial 0x82F63B78)."""
    if not _CRC_TABLE:
        for byte in range(256):
            crc = byte
            for _ in range(8):
                crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
            _CRC_TABLE.append(crc)
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _masked(crc: int) -> int:
    """LevelDB stores CRCs masked, so that a CRC of data holding CRCs is not degenerate."""
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _block(data: bytes, offset: int, size: int) -> list[tuple[bytes, bytes]]:
    """The entries of the uncompressed block at ``offset``, its checksum verified."""
    contents, trailer = data[offset:offset + size], data[offset + size:offset + size + 5]
    assert trailer[0] == 0, "compressed blocks are not supported"
    assert struct.unpack("<I", trailer[1:])[0] == _masked(crc32c(contents + trailer[:1]))
    (restarts,) = struct.unpack("<I", contents[-4:])
    end = len(contents) - 4 - 4 * restarts
    entries, key, pos = [], b"", 0
    while pos < end:
        shared, pos = _read_varint(contents, pos)
        unshared, pos = _read_varint(contents, pos)
        length, pos = _read_varint(contents, pos)
        key = key[:shared] + contents[pos:pos + unshared]
        pos += unshared
        entries.append((key, contents[pos:pos + length]))
        pos += length
    return entries


def _handle(value: bytes, pos: int = 0) -> tuple[int, int, int]:
    offset, pos = _read_varint(value, pos)
    size, pos = _read_varint(value, pos)
    return offset, size, pos


def read_table(data: bytes) -> list[tuple[bytes, bytes]]:
    """Every key/value entry of a table, in key order."""
    footer = data[-_FOOTER:]
    assert struct.unpack("<Q", footer[-8:])[0] == _MAGIC, "not an SSTable"
    _, _, pos = _handle(footer)  # the metaindex block: unused by TensorFlow
    index_offset, index_size, _ = _handle(footer, pos)
    entries = []
    for _, handle in _block(data, index_offset, index_size):
        offset, size, _ = _handle(handle)
        entries += _block(data, offset, size)
    return entries


def _write_block(out: bytearray, entries: list[tuple[bytes, bytes]]) -> bytes:
    """Append one block (every entry a restart point) to ``out``; return its handle."""
    contents = bytearray()
    restarts = []
    for key, value in entries:
        restarts.append(len(contents))
        contents += _varint(0) + _varint(len(key)) + _varint(len(value)) + key + value
    for restart in restarts:
        contents += struct.pack("<I", restart)
    contents += struct.pack("<I", len(restarts))
    handle = _varint(len(out)) + _varint(len(contents))
    trailer = b"\x00"
    out += contents + trailer + struct.pack("<I", _masked(crc32c(bytes(contents) + trailer)))
    return handle


def write_table(entries: list[tuple[bytes, bytes]]) -> bytes:
    """A valid table holding ``entries``, one data block each.

    One block per entry, as TensorFlow's 4 KiB blocks amount to for tensor-sized
    values: a reader that looks one entry up reads that block, not the whole file.
    """
    out = bytearray()
    handles = [(key, _write_block(out, [(key, value)])) for key, value in sorted(entries)]
    metaindex = _write_block(out, [])
    index = _write_block(out, handles)
    out += (metaindex + index).ljust(_FOOTER - 8, b"\x00") + struct.pack("<Q", _MAGIC)
    return bytes(out)
