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

import contextlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from resnet_ft.errors import InputError
from resnet_ft.inference.predictor import Predictor
from resnet_ft.runs.run import Run
from resnet_ft.util.atomic import atomic_path

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
    ops: list[str]  # TFLite: builtin op names; SavedModel: signature names
    top1_agreement: float | None  # None: no validation image could be compared
    max_prob_diff: float | None
    compared_images: int
    calibration_images: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {**asdict(self), "path": str(self.path)}


@dataclass(frozen=True)
class Source:
    """What is exported: the run, and its float Keras model as ``predict`` loads it."""

    run: Run
    predictor: Predictor


#: ``write(source, out, quantize, calibration pixels) -> report``: writes ``out`` atomically,
#: after loading it back with its own runtime and comparing it with the float model.
Writer = Callable[[Source, Path, str, list[np.ndarray]], ExportReport]


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


def metadata(predictor: Predictor, fmt: str, quantize: str = "none") -> dict[str, Any]:
    """What :func:`~resnet_ft.exports.load_exported` needs besides the model.

    The preprocessing is not in the exported graph's signature, yet evaluating an
    export on other pixels than training saw would be meaningless, so it travels here.
    (TFLite labels go to ``OUT.labels.txt``; a SavedModel adds them to this dict.)
    """
    return {"kind": "export", "format": fmt, "quantize": quantize,
            "preprocessing": predictor.preprocessing.to_dict()}


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


def write_with_sidecars(out: Path, data: bytes, predictor: Predictor, fmt: str, quantize: str,
                        check: Callable[[Path], ExportReport]) -> ExportReport:
    """Write a single-file export with ``OUT.labels.txt`` and ``OUT.resnet_ft.json`` beside it.

    All three are written under temporary names, the model is checked from
    there (``check`` loads it back and compares), and only then are they renamed
    into place, the model last: a failed export leaves nothing.
    """
    sidecars = {
        metadata_path(out): json_bytes(metadata(predictor, fmt, quantize)),
        labels_path(out): "".join(f"{name}\n" for name in predictor.labels).encode("utf-8"),
    }
    with contextlib.ExitStack() as stack:
        # Entered first, so renamed last: OUT appears only after its sidecar files.
        model_file = stack.enter_context(atomic_path(out))
        model_file.write_bytes(data)
        for path, payload in sidecars.items():
            stack.enter_context(atomic_path(path)).write_bytes(payload)
        report = check(model_file)
    return report


def require_plain_labels(labels: list[str]) -> None:
    """Class names must fit one line each of a labels file (checked before a slow conversion)."""
    if any(name.splitlines() != [name] for name in labels):
        raise InputError("a class name contains a line break; it cannot go in a labels file")
