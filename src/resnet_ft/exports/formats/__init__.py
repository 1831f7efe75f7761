"""The export formats, one module each, registered here with one line each.

Registering a format also registers its loader with
:mod:`resnet_ft.inference.loaders`, so ``predict``/``evaluate --model`` and
:func:`resnet_ft.inference.loaders.load_predictor` open its files. This package
is imported with :mod:`resnet_ft` itself (as timm's model modules register
themselves on import), so every format is known wherever a model is loaded.
"""

from __future__ import annotations

from pathlib import Path

from resnet_ft.exports.formats import onnx, openvino, saved_model, tflite
from resnet_ft.exports.formats.base import ExportFormat
from resnet_ft.inference.loaders import Loader
from resnet_ft.inference.loaders import register as register_loader
from resnet_ft.inference.predictor import Predictor
from resnet_ft.util.packages import require

FORMATS: dict[str, ExportFormat] = {}


def register(fmt: ExportFormat) -> None:
    """Make ``fmt`` an ``export --format`` choice and its files loadable for inference."""
    FORMATS[fmt.name] = fmt
    register_loader(Loader(fmt.name, fmt.claims, lambda path, _request: load(fmt, path),
                           "an exported --model computes as it was exported"))


def load(fmt: ExportFormat, path: Path) -> Predictor:
    """``path`` as a predictor, once the packages that run ``fmt`` are known to be there."""
    require(fmt.runtime, f"the {fmt.name} model {path}", fmt.extra)
    return fmt.load(path)


for module in (saved_model, tflite, onnx, openvino):
    register(module.FORMAT)
