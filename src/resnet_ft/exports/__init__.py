"""Export a trained run for serving: a SavedModel that takes image files, TFLite, ONNX, OpenVINO.

**SavedModel** (``--format saved_model``), for TF Serving or any TensorFlow program; it
needs neither Keras nor resnet-ft to run (tested in a fresh process with Keras made
unimportable):

* ``serving_default`` — ``images``: a batch of encoded image files (``tf.string``,
  shape ``[None]``; JPEG, PNG, GIF, BMP, WebP) -> ``probabilities`` (N, C),
  ``top_k_labels`` (N, k, class-name strings) and ``top_k_scores`` (N, k), k = min(5, C);
  and ``ood_score`` (N,) float64, the reject score, when the run has one (``scorer.npz``).
  Decoding and resizing run in the graph, through the very
  :func:`~resnet_ft.data.preprocessing.resize` that training used.
* ``serving_pixels`` — ``pixels``: float32 (N, S, S, 3) RGB in [0, 255], already
  resized -> the same three outputs. :func:`load_exported` uses it, so that an exported
  model is evaluated on exactly the pixels the Keras model sees.

The labels are a constant in the graph (that is how ``top_k_labels`` are produced);
``OUT/assets.extra/resnet_ft.json`` repeats them with the preprocessing, for
:func:`load_exported` (``assets.extra`` is the SavedModel place for files the graph
does not read).

The in-graph decoder gives the same pixels as training's Pillow decoder (measured
format by format in :mod:`~resnet_ft.exports.formats.saved_model`), with one exception:
TensorFlow ignores the EXIF orientation tag, which Pillow applies, so a photo stored
rotated (common from phones) is classified unrotated; send upright images, or decode
them yourself and call ``serving_pixels``. One undecodable file fails the whole
``serving_default`` call.

**TFLite** (``--format tflite``), for phones and small devices: the pixels function
only (float32 input (N, S, S, 3) in [0, 255], batch 1 by default and resizable;
output: probabilities), because TFLite has no image decoders. ``--quantize``:
``none`` (float32), ``float16`` (half-size weights, float compute), ``dynamic``
(int8 weights, float activations) or ``int8`` (full integer: every op runs in int8,
calibrated on ``--calibration-images`` images, default 100: dealt evenly over the
classes of the run's training split by :func:`~resnet_ft.data.sampling.calibration_sample`,
seeded, decoded by :func:`~resnet_ft.data.preprocessing.image_dataset`, capped at what
exists). The int8
model keeps float32 input and output (uint8 camera input would need a conversion of
its own). Beside ``OUT`` go ``OUT.labels.txt`` (``m.tflite`` -> ``m.labels.txt``, one
class name a line, the usual TFLite convention) and ``OUT.resnet_ft.json`` (format,
quantization, labels, preprocessing as numbers and the input spelled out in words).

**ONNX** (``--format onnx``, ``OUT.onnx``) and **OpenVINO** (``--format openvino``,
``OUT.xml`` + ``OUT.bin``): the same pixels function as TFLite, with a dynamic batch,
float32 or ``int8`` (static post-training quantisation calibrated like TFLite's, through
ONNX Runtime's QDQ recipe or NNCF; see :mod:`~resnet_ft.exports.formats.onnx` and
:mod:`~resnet_ft.exports.formats.openvino`), with the same two sidecar files. They need
the ``onnx`` and ``openvino`` extras; running an ONNX file needs only ``onnxruntime``.

Every export reports how closely it follows the run's float Keras model on the run's
validation images (``split.csv``): the SavedModel end to end from the files' bytes
(decoder included), the pixels formats from the project's own decoded pixels, each run
by its own runtime. A float32 export further than
:data:`~resnet_ft.exports.fidelity.FLOAT_TOLERANCE` from the model, or a quantised one
agreeing on fewer top classes than :data:`~resnet_ft.exports.fidelity.MIN_AGREEMENT`, is
refused. Outputs are written atomically: they are built and checked beside ``OUT`` and
moved in place only when complete, so a failed export leaves no ``OUT``.

Modules: the registry :mod:`~resnet_ft.exports.formats` (one module per format: its writer,
its loader; shared parts in :mod:`~resnet_ft.exports.formats.base`) and
:mod:`~resnet_ft.exports.fidelity` (the comparison with the float model).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from resnet_ft.data.preprocessing import Preprocessing, decoded_pixels
from resnet_ft.data.sampling import calibration_sample
from resnet_ft.errors import InputError
from resnet_ft.exports.formats import FORMATS, load
from resnet_ft.exports.formats.base import (
    DEFAULT_CALIBRATION_IMAGES,
    ExportFormat,
    ExportReport,
    Source,
)
from resnet_ft.inference.loaders import load_predictor
from resnet_ft.inference.predictor import Predictor
from resnet_ft.runs.run import Run
from resnet_ft.util.packages import require

__all__ = [
    "DEFAULT_CALIBRATION_IMAGES",
    "FORMATS",
    "ExportReport",
    "check_options",
    "export",
    "export_saved_model",
    "export_tflite",
    "load_exported",
]


def export(
    run_dir: str | Path,
    out: str | Path,
    format: str = "saved_model",
    quantize: str = "none",
    calibration_images: int = DEFAULT_CALIBRATION_IMAGES,
) -> ExportReport:
    """Export ``run_dir`` to ``out`` in ``format``; see the module docstring."""
    fmt = check_options(format, quantize, calibration_images)
    if fmt.suffix and Path(out).suffix != fmt.suffix:
        raise InputError(f"--format {format} writes a {fmt.suffix} file: -o "
                         f"{Path(out).with_suffix(fmt.suffix).name}, not {Path(out).name}")
    run = Run.finished(run_dir)
    predictor = load_predictor(run.path)
    calibration = (calibration_pixels(run, predictor.preprocessing, calibration_images)
                   if quantize in fmt.calibrated else [])
    return fmt.write(Source(run, predictor, fmt.name, quantize, calibration), Path(out))


def export_saved_model(run_dir: str | Path, out: str | Path) -> ExportReport:
    """:func:`export` as a SavedModel."""
    return export(run_dir, out, "saved_model")


def export_tflite(run_dir: str | Path, out: str | Path, quantize: str = "none",
                  calibration_images: int = DEFAULT_CALIBRATION_IMAGES) -> ExportReport:
    """:func:`export` as TFLite."""
    return export(run_dir, out, "tflite", quantize, calibration_images)


def check_options(format: str, quantize: str, calibration_images: int) -> ExportFormat:
    """The format, unless it is unknown or cannot do the quantisation (naming what works).

    Called before the (slow) model load, so a typo fails at once.
    """
    if format not in FORMATS:
        raise InputError(f"unknown export format {format!r} (accepted: {', '.join(FORMATS)})")
    fmt = FORMATS[format]
    if quantize not in fmt.quantizations:
        raise InputError(
            f"--quantize {quantize} is not available for {format} "
            f"(accepted: {', '.join(fmt.quantizations)})"
        )
    if calibration_images < 1:
        raise InputError(f"--calibration-images must be at least 1, got {calibration_images}")
    if fmt.packages:
        require(fmt.packages, f"--format {format}", fmt.extra)
    return fmt


def load_exported(path: str | Path) -> Predictor:
    """An exported model (a SavedModel directory or a file of any format) as a predictor."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"exported model not found: {path}")
    if path.is_dir():
        return load(FORMATS["saved_model"], path)
    fmt = next((fmt for fmt in FORMATS.values() if fmt.claims(path)), FORMATS["tflite"])
    return load(fmt, path)


def calibration_pixels(run: Run, spec: Preprocessing, count: int) -> list[np.ndarray]:
    """Up to ``count`` decoded training images, dealt evenly over the classes (seeded):
    :func:`~resnet_ft.data.sampling.calibration_sample`, as int8 extraction draws them."""
    train = run.samples("train")
    if not train:
        raise InputError(f"--quantize int8 calibrates on the run's training images, and "
                         f"{run.file('split.csv')} lists none")
    pixels = list(decoded_pixels(list(calibration_sample(train, count, held_out=0).files), spec))
    if not pixels:
        raise InputError(f"no decodable training image in {run.file('split.csv')} "
                         "to calibrate the int8 model")
    return pixels
