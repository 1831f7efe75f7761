"""TFLite export: the pixels function only, float or quantized, with its sidecar files.

TFLite has no image decoders, so the model takes float32 pixels (N, S, S, 3) in
[0, 255]. Every quantization, int8 included, keeps float32 input and output
(QUANTIZE / DEQUANTIZE at the ends), so all variants take the same pixels and give
the same kind of probabilities, and are compared and evaluated alike.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from resnet_ft.errors import InputError, OutputError, one_line
from resnet_ft.exports.fidelity import pixels_agreement
from resnet_ft.exports.formats.base import (
    ExportFormat,
    ExportReport,
    Source,
    labels_path,
    metadata_path,
    read_json,
    require_plain_labels,
    write_with_sidecars,
)
from resnet_ft.exports.formats.saved_model import checked, pixels_spec, save_module
from resnet_ft.inference.predictor import Predictor
from resnet_ft.util.atomic import make_parent
from resnet_ft.util.native import native_stderr_discarded

_MAGIC = b"TFL3"  # bytes 4-8 of a TFLite flatbuffer


def write(source: Source, out: Path, quantize: str, calibration: list[np.ndarray]
          ) -> ExportReport:
    """Write ``out`` (.tflite), ``OUT.labels.txt`` and ``OUT.resnet_ft.json``."""
    predictor = source.predictor
    if out.is_dir():
        raise OutputError(f"cannot write {out}: is a directory")
    require_plain_labels(predictor.labels)
    data = _convert_model(predictor, out, quantize, calibration)

    def check(model_file: Path) -> ExportReport:
        runner = TFLiteRunner(model_file)
        top1, diff, compared = pixels_agreement(
            predictor, Predictor(runner, predictor.labels, predictor.preprocessing),
            source.run.split("val"))
        return ExportReport(out, "tflite", quantize, len(data), runner.ops, top1, diff,
                            compared, len(calibration))

    return write_with_sidecars(out, data, predictor, "tflite", quantize, check)


def _convert_model(
    predictor: Predictor, out: Path, quantize: str, calibration: list[np.ndarray]
) -> bytes:
    """The run's model as a TFLite flatbuffer, via an intermediate SavedModel.

    The intermediate SavedModel is as large as the model, so it is built beside
    ``out`` (where the export must fit anyway), not in /tmp.
    """
    import tensorflow as tf

    make_parent(out)
    try:
        work_dir = tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent)
    except OSError as exc:
        raise OutputError(f"cannot write to {out.parent}: {exc.strerror or exc}") from exc
    with work_dir as work:
        function = tf.function(
            lambda pixels: {"probabilities": predictor.model(pixels, training=False)},
            input_signature=[pixels_spec(predictor.preprocessing.image_size)],
        )
        save_module({"serving_default": function}, Path(work))
        return _convert(Path(work), quantize, calibration)


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
    data = read_json(metadata_path(path))
    try:
        labels = labels_path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"cannot read labels {labels_path(path)}: "
                         f"{exc.strerror or exc}") from exc
    return checked(TFLiteRunner(path), labels, data, path)


FORMAT = ExportFormat("tflite", ("none", "float16", "dynamic", "int8"), write, claims, load,
                      calibrated=("int8",))
