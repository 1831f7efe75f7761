"""What every export format shares: the format record, the report, the metadata files.

An export format is one module that defines an :class:`ExportFormat`: how to
write a run's model (and check it), which paths it claims, and how to load
one back as a :class:`~resnet_ft.inference.predictor.Predictor`; the registry
(:mod:`resnet_ft.exports.formats`) is one line per format. This module is the
leaf: every format imports from it and it imports none of them, so the file
names and the metadata layout that writer and reader must agree on are
defined once.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from resnet_ft.data.preprocessing import Preprocessing
from resnet_ft.errors import InputError, OutputError
from resnet_ft.exports.fidelity import pixels_agreement, require_faithful
from resnet_ft.inference.predictor import Predictor
from resnet_ft.runs.run import Run
from resnet_ft.util.atomic import make_parent

TOP_K = 5
DEFAULT_CALIBRATION_IMAGES = 100
METADATA_FILE = "resnet_ft.json"  # in a SavedModel's assets.extra/
LABELS_SUFFIX = ".labels.txt"
METADATA_SUFFIX = ".resnet_ft.json"


@dataclass(frozen=True)
class ExportReport:
    """What an export wrote and how closely it follows the run's float Keras model."""

    path: Path
    format: str
    quantize: str
    size_bytes: int
    #: TFLite, ONNX: the graph's op types; OpenVINO: convolutions by runtime precision;
    #: SavedModel: signature names.
    ops: list[str]
    top1_agreement: float | None  # None: no validation image could be compared
    max_prob_diff: float | None
    compared_images: int
    calibration_images: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {**asdict(self), "path": str(self.path)}


@dataclass(frozen=True)
class Source:
    """What is exported and how: the run, its float Keras model as ``predict`` loads it,
    the format, the quantisation and its calibration pixels (training images, decoded)."""

    run: Run
    predictor: Predictor
    format: str
    quantize: str = "none"
    calibration: list[np.ndarray] = field(default_factory=list)


#: ``write(source, out) -> report``: writes ``out`` atomically, after loading it back with
#: its own runtime and comparing it with the float model.
Writer = Callable[[Source, Path], ExportReport]
#: Writes a file export's model at the given path (in a scratch directory), with any
#: sibling files it needs.
Build = Callable[[Path], None]
#: Loads a file export with the format's own runtime: a runner called like a Keras model
#: on pixels, with ``classes`` and ``ops``.
Open = Callable[[Path], Any]


@dataclass(frozen=True)
class ExportFormat:
    """One export format: its options, its writer and its loader."""

    name: str
    #: Accepted ``--quantize`` values; the first is the default (no quantisation).
    quantizations: tuple[str, ...]
    write: Writer
    #: Whether a path is an export of this format (cheap: names, magic bytes).
    claims: Callable[[Path], bool]
    load: Callable[[Path], Predictor]
    #: Quantisations calibrated on training images.
    calibrated: tuple[str, ...] = ()
    #: Packages that writing the format needs, those that running it needs, and the
    #: extra that installs them.
    packages: tuple[str, ...] = ()
    runtime: tuple[str, ...] = ()
    extra: str = ""
    #: The suffix ``OUT`` must have, where the loader recognises the format by it.
    suffix: str = ""


def metadata(predictor: Predictor, fmt: str, quantize: str = "none") -> dict[str, Any]:
    """What a program needs besides the model to use it, and what
    :func:`~resnet_ft.exports.load_exported` reads back.

    The preprocessing is not in the graph of the formats that take pixels, yet
    feeding them other pixels than training saw would be meaningless, so it travels
    here, as numbers (``preprocessing``) and in words (``input``).
    """
    spec = predictor.preprocessing
    return {"kind": "export", "format": fmt, "quantize": quantize, "labels": predictor.labels,
            "preprocessing": spec.to_dict(), "input": input_note(spec),
            "output": "probabilities: float32 (N, classes), in the order of labels"}


def input_note(spec: Preprocessing) -> dict[str, Any]:
    """The input a pixels model expects, spelled out for someone without resnet-ft."""
    size = spec.image_size
    if spec.resize == "squash":
        rule = f"resize to {size}x{size} (bilinear, antialiased), ignoring the aspect ratio"
    else:
        shorter = round(size / spec.crop_fraction)
        rule = (f"resize the shorter side to {shorter} px (bilinear, antialiased), keeping the "
                f"aspect ratio, then take the centre {size}x{size} square")
    return {"name": "pixels", "shape": ["N", size, size, 3], "dtype": "float32",
            "resize": rule, "values": "RGB in [0, 255] after EXIF orientation; no "
            "normalisation: the model normalises for its checkpoint family itself"}


def labels_path(out: Path) -> Path:
    """``m.tflite`` -> ``m.labels.txt``: the usual TFLite place for class names."""
    return out.with_suffix(LABELS_SUFFIX)


def metadata_path(out: Path) -> Path:
    """``m.tflite`` -> ``m.resnet_ft.json``."""
    return out.with_suffix(METADATA_SUFFIX)


def json_bytes(data: dict[str, Any]) -> bytes:
    """Indented UTF-8 JSON; class names stay readable (no ``\\u`` escapes)."""
    return json.dumps(data, indent=2, ensure_ascii=False).encode("utf-8")


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` inside a directory that is itself written atomically."""
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(json_bytes(data))


def read_json(path: Path) -> dict[str, Any]:
    """An export's metadata; anything unreadable means this is not a resnet-ft export."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"not a resnet-ft export: cannot read {path} "
                         f"({getattr(exc, 'strerror', None) or exc})") from exc
    if not isinstance(data, dict):
        raise InputError(f"not a resnet-ft export: {path} is not a JSON object")
    return data


def write_files(source: Source, out: Path, build: Build, open_runner: Open) -> ExportReport:
    """Build a file export in a scratch directory beside ``out``, check it, then publish it.

    ``build`` writes the model as ``out.name`` (with any sibling files; intermediates in
    a sub-directory) in the scratch directory; ``open_runner`` loads it back with the
    format's own runtime, compared there with the float model on the run's validation
    images, and refused when it does not follow it
    (:func:`~resnet_ft.exports.fidelity.require_faithful`). Only then do the files,
    ``OUT.labels.txt`` and ``OUT.resnet_ft.json`` move into place, ``out`` itself last:
    a failed export leaves nothing, and ``out`` never appears before the files it needs.
    """
    predictor = source.predictor
    if out.is_dir():
        raise OutputError(f"cannot write {out}: is a directory")
    require_plain_labels(predictor.labels)
    make_parent(out)
    try:
        scratch = tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent)
    except OSError as exc:
        raise OutputError(f"cannot write to {out.parent}: {exc.strerror or exc}") from exc
    with scratch as name:
        work = Path(name)
        build(work / out.name)
        size = sum(p.stat().st_size for p in work.iterdir() if p.is_file())
        runner = open_runner(work / out.name)
        agreement = pixels_agreement(predictor, Predictor(runner, predictor.labels,
                                                          predictor.preprocessing),
                                     source.run.split("val"))
        require_faithful(agreement, source.quantize)
        ops = runner.ops
        (work / metadata_path(out).name).write_bytes(
            json_bytes(metadata(predictor, source.format, source.quantize)))
        (work / labels_path(out).name).write_text(
            "".join(f"{label}\n" for label in predictor.labels), encoding="utf-8")
        _publish(work, out)
    return ExportReport(out, source.format, source.quantize, size, ops, *agreement,
                        len(source.calibration))


def _publish(work: Path, out: Path) -> None:
    """Move every file of ``work`` beside ``out`` (same file system: each move is atomic),
    ``out`` last; sub-directories hold a build's intermediates and stay behind."""
    files = sorted((path for path in work.iterdir() if path.is_file()),
                   key=lambda path: path.name == out.name)
    try:
        for path in files:
            os.replace(path, out.parent / path.name)
    except OSError as exc:
        raise OutputError(f"cannot write {out}: {exc.strerror or exc}") from exc


def load_file_export(path: Path, runner: Callable[[Path], Any]) -> Predictor:
    """A file export, its ``OUT.resnet_ft.json`` and ``OUT.labels.txt`` as a predictor."""
    data = read_json(metadata_path(path))
    try:
        labels = labels_path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"cannot read labels {labels_path(path)}: "
                         f"{exc.strerror or exc}") from exc
    return checked(runner(path), labels, data, path)


def checked(runner: Any, labels: list[str], data: dict[str, Any], path: Path) -> Predictor:
    """An export's runner as a predictor, once its labels and preprocessing are consistent."""
    if len(labels) != runner.classes:
        raise InputError(f"{path} has {runner.classes} classes but {len(labels)} labels")
    try:
        spec = Preprocessing.from_dict(data["preprocessing"])
    except (KeyError, ValueError) as exc:
        raise InputError(f"no valid preprocessing in the metadata of {path}") from exc
    return Predictor(runner, labels, spec)


def require_plain_labels(labels: list[str]) -> None:
    """Class names must fit one line each of a labels file (checked before a slow conversion)."""
    if any(name.splitlines() != [name] for name in labels):
        raise InputError("a class name contains a line break; it cannot go in a labels file")
