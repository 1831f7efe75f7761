"""Export a trained run for serving: a TensorFlow SavedModel that takes image files, or TFLite.

**SavedModel** (``--format saved_model``), for TF Serving or any TensorFlow program; it
needs neither Keras nor resnet-ft to run (tested in a fresh process with Keras made
unimportable):

* ``serving_default`` — ``images``: a batch of encoded image files (``tf.string``,
  shape ``[None]``; JPEG, PNG, GIF, BMP, WebP) -> ``probabilities`` (N, C),
  ``top_k_labels`` (N, k, class-name strings) and ``top_k_scores`` (N, k), k = min(5, C).
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
format by format in :mod:`~resnet_ft.exports.saved_model`), with one exception:
TensorFlow ignores the EXIF orientation tag, which Pillow applies, so a photo stored
rotated (common from phones) is classified unrotated; send upright images, or decode
them yourself and call ``serving_pixels``. One undecodable file fails the whole
``serving_default`` call.

**TFLite** (``--format tflite``), for phones and small devices: the pixels function
only (float32 input (N, S, S, 3) in [0, 255], batch 1 by default and resizable;
output: probabilities), because TFLite has no image decoders. ``--quantize``:
``none`` (float32), ``float16`` (half-size weights, float compute), ``dynamic``
(int8 weights, float activations) or ``int8`` (full integer: every op runs in int8,
calibrated on ``--calibration-images`` images, default 100: a seeded sample across the
classes of the run's training split, decoded by
:func:`~resnet_ft.data.preprocessing.image_dataset`, capped at what exists). The int8
model keeps float32 input and output (uint8 camera input would need a conversion of
its own). Beside ``OUT`` go ``OUT.labels.txt`` (``m.tflite`` -> ``m.labels.txt``, one
class name a line, the usual TFLite convention) and ``OUT.resnet_ft.json`` (format,
quantization, preprocessing).

Every export reports how closely it follows the run's float Keras model on the run's
validation images (``split.csv``): the SavedModel end to end from the files' bytes
(decoder included), TFLite from the project's own decoded pixels. Outputs are written
atomically: they are built and checked beside ``OUT`` and moved in place only when
complete, so a failed export leaves no ``OUT``.

Modules: :mod:`~resnet_ft.exports.formats` (option table, report, metadata files),
:mod:`~resnet_ft.exports.saved_model`, :mod:`~resnet_ft.exports.tflite`,
:mod:`~resnet_ft.exports.runners` (loading an export back) and
:mod:`~resnet_ft.exports.fidelity` (the comparison with the float model).
"""

from __future__ import annotations

from pathlib import Path

from resnet_ft.exports.formats import (
    DEFAULT_CALIBRATION_IMAGES,
    FORMATS,
    ExportReport,
    check_options,
)
from resnet_ft.exports.runners import load_exported
from resnet_ft.exports.saved_model import export_saved_model
from resnet_ft.exports.tflite import export_tflite

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
    """Export ``run_dir`` to ``out`` in ``format``; see the module docstring.

    The dispatcher lives here rather than in :mod:`~resnet_ft.exports.formats`
    because it depends on every format's writer, and the writers depend on
    ``formats``: keeping ``formats`` a leaf avoids an import cycle.
    """
    check_options(format, quantize, calibration_images)
    if format == "saved_model":
        return export_saved_model(run_dir, out)
    return export_tflite(run_dir, out, quantize, calibration_images)
