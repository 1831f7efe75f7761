"""SavedModel export: a directory TF Serving can load, taking encoded image files.

The signatures (and the EXIF-orientation caveat) are described in :mod:`resnet_ft.exports`.

Why the decoder is what it is, measured: training decodes with Pillow
(:mod:`resnet_ft.data.images`). Plain ``tf.io.decode_image`` decodes JPEG with libjpeg's
fast integer IDCT: on the stand-in JPEGs it changed 67 % of the pixel values, by up to 6
levels, and a confident 5-class run's probabilities by up to 0.038 (top-1 unchanged on
those 40 images). Pillow uses the accurate integer IDCT, so JPEG bytes go through
``tf.io.decode_jpeg(dct_method="INTEGER_ACCURATE")`` and every other format through
``tf.io.decode_image(channels=3, expand_animations=False)``. With that, the pixels were
identical to Pillow's (not one value differing) for baseline, progressive,
4:2:0 / 4:2:2 / 4:4:4, grayscale and CMYK JPEGs, PNG (RGB, RGBA, palette, 16-bit), GIF, BMP and
lossless WebP, and the SavedModel's probabilities equal ``predict``'s within 1e-5 for
JPEG and PNG files (measured 1.8e-6; tested).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from resnet_ft.data.preprocessing import resize
from resnet_ft.errors import InputError, OutputError, one_line
from resnet_ft.exports.fidelity import require_faithful, saved_model_agreement
from resnet_ft.exports.formats.base import (
    METADATA_FILE,
    TOP_K,
    ExportFormat,
    ExportReport,
    Source,
    checked,
    metadata,
    read_json,
    write_json,
)
from resnet_ft.inference.predictor import Predictor
from resnet_ft.util.atomic import atomic_dir

if TYPE_CHECKING:
    import tensorflow as tf


def write(source: Source, out: Path) -> ExportReport:
    """Write a SavedModel directory with ``serving_default`` (bytes) and ``serving_pixels``."""
    import tensorflow as tf

    predictor = source.predictor
    _refuse_non_saved_model(out)
    with atomic_dir(out) as tmp:
        save_module(_serving_functions(predictor), tmp)
        write_json(tmp / "assets.extra" / METADATA_FILE,
                   metadata(predictor, "saved_model"))
        loaded = tf.saved_model.load(str(tmp))
        top1, diff, compared = saved_model_agreement(
            predictor, source.run.split("val"), loaded.signatures["serving_default"]
        )
        require_faithful((top1, diff, compared), "none")
        report = ExportReport(out, "saved_model", "none", _tree_size(tmp),
                              sorted(loaded.signatures), top1, diff, compared)
    return report


def _refuse_non_saved_model(target: Path) -> None:
    """Allow replacing a previous SavedModel (or an empty directory), nothing else.

    :func:`~resnet_ft.util.atomic.atomic_dir` replaces whatever is at ``target``; a run
    directory given as ``-o`` by mistake must be refused rather than deleted.
    """
    if target.is_file() or (target.is_dir() and any(target.iterdir())
                            and not (target / "saved_model.pb").is_file()):
        raise OutputError(f"{target} exists and is not a SavedModel; refusing to replace it")


def pixels_spec(size: int) -> tf.TensorSpec:
    """The ``pixels`` input: float32 (N, S, S, 3) RGB in [0, 255], already resized."""
    import tensorflow as tf

    return tf.TensorSpec([None, size, size, 3], tf.float32, name="pixels")


def pixels_function(predictor: Predictor) -> Any:
    """pixels (N, S, S, 3) in [0, 255] -> ``{"probabilities": (N, C)}``: what every format
    without image decoders exports (TFLite, ONNX, OpenVINO)."""
    import tensorflow as tf

    return tf.function(
        lambda pixels: {"probabilities": predictor.model(pixels, training=False)},
        input_signature=[pixels_spec(predictor.preprocessing.image_size)])


def _serving_functions(predictor: Predictor) -> dict[str, Any]:
    """The SavedModel's signatures: encoded bytes and pixels -> probabilities and top-k, and
    the reject score (``ood_score``) when the run has a scorer."""
    import tensorflow as tf

    spec = predictor.preprocessing
    labels = tf.constant(predictor.labels)
    k = min(TOP_K, len(predictor.labels))
    scored = predictor.scorer is not None and predictor.features is not None

    def outputs(pixels: tf.Tensor) -> dict[str, tf.Tensor]:
        if scored:
            probabilities, pooled = predictor.features(pixels)
        else:
            probabilities = predictor.model(pixels, training=False)
        # ties: lower index first, as predict's stable argsort
        scores, indices = tf.math.top_k(probabilities, k)
        out = {"probabilities": probabilities, "top_k_labels": tf.gather(labels, indices),
               "top_k_scores": scores}
        if scored:
            out["ood_score"] = reject_score(predictor.scorer, pooled)
        return out

    def decode(data: tf.Tensor) -> tf.Tensor:
        image = tf.cond(
            tf.io.is_jpeg(data),
            # Pillow's IDCT; decode_image's default (fast IDCT) differs by up to 6 levels
            lambda: tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE"),
            lambda: tf.io.decode_image(data, channels=3, expand_animations=False),
        )
        return resize(image, spec)

    pixel_spec = tf.TensorSpec((spec.image_size, spec.image_size, 3), tf.float32)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")])
    def serve_images(images: tf.Tensor) -> dict[str, tf.Tensor]:
        return outputs(tf.map_fn(decode, images, fn_output_signature=pixel_spec))

    @tf.function(input_signature=[pixels_spec(spec.image_size)])
    def serve_pixels(pixels: tf.Tensor) -> dict[str, tf.Tensor]:
        return outputs(pixels)

    return {"serving_default": serve_images, "serving_pixels": serve_pixels}


def reject_score(scorer: Any, pooled: tf.Tensor) -> tf.Tensor:
    """The run's reject score in TensorFlow, as :meth:`~resnet_ft.runs.scorer.Scorer.scores`
    computes it (float64: the distances are differences of large squared norms)."""
    import tensorflow as tf

    whiten = tf.cast(tf.constant(scorer.whiten.T), tf.float64)  # stored float32
    z = tf.linalg.matmul(tf.cast(pooled, tf.float64), whiten)
    gaps = z[:, None, :] - tf.constant(scorer.centres)[None]
    return tf.sqrt(tf.reduce_min(tf.reduce_sum(gaps * gaps, axis=-1), axis=1))


def save_module(functions: dict[str, Any], directory: Path) -> None:
    """``tf.saved_model.save`` the functions as signatures of one ``tf.Module``.

    The module tracks the raw ``tf.Variable`` objects the traced graphs read: tracking
    the Keras model (or its Keras 3 variable wrappers) instead saves a model that TFLite
    cannot freeze (it keeps VAR_HANDLE / READ_VARIABLE ops and no weights).
    """
    import tensorflow as tf

    signatures = {name: function.get_concrete_function() for name, function in functions.items()}
    module = tf.Module()
    for name, function in functions.items():
        setattr(module, name, function)
    module.model_variables = list(
        {id(v): v for concrete in signatures.values() for v in concrete.variables}.values()
    )
    try:
        tf.saved_model.save(module, str(directory), signatures=signatures)
    except tf.errors.OpError as exc:
        raise OutputError(f"cannot write SavedModel {directory}: {one_line(exc)}") from exc


def _tree_size(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


class SavedModelRunner:
    """The ``serving_pixels`` signature of a SavedModel, called like a Keras model."""

    def __init__(self, path: Path) -> None:
        import tensorflow as tf

        try:
            self._loaded = tf.saved_model.load(str(path))  # keeps the variables alive
            self._serve = self._loaded.signatures["serving_pixels"]
        except (OSError, KeyError, tf.errors.OpError) as exc:
            raise InputError(f"not a resnet-ft SavedModel: {path} "
                             f"({one_line(exc, 200)})") from exc
        self.classes = int(self._serve.structured_outputs["probabilities"].shape[-1])

    def __call__(self, pixels: np.ndarray, training: bool = False) -> np.ndarray:
        return self._serve(pixels=pixels)["probabilities"].numpy()


def load(path: Path) -> Predictor:
    """A SavedModel directory as a predictor (metadata first: a directory without it is no
    resnet-ft export, so TensorFlow need not load it)."""
    data = read_json(path / "assets.extra" / METADATA_FILE)
    labels = data.get("labels")
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise InputError(f"{path / 'assets.extra' / METADATA_FILE} has no list of labels")
    return checked(SavedModelRunner(path), labels, data, path)


FORMAT = ExportFormat("saved_model", ("none",), write,
                      lambda path: path.is_dir() and (path / "saved_model.pb").is_file(), load)
