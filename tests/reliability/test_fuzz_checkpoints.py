"""Damaged checkpoints in every format ``convert`` reads: one ``error:`` line, exit 2, nothing
written, within 10 s and 2 GB.

Hypothesis damages a corpus of valid ResNet-50 checkpoints written by the libraries that write
real ones (:mod:`support.checkpoint_corpus`): truncations at many offsets, one byte flipped in
headers, tables and directories, or in float data. ``convert``, run in process, must exit 2
with exactly one stderr line, an ``error:`` line, no traceback, within 10 s and 2 GB more peak
memory, leaving the output folder empty (no ``OUT.keras``, no temporary file). Only damage a
reader cannot see may convert: a flipped float (the output must load), or a byte no reader
consults (HDF5 free space, zip padding), whose conversion must equal the undamaged file's.

Hand-made cases reach what random damage rarely does: empty files, directories and random
bytes named like checkpoints, safetensors headers that lie, TensorFlow tables with valid
checksums (:mod:`support.sstable`) and impossible shapes or dtypes (TensorFlow's reader aborts
the process on some), HDF5 datasets declaring more than they store, ``torch.save`` damage
PyTorch loads without a word."""

from __future__ import annotations

import resource
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.checkpoint_corpus import (
    Specimen,
    damaged_copy,
    edited_bundle,
    edited_keras3,
    edited_safetensors,
    edited_v1,
    weights_digest,
    write_corpus,
)
from support.cli import assert_one_line_error

LIMIT_S = 10.0
LIMIT_KIB = 2 * 1024 * 1024  # ru_maxrss is in KiB on Linux
FUZZ = {"deadline": None, "derandomize": True, "database": None,
        "suppress_health_check": [HealthCheck.function_scoped_fixture]}
NAMES = ("slim_v2_index", "slim_v2_data", "slim_v1", "keras3", "keras2", "safetensors", "pth")
#: Checksums, strict JSON: flips are refused, cheaply (not in unread bytes, ignored names).
TABLES = ("slim_v2_index", "slim_v1", "safetensors")
#: HDF5 and zip hold many bytes no reader consults: flips there convert (costing seconds).
CONTAINERS = ("keras3", "keras2", "pth")
PAYLOADS = ("slim_v2_data", "keras3", "keras2", "safetensors", "pth")
MASKS = st.sampled_from([0x01, 0x02, 0x04, 0x10, 0x40, 0x80, 0xFF])


@pytest.fixture(scope="module")
def corpus(module_tmp) -> dict[str, Specimen]:
    return write_corpus(module_tmp("corpus"))


@pytest.fixture(scope="module")
def pristine(corpus, module_tmp):
    """The weights digest of a specimen's undamaged conversion, made on first use."""
    from resnet_ft.conversion.converter import convert

    folder, digests = module_tmp("pristine"), {}

    def digest(specimen: Specimen) -> str:
        source = specimen.target.parent / specimen.source
        if source not in digests:
            convert(source, folder / f"{specimen.name}.keras")
            digests[source] = weights_digest(folder / f"{specimen.name}.keras")
        return digests[source]

    return digest


def assert_refused(cli, source: Path, out_dir: Path, *fragments: str, converted=None) -> None:
    """``convert`` in process, within 10 s and 2 GB: exit 2, one ``error:`` line holding
    ``fragments``, an empty output folder; or, only where ``converted`` is given, exit 0 with
    ``OUT.keras`` alone in the folder, passing ``converted(OUT.keras)``."""
    out = out_dir / "backbone.keras"
    out_dir.mkdir(parents=True, exist_ok=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    result = cli("convert", source, "-o", out)
    elapsed = time.perf_counter() - start
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak
    assert elapsed < LIMIT_S, f"{source}: {elapsed:.1f} s"
    assert grown < LIMIT_KIB, f"{source}: peak memory grew by {grown / 2**20:.2f} GiB"
    if converted is not None and result.code == 0:
        assert list(out_dir.iterdir()) == [out]
        converted(out)
        return
    assert_one_line_error(result, *fragments)
    assert list(out_dir.iterdir()) == [], "a failed conversion must leave nothing behind"


@settings(max_examples=60, **FUZZ)
@given(data=st.data())
def test_truncated_anywhere(cli, corpus, tmp_path, data):
    specimen = corpus[data.draw(st.sampled_from(NAMES), label="specimen")]
    size = specimen.size
    length = data.draw(st.one_of(st.integers(0, 4096), st.integers(size - 4096, size - 1),
                                 st.integers(0, size - 1)), label="length")
    with tempfile.TemporaryDirectory(dir=tmp_path) as case:  # examples share tmp_path
        assert_refused(cli, damaged_copy(specimen, Path(case, "src"), truncate=length),
                       Path(case, "out"))


def _flip(data, ranges) -> tuple[int, int]:
    """(offset, mask): a range first, uniformly (small structures count as much as big ones)."""
    low, high = data.draw(st.sampled_from(ranges), label="range")
    return data.draw(st.integers(low, high - 1), label="offset"), data.draw(MASKS, label="mask")


def _flip_metadata(cli, corpus, pristine, tmp_path, data, names) -> None:
    """One flip outside the float data: refused, or converted to exactly the undamaged weights."""
    specimen = corpus[data.draw(st.sampled_from(names), label="specimen")]
    flip = _flip(data, specimen.metadata())

    def unchanged(out: Path) -> None:
        assert weights_digest(out) == pristine(specimen), f"{specimen.name} {flip}: silently wrong"

    with tempfile.TemporaryDirectory(dir=tmp_path) as case:
        assert_refused(cli, damaged_copy(specimen, Path(case, "src"), flip=flip),
                       Path(case, "out"), converted=unchanged)


@settings(max_examples=50, **FUZZ)
@given(data=st.data())
def test_flipped_table_byte(cli, corpus, pristine, tmp_path, data):
    _flip_metadata(cli, corpus, pristine, tmp_path, data, TABLES)


@settings(max_examples=14, **FUZZ)
@given(data=st.data())
def test_flipped_container_byte(cli, corpus, pristine, tmp_path, data):
    _flip_metadata(cli, corpus, pristine, tmp_path, data, CONTAINERS)


@settings(max_examples=8, **FUZZ)
@given(data=st.data())
def test_flipped_float_is_refused_or_loads(cli, corpus, tmp_path, data):
    from resnet_ft.models.files import load_backbone

    specimen = corpus[data.draw(st.sampled_from(PAYLOADS), label="specimen")]
    flip = _flip(data, specimen.payload)
    with tempfile.TemporaryDirectory(dir=tmp_path) as case:
        assert_refused(cli, damaged_copy(specimen, Path(case, "src"), flip=flip),
                       Path(case, "out"), converted=load_backbone)


SUFFIXES = (".index", ".ckpt", ".h5", ".weights.h5", ".hdf5", ".safetensors", ".pth", ".pt")


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_empty_file(cli, tmp_path, suffix):
    source = tmp_path / f"model{suffix}"
    source.touch()
    assert_refused(cli, source, tmp_path / "out", "the file is empty", source.name)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_random_bytes(cli, tmp_path, suffix):
    source = tmp_path / f"model{suffix}"
    source.write_bytes(np.random.default_rng(len(suffix)).bytes(65536))
    assert_refused(cli, source, tmp_path / "out", "cannot read checkpoint", source.name)


@pytest.mark.parametrize(("name", "fragment"), [
    ("model.ckpt", "unrecognised checkpoint format"),
    ("model.ckpt.index", "unrecognised checkpoint format"),
    ("resnet50.h5", "is a directory"),
    ("resnet50.weights.h5", "is a directory"),
    ("resnet50.safetensors", "is a directory"),
    ("resnet50.pth", "is a directory"),
])
def test_directory_named_like_a_checkpoint(cli, tmp_path, name, fragment):
    (tmp_path / name).mkdir()
    assert_refused(cli, tmp_path / name, tmp_path / "out", fragment, name)


def test_data_file_is_a_directory(cli, corpus, tmp_path):
    index = corpus["slim_v2_index"].target
    shutil.copy(index, tmp_path / index.name)
    (tmp_path / corpus["slim_v2_data"].target.name).mkdir()
    assert_refused(cli, tmp_path / "model.ckpt", tmp_path / "out", "missing (or not a file)")


CONV1 = "layer1.0.conv1.weight"
CONV3 = "layer1.0.conv3.weight"  # (256, 64, 1, 1): its first two dimensions differ


def _set(key: str, field: str, value):
    return lambda header: header[key].__setitem__(field, value)


@pytest.mark.parametrize(("edit", "fragment"), [
    (lambda h: h[CONV1].__setitem__("data_offsets", h["layer1.0.conv2.weight"]["data_offsets"]),
     "invalid offset"),
    (_set(CONV1, "data_offsets", [2**40, 2**40 + 16384]), "invalid offset"),
    (_set(CONV1, "dtype", "XX"), "unknown variant `XX`"),
    (_set(CONV1, "dtype", "F16"), "invalid shape, data type, or offset"),
    (_set(CONV1, "dtype", "I32"), "stored in a non-float type"),
    (_set(CONV3, "shape", [64, 256, 1, 1]), "1 shape mismatch"),
    (_set(CONV1, "shape", [2**40, 64, 1, 1]), "invalid shape, data type, or offset"),
    (_set(CONV1, "shape", [-64, 64, 1, 1]), "cannot read checkpoint"),
], ids=["overlapping-offsets", "out-of-range-offsets", "unknown-dtype", "dtype-of-other-size",
        "int-dtype", "wrong-shape", "huge-shape", "negative-shape"])
def test_safetensors_header_that_lies(cli, corpus, tmp_path, edit, fragment):
    source = edited_safetensors(corpus["safetensors"], tmp_path, edit)
    assert_refused(cli, source, tmp_path / "out", fragment)


def test_safetensors_header_longer_than_the_file(cli, corpus, tmp_path):
    specimen = corpus["safetensors"]
    source = edited_safetensors(specimen, tmp_path, lambda h: None, length=2 * specimen.size)
    assert_refused(cli, source, tmp_path / "out", "cannot read checkpoint", "header too large")


VARIABLE = "resnet_v1_50/block2/unit_1/bottleneck_v1/conv2/weights"  # (3, 3, 128, 128)


def _entry(change):
    return lambda name, proto: change(proto) if name == VARIABLE else None


def _dim(size: int):
    return _entry(lambda proto: setattr(proto.shape.dim[0], "size", size))


@pytest.mark.parametrize(("edit", "fragments"), [
    (_dim(2**40), (VARIABLE, "shape (1099511627776, 3, 128, 128) but its index entry holds")),
    (_dim(-5), (VARIABLE, "invalid shape (-5, 3, 128, 128)")),
    (_entry(lambda proto: setattr(proto.shape.dim.add(), "size", 2**20)),
     (VARIABLE, "index entry holds 589824 bytes")),
    (_entry(lambda proto: setattr(proto, "dtype", 77)), (VARIABLE, "unknown dtype (77)")),
    (_entry(lambda proto: setattr(proto, "dtype", 3)), (VARIABLE, "stored in a non-float type")),
    (_entry(lambda proto: setattr(proto, "offset", 2**40)),
     (VARIABLE, "truncated or corrupt data file")),
    (_entry(lambda proto: setattr(proto, "shard_id", 3)), (VARIABLE, "which is missing")),
    (lambda name, proto: setattr(proto, "num_shards", 0) if name == "" else None,
     ("names 0 data files",)),
], ids=["huge-dim", "negative-dim", "huge-rank", "unknown-dtype", "int-dtype", "offset-past-end",
        "missing-shard", "no-shards"])
def test_slim_index_that_lies(cli, corpus, tmp_path, edit, fragments):
    prefix = edited_bundle(corpus["slim_v2_index"].target, corpus["slim_v2_data"].target,
                           tmp_path, edit)
    assert_refused(cli, prefix, tmp_path / "out", *fragments)


V1_VALUES = {"resnet_v1_50/block3/unit_6/bottleneck_v1/conv1/weights": np.ones((2, 2), "f4"),
             "resnet_v1_50/conv1/weights": np.ones((3, 3, 3, 4), "f4")}


@pytest.mark.parametrize(("edit", "fragment"), [
    (lambda meta: setattr(meta.shape.dim[0], "size", 2**40), "more data than the file holds"),
    (lambda meta: setattr(meta.shape.dim[0], "size", -2), "invalid shape (-2, 2)"),
    (lambda meta: setattr(meta, "type", 77), "unknown dtype (77)"),
], ids=["huge-dim", "negative-dim", "unknown-dtype"])
def test_slim_v1_tensor_list_that_lies(cli, tmp_path, edit, fragment):
    source = edited_v1(tmp_path, V1_VALUES, edit)
    assert_refused(cli, source, tmp_path / "out", "cannot read checkpoint", fragment)


@pytest.mark.parametrize(("edit", "fragment"), [
    ({"shape": (2**20, 2**20, 3, 3)}, "declares shape (1048576, 1048576, 3, 3)"),
    ({"shape": (640, 1024, 1024)}, "declares shape (640, 1024, 1024)"),  # 2.7 GB
    ({"dtype": "i4"}, "stored in a non-float type"),
    ({"flatten": True}, "1 shape mismatch"),
], ids=["huge-unwritten", "over-the-memory-limit", "int-dtype", "wrong-shape"])
def test_hdf5_dataset_that_lies(cli, corpus, tmp_path, edit, fragment):
    source = edited_keras3(corpus["keras3"], tmp_path, **edit)
    assert_refused(cli, source, tmp_path / "out", fragment)


def test_hdf5_damage_h5py_reports_as_runtime_error(cli, corpus, tmp_path):
    specimen = corpus["keras3"]
    flip = (specimen.target.read_bytes().index(b"SNOD"), 0x01)  # a symbol-table node's signature
    source = damaged_copy(specimen, tmp_path / "src", flip=flip)
    assert_refused(cli, source, tmp_path / "out", "bad symbol table node signature")


@pytest.mark.parametrize(("where", "mask", "fragment"), [
    # data.pkl: bn1.bias's storage key "2" becomes "0", conv1.weight's (float32, large enough)
    (lambda raw, records: raw.index(b"X\x01\x00\x00\x002") + 5, 0x02, "Bad CRC-32"),
    # a record's local header: its name one byte shorter, so its data is read one byte early
    (lambda raw, records: records[100].header_offset + 26, 0x01, "differ"),
], ids=["pickle-points-at-another-tensor", "record-read-off-by-one"])
def test_pth_damage_pytorch_loads_silently(cli, corpus, tmp_path, where, mask, fragment):
    import torch

    specimen = corpus["pth"]
    with zipfile.ZipFile(specimen.target) as archive:
        records = [info for info in archive.infolist() if "/data/" in info.filename]
    flip = (where(specimen.target.read_bytes(), records), mask)
    source = damaged_copy(specimen, tmp_path / "src", flip=flip)
    torch.load(source, weights_only=True)  # PyTorch checks no CRC-32, nor the local headers
    assert_refused(cli, source, tmp_path / "out", fragment)
