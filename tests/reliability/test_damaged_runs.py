"""Damaged runs given to ``predict``, ``evaluate``, ``summary``, ``export`` and ``report``: one
``error:`` line naming the damage, exit 2, no traceback, nothing at the output path.

Every damaged input is an :class:`~resnet_ft.errors.InputError`, so the exit code is 2
(``EXIT_USAGE``) for all five commands. A run (:mod:`resnet_ft.runs.run`) holds
``model.keras`` (the network, its weights and ``resnet_ft.json``: labels and preprocessing),
``labels.json``, ``split.csv``, ``skipped.csv`` when images were skipped, and ``config.yaml``
(:func:`support.tiny_run.write_tiny_run` writes no ``config.yaml``: its absence is the baseline).
Each case copies a tiny trained run, damages one file and runs one command on it.

A command that does not read the damaged file must behave as on the undamaged run: ``summary``
reads only the network; ``predict`` and ``evaluate`` do not read ``split.csv``; ``config.yaml``
only decides whether cached features are reused, and nothing here reads ``skipped.csv``.
``report`` on the tiny run stops with "heat maps need a Keras model with its feature map" (a
small CNN has none): damage it detects must be reported before that, and damage it does not
read must end the same way.
"""

from __future__ import annotations

import json
import shutil
import struct
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.cli import assert_one_line_error
from support.tiny_run import write_tiny_run

COMMANDS = ("predict", "evaluate", "summary", "export", "report")
LABELS = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]


@pytest.fixture(scope="module")
def tiny(module_tmp) -> tuple[Path, Path]:
    """(run, images): a seeded small CNN saved as a run, and the images it was split from."""
    from resnet_ft.data.standin import write_standin_images

    root = module_tmp("tiny")
    images = write_standin_images(root / "images", per_class=4, min_size=30, max_size=40)
    return write_tiny_run(images, root / "run", widths=(4,)), images


@pytest.fixture(scope="module")
def undamaged() -> dict[str, tuple[int, str]]:
    """Each command's (exit code, last stderr line) on the undamaged run, filled on first use."""
    return {}


def _args(command: str, run: Path, images: Path, out: Path) -> list[object]:
    image = next((images / "tulips").glob("*.jpg"))
    return {"predict": ["predict", run, image, "--json"], "summary": ["summary", run],
            "evaluate": ["evaluate", run, images, "-o", out], "export": ["export", run, "-o", out],
            "report": ["report", run, "-o", out]}[command]


def _rezip(model: Path, member: str, data: bytes | None) -> None:
    """Rewrite ``model.keras`` with ``member`` replaced by ``data`` (left out when ``None``)."""
    with zipfile.ZipFile(model) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    with zipfile.ZipFile(model, "w") as archive:
        for name, content in members.items():
            if name != member or data is not None:
                archive.writestr(name, data if name == member else content)


def _flip_weights(model: Path) -> None:
    """One bit flipped in the middle of the stored ``model.weights.h5`` (zip keeps a CRC-32)."""
    raw = bytearray(model.read_bytes())
    with zipfile.ZipFile(model) as archive:
        info = archive.getinfo("model.weights.h5")
    names, extra = struct.unpack("<HH", raw[info.header_offset + 26:info.header_offset + 30])
    raw[info.header_offset + 30 + names + extra + info.compress_size // 2] ^= 0x40
    model.write_bytes(raw)


def _metadata(value: object):
    return lambda run: _rezip(run / "model.keras", "resnet_ft.json", json.dumps(value).encode())


def _replace_with_directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


def _write(name: str, data: bytes):
    return lambda run: (run / name).write_bytes(data)


def _cut(run: Path) -> None:
    model = run / "model.keras"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])


NOT_UTF8 = b"\xff\xfe\x00 not text \x81"
GEOMETRY = {"kind": "classifier", "labels": LABELS,
            "preprocessing": {"image_size": -3, "resize": "crop", "crop_fraction": 0.875}}
#: damage -> (how, the fragment every refusing command's line holds, commands that do not read
#: the damaged file and so behave as on the undamaged run)
DAMAGES = {
    "model-truncated": (_cut, "not a Keras model file", ()),
    "model-random-bytes": (_write("model.keras", bytes(range(256)) * 64),
                           "not a Keras model file", ()),
    "model-empty": (_write("model.keras", b""), "not a Keras model file", ()),
    "model-deleted": (lambda run: (run / "model.keras").unlink(), "model.keras", ()),
    "model-is-a-directory": (lambda run: _replace_with_directory(run / "model.keras"),
                             "model.keras", ()),
    "model-without-weights": (lambda run: _rezip(run / "model.keras", "model.weights.h5", None),
                              "cannot load model", ()),
    "model-config-garbage": (lambda run: _rezip(run / "model.keras", "config.json", b"{oops"),
                             "cannot load model", ()),
    "model-weights-flipped": (lambda run: _flip_weights(run / "model.keras"), "Bad CRC-32", ()),
    "metadata-garbage": (lambda run: _rezip(run / "model.keras", "resnet_ft.json", NOT_UTF8),
                         "not a Keras model file", ("summary",)),
    "metadata-not-an-object": (_metadata([1, 2]), "resnet_ft.json is not an object",
                               ("summary",)),
    "metadata-bad-geometry": (_metadata(GEOMETRY), "has no valid preprocessing", ("summary",)),
    "labels-missing": (lambda run: (run / "labels.json").unlink(), "labels.json", ("summary",)),
    "labels-not-utf8": (_write("labels.json", NOT_UTF8), "labels.json", ("summary",)),
    "labels-not-a-list": (_write("labels.json", b'{"daisy": 0}'), "must be a JSON list",
                          ("summary",)),
    "labels-wrong-count": (_write("labels.json", b'["daisy", "roses"]'),
                           "lists 2 classes but", ("summary",)),
    "split-missing": (lambda run: (run / "split.csv").unlink(), "split.csv",
                      ("predict", "evaluate", "summary")),
    "split-not-utf8": (_write("split.csv", NOT_UTF8), "split.csv",
                       ("predict", "evaluate", "summary")),
    "skipped-not-utf8": (_write("skipped.csv", NOT_UTF8), "", COMMANDS),
    "config-garbage": (_write("config.yaml", b"{[: not yaml \x00\xff"), "", COMMANDS),
    "scorer-garbage": (_write("scorer.npz", b"not a zip"), "cannot read the reject scorer",
                       ("summary",)),
    "run-missing": (shutil.rmtree, "run", ()),
    "run-is-a-file": (lambda run: (shutil.rmtree(run), run.write_text("x")), "run", ()),
}


def _run(cli, command: str, run: Path, images: Path, out: Path) -> tuple[object, bool]:
    """The command's result, and whether anything is at its output path afterwards."""
    result = cli(*_args(command, run, images, out))
    assert "Traceback" not in result.err
    return result, out.exists()


def _undamaged(cli, undamaged, tiny, command: str, folder: Path) -> tuple[int, str]:
    if command not in undamaged:
        run = folder / "undamaged" / "run"
        shutil.copytree(tiny[0], run)
        result, _ = _run(cli, command, run, tiny[1], folder / "undamaged" / "out")
        undamaged[command] = (result.code, (result.error_lines or [""])[-1])
    return undamaged[command]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("damage", list(DAMAGES))
def test_damaged_run(cli, tiny, undamaged, tmp_path, damage, command):
    how, fragment, unaffected = DAMAGES[damage]
    run, out = tmp_path / "run", tmp_path / "out"
    shutil.copytree(tiny[0], run)
    how(run)
    result, written = _run(cli, command, run, tiny[1], out)
    if command in unaffected:
        code, last = _undamaged(cli, undamaged, tiny, command, tmp_path)
        assert (result.code, (result.error_lines or [""])[-1]) == (code, last), result.err
        return
    assert_one_line_error(result, fragment, code=2)
    assert not written, f"{command} left {out} behind"


@settings(max_examples=100, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_model_file(cli, tiny, tmp_path, data):
    """``predict`` on a run whose ``model.keras`` is truncated or has one byte flipped: refused,
    or (a byte no reader consults: zip timestamps, version fields) the same predictions."""
    source = tiny[0] / "model.keras"
    size = source.stat().st_size
    cut = data.draw(st.one_of(st.none(), st.integers(0, size - 1)), label="truncate")
    offset = data.draw(st.integers(0, size - 1), label="offset")
    mask = data.draw(st.sampled_from([0x01, 0x04, 0x20, 0x80, 0xFF]), label="mask")
    raw = bytearray(source.read_bytes())
    if cut is None:
        raw[offset] ^= mask
    run = tmp_path / f"run-{cut}-{offset}-{mask}"
    shutil.copytree(tiny[0], run)
    (run / "model.keras").write_bytes(raw[:cut])
    image = next((tiny[1] / "tulips").glob("*.jpg"))
    result = cli("predict", run, image, "--json")
    if result.code == 0:
        expected = cli("predict", tiny[0], image, "--json")
        assert json.loads(result.out)[0]["top_k"] == json.loads(expected.out)[0]["top_k"]
    else:
        assert_one_line_error(result, "model.keras", code=2)
    shutil.rmtree(run)
