"""TFLite export: the pixels function only, float or quantized, with its sidecar files.

TFLite has no image decoders, so the model takes float32 pixels (N, S, S, 3) in
[0, 255]. Every quantization, int8 included, keeps float32 input and output
(QUANTIZE / DEQUANTIZE at the ends), so all variants take the same pixels and give
the same kind of probabilities, and are compared and evaluated alike.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

import numpy as np

from resnet_ft.data.preprocessing import Preprocessing, image_dataset
from resnet_ft.errors import InputError, OutputError, one_line
from resnet_ft.evaluation.predictor import Predictor, load_predictor
from resnet_ft.exports.fidelity import tflite_agreement
from resnet_ft.exports.formats import (
    DEFAULT_CALIBRATION_IMAGES,
    ExportReport,
    check_options,
    json_bytes,
    labels_path,
    metadata,
    metadata_path,
)
from resnet_ft.exports.runners import TFLiteRunner
from resnet_ft.exports.saved_model import pixels_spec, save_module
from resnet_ft.models.run_dir import require_run, split_files
from resnet_ft.util.atomic import atomic_path, make_parent
from resnet_ft.util.native import native_stderr_discarded


def export_tflite(
    run_dir: str | Path,
    out: str | Path,
    quantize: str = "none",
    calibration_images: int = DEFAULT_CALIBRATION_IMAGES,
) -> ExportReport:
    """Write ``out`` (.tflite), ``OUT.labels.txt`` and ``OUT.resnet_ft.json``."""
    check_options("tflite", quantize, calibration_images)
    run_dir = require_run(run_dir)
    predictor = load_predictor(run_dir)
    out = Path(out)
    if out.is_dir():
        raise OutputError(f"cannot write {out}: is a directory")
    if any(name.splitlines() != [name] for name in predictor.labels):
        raise InputError("a class name contains a line break; it cannot go in a labels file")
    calibration = (_calibration_pixels(run_dir, predictor.preprocessing, calibration_images)
                   if quantize == "int8" else [])
    data = _convert_model(predictor, out, quantize, calibration)
    sidecars = {
        metadata_path(out): json_bytes(metadata(predictor, "tflite", quantize)),
        labels_path(out): "".join(f"{name}\n" for name in predictor.labels).encode("utf-8"),
    }
    with contextlib.ExitStack() as stack:
        # Entered first, so renamed last: OUT appears only after its sidecar files.
        model_file = stack.enter_context(atomic_path(out))
        model_file.write_bytes(data)
        for path, payload in sidecars.items():
            stack.enter_context(atomic_path(path)).write_bytes(payload)
        runner = TFLiteRunner(model_file)
        top1, diff, compared = tflite_agreement(predictor, run_dir, runner)
        report = ExportReport(out, "tflite", quantize, len(data), runner.ops, top1, diff,
                              compared, len(calibration))
    return report


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


def _calibration_pixels(run_dir: Path, spec: Preprocessing, count: int) -> list[np.ndarray]:
    """Up to ``count`` decoded training images, a seeded sample across all classes.

    ``split.csv`` lists the files class by class, so taking the first ``count`` would
    calibrate on a few classes only.
    """
    paths = split_files(run_dir, "train")
    order = np.random.default_rng(0).permutation(len(paths))[:count]
    chosen = [str(paths[i]) for i in sorted(order)]
    pixels = [p.numpy() for p, error in image_dataset(chosen, spec) if not error.numpy()]
    if not pixels:
        raise InputError(f"no decodable training image in {run_dir / 'split.csv'} "
                         "to calibrate the int8 model")
    return pixels
