"""What every export format shares: the option table, the report, and the metadata files.

This module is the leaf of :mod:`resnet_ft.exports`: the format writers
(:mod:`~resnet_ft.exports.saved_model`, :mod:`~resnet_ft.exports.tflite`) and the
reader (:mod:`~resnet_ft.exports.runners`) all import from it and it imports none of
them, so the file names and the metadata layout that writer and reader must agree on
are defined once.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from resnet_ft.errors import InputError

if TYPE_CHECKING:
    from resnet_ft.evaluation.predictor import Predictor

#: Accepted ``--quantize`` values per format.
FORMATS: dict[str, tuple[str, ...]] = {
    "saved_model": ("none",),
    "tflite": ("none", "float16", "dynamic", "int8"),
}
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


def check_options(format: str, quantize: str, calibration_images: int) -> None:
    """Refuse an unknown format or a quantization the format cannot do, naming what works.

    Called before the (slow) model load, so a typo fails at once.
    """
    if format not in FORMATS:
        raise InputError(f"unknown export format {format!r} (accepted: {', '.join(FORMATS)})")
    if quantize not in FORMATS[format]:
        raise InputError(
            f"--quantize {quantize} is not available for {format} "
            f"(accepted: {', '.join(FORMATS[format])})"
        )
    if calibration_images < 1:
        raise InputError(f"--calibration-images must be at least 1, got {calibration_images}")


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
