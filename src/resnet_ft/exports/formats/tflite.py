"""TFLite export: the pixels function only, float or quantized, with its sidecar files.

TFLite has no image decoders, so the model takes float32 pixels (N, S, S, 3) in
[0, 255]. Every quantization, int8 included, keeps float32 input and output
(QUANTIZE / DEQUANTIZE at the ends), so all variants take the same pixels and give
the same kind of probabilities, and are compared and evaluated alike.
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import numpy as np

from resnet_ft.errors import InputError, OutputError, one_line
from resnet_ft.exports.formats.base import (
    ExportFormat,
    ExportReport,
    Source,
    load_file_export,
    write_files,
)
from resnet_ft.exports.formats.saved_model import pixels_function, save_module
from resnet_ft.inference.predictor import Predictor
from resnet_ft.util.native import native_stderr_discarded

_MAGIC = b"TFL3"  # bytes 4-8 of a TFLite flatbuffer


def write(source: Source, out: Path) -> ExportReport:
    """Write ``out`` (.tflite), ``OUT.labels.txt`` and ``OUT.resnet_ft.json``."""
    return write_files(source, out, lambda model: _convert_model(source, model), TFLiteRunner)


def _convert_model(source: Source, model: Path) -> None:
    """The run's model as a TFLite flatbuffer at ``model``, via an intermediate SavedModel
    beside it (as large as the model, so in the scratch directory beside OUT, not /tmp)."""
    saved = model.with_name(f"{model.name}.saved_model")
    save_module({"serving_default": pixels_function(source.predictor)}, saved)
    data = _convert(saved, source.quantize, source.calibration)
    shutil.rmtree(saved)
    model.write_bytes(data)


def _convert(saved_model: Path, quantize: str, calibration: list[np.ndarray]) -> bytes:
    """TFLite flatbuffer of the SavedModel's default signature, quantized as asked.

    Converting from a SavedModel on disk is the path TF and Keras document, and it was
    measured faster than converting a traced function (13 s vs 23 s for ResNet-101).
    """
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        converter.representative_dataset = lambda: ([pixels[None]] for pixels in calibration)
        # every op in int8, or fail: no silent float fallback
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    try:
        with native_stderr_discarded():  # the converter prints its quantization settings
            return converter.convert()
    except Exception as exc:  # the converter raises many types; the user needs one line
        raise OutputError(f"TFLite conversion failed: {one_line(exc)}") from exc


class TFLiteRunner:
    """A TFLite interpreter called like a Keras model; the batch size follows the input."""

    def __init__(self, path: Path) -> None:
        import tensorflow as tf

        with warnings.catch_warnings():
            # TF 2.21 points to the separate ai-edge-litert package; this one still works.
            warnings.filterwarnings("ignore", message=r"\s*Warning: tf.lite.Interpreter")
            try:
                self._interpreter = tf.lite.Interpreter(
                    model_path=str(path), num_threads=os.cpu_count() or 1
                )
            except ValueError as exc:
                raise InputError(f"cannot load TFLite model {path}: "
                                 f"{one_line(exc, 200)}") from exc
        self._input = self._interpreter.get_input_details()[0]["index"]
        output = self._interpreter.get_output_details()[0]
        self._output = output["index"]
        self.classes = int(output["shape"][-1])
        self._batch = -1
        # before allocation: afterwards, the ops XNNPACK takes over show up as DELEGATE
        self.ops = sorted({op["op_name"] for op in self._interpreter._get_ops_details()})

    def __call__(self, pixels: np.ndarray, training: bool = False) -> np.ndarray:
        if len(pixels) != self._batch:
            self._interpreter.resize_tensor_input(self._input, [len(pixels), *pixels.shape[1:]])
            with native_stderr_discarded():  # "Created TensorFlow Lite XNNPACK delegate"
                self._interpreter.allocate_tensors()
            self._batch = len(pixels)
        self._interpreter.set_tensor(self._input, np.ascontiguousarray(pixels, np.float32))
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output).copy()


def claims(path: Path) -> bool:
    """A ``.tflite`` file, or any file with the TFLite magic number."""
    if not path.is_file():
        return False
    if path.suffix == ".tflite":
        return True
    with path.open("rb") as handle:
        return handle.read(8)[4:] == _MAGIC


def load(path: Path) -> Predictor:
    """A ``.tflite`` file and its sidecar files as a predictor (the magic number first, so
    that any other file is named as such, not as a bad export)."""
    with path.open("rb") as handle:
        if handle.read(8)[4:] != _MAGIC:
            raise InputError(f"not a TFLite model or SavedModel directory: {path}")
    return load_file_export(path, TFLiteRunner)


FORMAT = ExportFormat("tflite", ("none", "float16", "dynamic", "int8"), write, claims, load,
                      calibrated=("int8",))
