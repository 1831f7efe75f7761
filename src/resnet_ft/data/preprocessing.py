"""Image file -> model input, identical in training, caching, prediction and evaluation.

Decoding is Pillow (:mod:`resnet_ft.data.images`: every format, EXIF, bomb guard);
resizing and cropping are TensorFlow ops so they run in parallel inside
tf.data. Evaluation-style geometry: ``crop`` resizes the shorter side to
``image_size / 0.875`` and takes the centre ``image_size`` square; ``squash``
resizes to the square directly. Pixels stay in [0, 255]: the backbone's first
layer normalises for its checkpoint family.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from resnet_ft.data.images import decode_image
from resnet_ft.errors import ImageDecodeError

if TYPE_CHECKING:
    import tensorflow as tf

CROP_FRACTION = 0.875
RESIZE_MODES = ("crop", "squash")


@dataclass(frozen=True)
class Preprocessing:
    """The geometry that travels with a trained model."""

    image_size: int = 224
    resize: str = "crop"
    crop_fraction: float = CROP_FRACTION

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form; also part of feature-cache keys."""
        return asdict(self)

    @classmethod
    def from_dict(cls, stored: object) -> Preprocessing:
        """The geometry a file stored (a model's or an export's metadata), checked.

        A damaged value would otherwise fail deep inside TensorFlow's resize, or (an
        unknown mode) silently resize as ``crop``. ``ValueError`` says what is wrong.
        """
        try:
            spec = cls(**stored)  # type: ignore[arg-type]
        except TypeError as exc:
            raise ValueError(f"not a preprocessing: {stored!r}") from exc
        size, fraction = spec.image_size, spec.crop_fraction
        if not (isinstance(size, int) and size > 0 and spec.resize in RESIZE_MODES
                and isinstance(fraction, float | int) and 0 < fraction <= 1):
            raise ValueError(f"not a valid preprocessing: {stored!r}")
        return spec


def decode_or_error(path: bytes) -> tuple[np.ndarray, bytes]:
    """Decode for ``tf.numpy_function``: ``(pixels, b"")`` or ``(1x1 black, reason)``.

    Returning the failure instead of raising lets one tf.data pass both decode
    the good files and report the bad ones, without aborting the pipeline.
    """
    try:
        return decode_image(os.fsdecode(path)), b""
    except ImageDecodeError as exc:
        return np.zeros((1, 1, 3), np.uint8), str(exc).encode("utf-8")


def resize(image: tf.Tensor, spec: Preprocessing) -> tf.Tensor:
    """uint8 (h, w, 3) -> float32 (size, size, 3) in [0, 255]."""
    import tensorflow as tf

    size = spec.image_size
    image = tf.cast(image, tf.float32)
    if spec.resize == "squash":
        out = tf.image.resize(image, (size, size), method="bilinear", antialias=True)
    else:
        shape = tf.cast(tf.shape(image)[:2], tf.float32)
        target = tf.round(size / spec.crop_fraction)
        scale = target / tf.reduce_min(shape)
        new = tf.maximum(tf.cast(tf.round(shape * scale), tf.int32), size)
        out = tf.image.resize(image, new, method="bilinear", antialias=True)
        top = (new[0] - size) // 2
        left = (new[1] - size) // 2
        out = out[top : top + size, left : left + size, :]
    return tf.ensure_shape(tf.clip_by_value(out, 0.0, 255.0), (size, size, 3))


def image_dataset(paths: list[str], spec: Preprocessing) -> tf.data.Dataset:
    """Unbatched ``(pixels, error)`` per path, decoded in parallel, order preserved."""
    import tensorflow as tf

    # straight-line code: nothing for AutoGraph to convert, so it is traced as written
    @tf.autograph.experimental.do_not_convert
    def load(path: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        image, error = tf.numpy_function(
            decode_or_error, [path], (tf.uint8, tf.string), stateful=False
        )
        image = tf.ensure_shape(image, (None, None, 3))
        return resize(image, spec), tf.ensure_shape(error, ())

    return tf.data.Dataset.from_tensor_slices(tf.constant(paths, tf.string)).map(
        load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )


def decoded_pixels(paths: list[Path], spec: Preprocessing) -> np.ndarray:
    """The decodable files' pixels ``(N, S, S, 3)``, as extraction decodes them; files that
    fail are left out (for samples, such as calibration images, where one missing is fine)."""
    decoded = [p.numpy() for p, error in image_dataset([str(x) for x in paths], spec)
               if not error.numpy()]
    size = spec.image_size
    return np.stack(decoded) if decoded else np.zeros((0, size, size, 3), np.float32)
