"""ONNX export: the pixels function for ONNX Runtime, TensorRT and most inference servers.

The model takes float32 pixels ``pixels`` (N, S, S, 3) in [0, 255], resized as
``predict`` resizes (``OUT.resnet_ft.json`` spells the rule out), and gives
``probabilities`` (N, C); the batch is dynamic. It runs where only ``onnxruntime``,
``numpy`` and ``pillow`` are installed (tested with TensorFlow and resnet-ft unimportable).

Conversion: tf2onnx from the traced pixels function (opset 17). Keras 3's own
``model.export(format="onnx")`` works on TF 2.21 too, but goes through a SavedModel,
took longer (48 s vs 37 s for ResNet-101) and names the output ``Identity:0``.
tf2onnx deep-copies the whole graph, weights included, before each of its
optimiser passes so that it can skip a pass that fails; ResNet's graphs pass
them all, so the conversion runs without those copies (:data:`NO_GRAPH_COPIES`:
byte-identical files, ResNet-101 exported in 27.5 s instead of 33.0 s), and a
pass that did fail is one error line rather than a silently less-optimised file.

``int8``: ONNX Runtime's static post-training quantisation in QDQ form — uint8
activations (per tensor, asymmetric: ReLU outputs are non-negative, so a signed range
would waste half its codes) and int8 weights per output channel, with ranges measured on
the calibration images (min/max). The signed-activation default left a third of
ResNet's convolutions unfused (float) in a trial; this recipe fuses every one into
``QLinearConv``. The head after the global pooling stays in float32
(:func:`head_nodes`). Batch normalisation is folded into the convolutions first (ONNX Runtime's
pre-processing), so the quantised weights are the folded ones.
"""

from __future__ import annotations

import logging
import os
import warnings
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
from resnet_ft.exports.formats.saved_model import pixels_function, pixels_spec
from resnet_ft.inference.predictor import Predictor
from resnet_ft.util.native import environment, native_stderr_discarded

OPSET = 17  # ONNX Runtime >= 1.14, TensorRT >= 8.6, OpenVINO read it
#: tf2onnx's switch for its per-pass graph copies: set at all, it turns them off.
NO_GRAPH_COPIES = {"TF2ONNX_CATCH_ERRORS": "FALSE"}
CALIBRATION_BATCH = 8


def write(source: Source, out: Path) -> ExportReport:
    """Write ``out`` (.onnx), ``OUT.labels.txt`` and ``OUT.resnet_ft.json``."""
    return write_files(source, out, lambda model: _build(source, model), OnnxRunner)


def _build(source: Source, model: Path) -> None:
    """Convert (and quantise) the run's model into ``model``; intermediates go in a
    sub-directory that is not published."""
    work = model.parent / ".build"
    work.mkdir()
    converted = model if source.quantize == "none" else work / "float.onnx"
    _convert(source.predictor, converted)
    if source.quantize == "int8":
        _quantise(converted, work / "folded.onnx", model, source.calibration)


def _convert(predictor: Predictor, out: Path) -> None:
    """tf2onnx's conversion of the pixels function (its progress logs kept quiet)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf2onnx imports deprecated numpy and TF names
        import tf2onnx

    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    spec = pixels_spec(predictor.preprocessing.image_size)
    try:
        with native_stderr_discarded(), environment(NO_GRAPH_COPIES):
            tf2onnx.convert.from_function(pixels_function(predictor), input_signature=[spec],
                                          opset=OPSET, output_path=str(out))
    except Exception as exc:  # tf2onnx raises many types; the user needs one line
        raise OutputError(f"ONNX conversion failed: {one_line(exc)}") from exc


def _quantise(model: Path, folded: Path, out: Path, calibration: list[np.ndarray]) -> None:
    """QDQ int8 (uint8 activations, per-channel int8 weights) of ``model`` into ``out``."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            batch = CALIBRATION_BATCH
            self.batches = iter([{"pixels": np.stack(calibration[i:i + batch])}
                                 for i in range(0, len(calibration), batch)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    quant_pre_process(str(model), str(folded), skip_symbolic_shape=True)
    quantize_static(str(folded), str(out), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    per_channel=True, calibrate_method=CalibrationMethod.MinMax,
                    nodes_to_exclude=head_nodes(onnx.load(str(folded)).graph))


def head_nodes(graph: Any) -> list[str]:
    """The nodes after the backbone's global pooling: the head stays float32.

    It is a few dense layers (a thousandth of ResNet's multiply-adds, so nothing to
    gain), and quantised logits would move the probabilities in visible steps.
    """
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    pooling = [node for node in graph.node if node.op_type in ("GlobalAveragePool", "ReduceMean")]
    head: dict[str, Any] = {}
    frontier = [name for node in pooling[-1:] for name in node.output]
    while frontier:
        for node in consumers.get(frontier.pop(), []):
            if node.name not in head:
                head[node.name] = node
                frontier.extend(node.output)
    return list(head)


class OnnxRunner:
    """An ONNX Runtime CPU session called like a Keras model."""

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = os.cpu_count() or 1
        options.log_severity_level = 3  # errors only: no per-node placement notes
        try:
            self._session = ort.InferenceSession(str(path), options,
                                                 providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
            raise InputError(f"cannot load ONNX model {path}: {one_line(exc, 200)}") from exc
        self._path = path
        self._input = self._session.get_inputs()[0].name
        self.classes = int(self._session.get_outputs()[0].shape[-1])

    @property
    def ops(self) -> list[str]:
        """The graph's op types (read with ``onnx``, which running the model does not need)."""
        import onnx

        return sorted({node.op_type for node in onnx.load(str(self._path)).graph.node})

    def __call__(self, pixels: Any, training: bool = False) -> np.ndarray:
        batch = np.ascontiguousarray(pixels, np.float32)
        return self._session.run(None, {self._input: batch})[0]


def claims(path: Path) -> bool:
    """A ``.onnx`` file."""
    return path.is_file() and path.suffix == ".onnx"


def load(path: Path) -> Predictor:
    """A ``.onnx`` file and its sidecar files as a predictor."""
    return load_file_export(path, OnnxRunner)


FORMAT = ExportFormat("onnx", ("none", "int8"), write, claims, load, calibrated=("int8",),
                      packages=("tf2onnx", "onnx", "onnxruntime"), runtime=("onnxruntime",),
                      extra="onnx", suffix=".onnx")
