"""OpenVINO IR export (``OUT.xml`` + ``OUT.bin``): the fastest CPU engine measured here.

The model takes float32 pixels ``pixels`` (N, S, S, 3) in [0, 255] and gives
``probabilities`` (N, C), like the TFLite and ONNX exports. It is converted from the
traced pixels function by OpenVINO's own converter and saved with float32 weights
(OpenVINO compresses them to float16 unless told otherwise, which would make the
"float" export a half-precision one).

``int8``: NNCF's post-training quantisation on the calibration images, the recipe
int8 feature extraction uses (:func:`~resnet_ft.features.engines.openvino.quantise`):
every convolution in int8, the head after the global pool in float, as in the ONNX
export. The report lists the precision each layer runs in once compiled for this CPU.
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import numpy as np

from resnet_ft.errors import InputError, OutputError, one_line
from resnet_ft.exports.formats.base import (
    ExportFormat,
    ExportReport,
    Source,
    load_file_export,
    write_files,
)
from resnet_ft.exports.formats.saved_model import pixels_function
from resnet_ft.features.engines.openvino import CONFIG, Runner, decline_telemetry, quantise
from resnet_ft.inference.predictor import Predictor
from resnet_ft.models.precision import INT8_PACKAGES
from resnet_ft.util.native import native_stderr_discarded

#: Layers whose runtime precision the report lists: where the multiply-accumulates are.
COMPUTE_LAYERS = ("Convolution", "FullyConnected", "MatMul")


def write(source: Source, out: Path) -> ExportReport:
    """Write ``out`` (.xml) and its weights ``OUT.bin``, ``OUT.labels.txt`` and
    ``OUT.resnet_ft.json``."""
    return write_files(source, out, lambda model: _build(source, model), IRRunner)


def _build(source: Source, model: Path) -> None:
    """Convert (and for int8 quantise) the run's model; save it as ``model`` + ``.bin``."""
    decline_telemetry()
    import openvino as ov

    try:
        with native_stderr_discarded():
            converted = ov.convert_model(pixels_function(source.predictor).get_concrete_function())
    except Exception as exc:  # the converter raises many types; the user needs one line
        raise OutputError(f"OpenVINO conversion failed: {one_line(exc)}") from exc
    if source.quantize == "int8":
        converted = quantise(converted, np.stack(source.calibration))
    ov.save_model(converted, str(model), compress_to_fp16=False)


class IRRunner:
    """A compiled IR called like a Keras model: each batch split over the CPU's streams."""

    def __init__(self, path: Path) -> None:
        decline_telemetry()
        import openvino as ov

        try:
            compiled = ov.Core().compile_model(str(path), "CPU", CONFIG)
        except RuntimeError as exc:
            raise InputError(f"cannot load OpenVINO model {path}: {one_line(exc, 200)}") from exc
        self._runner = Runner(compiled, views=1)
        self.classes = int(compiled.outputs[0].get_partial_shape()[-1].get_length())
        self.ops = compute_precisions(compiled)

    def __call__(self, pixels: Any, training: bool = False) -> np.ndarray:
        return self._runner(pixels)[:, 0]


def compute_precisions(compiled: Any) -> list[str]:
    """``["Convolution:u8 x104", ...]``: how many compute layers run in which precision."""
    counts = collections.Counter(
        (str(info["layerType"].astype(str)), str(info["runtimePrecision"].astype(str)))
        for info in (op.get_rt_info() for op in compiled.get_runtime_model().get_ordered_ops()))
    return sorted(f"{layer}:{precision} x{count}"
                  for (layer, precision), count in counts.items() if layer in COMPUTE_LAYERS)


def claims(path: Path) -> bool:
    """A ``.xml`` file (the IR's weights are the ``.bin`` beside it)."""
    return path.is_file() and path.suffix == ".xml"


def load(path: Path) -> Predictor:
    """``OUT.xml``, ``OUT.bin`` and the sidecar files as a predictor."""
    if not path.with_suffix(".bin").is_file():
        raise InputError(f"{path.with_suffix('.bin')} is missing: an OpenVINO model is "
                         f"{path.name} and its weights {path.with_suffix('.bin').name}")
    return load_file_export(path, IRRunner)


FORMAT = ExportFormat("openvino", ("none", "int8"), write, claims, load, calibrated=("int8",),
                      packages=INT8_PACKAGES, runtime=("openvino",), extra="openvino",
                      suffix=".xml")
