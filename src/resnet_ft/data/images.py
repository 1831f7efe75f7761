"""The one place where an image file becomes pixels.

Training (through ``tf.numpy_function``), prediction and evaluation all decode
images with :func:`decode_image`, so every part of the tool sees exactly the
same pixels for the same file.  Users' folders are messy, so the decoder is
deliberately defensive: it detects the format from the content (not the file
name), refuses decompression bombs before any pixel memory is allocated,
treats truncated files as errors, and turns every failure into an
:class:`~resnet_ft.errors.ImageDecodeError` with a one-line reason instead of
letting an arbitrary Pillow exception kill a long training run.

Only Pillow and numpy are used here (no TensorFlow), so the module is cheap to
import and safe to call from any thread: it never touches process-global state
such as ``Image.MAX_IMAGE_PIXELS`` or the warnings filters.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from resnet_ft.errors import ImageDecodeError

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp"})
"""File-name suffixes (lower-case) that folder scanning treats as images."""

MAX_PIXELS: int = 89_478_485
"""Largest width*height accepted; Pillow's own default warning threshold.

Checked against the header before any pixel data is decoded, so a tiny file
that claims to be enormous is refused without allocating memory for it.
"""

# Pillow's names for the formats we decode.  "MPO" is how Pillow reports a JPEG
# that carries extra frames (most phone and camera photos embed a preview);
# its first frame is an ordinary JPEG, so it must be accepted like one.
_SUPPORTED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "GIF", "BMP", "WEBP"})
_SUPPORTED_NAMES = "JPEG, PNG, GIF, BMP, WebP"

# Integer grayscale modes.  In our formats they only come from 16-bit PNGs
# (older Pillow versions report those as "I"), so the data is 0..65535.
_WIDE_GRAY_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})


def is_image_candidate(path: Path) -> bool:
    """Whether folder scanning should treat ``path`` as an image.

    Hidden files are skipped because they are never user images: macOS litters
    folders with ``.DS_Store`` and AppleDouble ``._photo.jpg`` companions, which
    carry an image suffix but no image.
    """
    return (
        not path.name.startswith(".") and path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()
    )


def decode_image(source: str | os.PathLike[str] | bytes) -> np.ndarray:
    """Decode an image file, or its encoded bytes, to an HxWx3 uint8 RGB array.

    ``source`` is a path, or the file's *contents* as ``bytes`` (callers that
    receive a path as bytes, e.g. from a ``tf.string`` tensor, must turn it
    into a ``str`` with :func:`os.fsdecode` first).

    The format is detected from the content; JPEG, PNG, GIF (first frame),
    BMP and WebP are accepted.  EXIF orientation is applied, alpha is dropped
    (as ``tf.io.decode_image(channels=3)`` does) and 16-bit grayscale is scaled
    to 8 bits.  The result is C-contiguous and writeable.

    Raises:
        ImageDecodeError: for every reason the file cannot be used; the
            message is a one-line reason such as ``"truncated image"``.
    """
    if isinstance(source, bytes):
        return _decode_stream(io.BytesIO(source))
    try:
        stream = open(source, "rb")  # noqa: SIM115 - closed by the `with` below
    except FileNotFoundError:
        raise ImageDecodeError("file not found") from None
    except IsADirectoryError:
        raise ImageDecodeError("is a directory, not a file") from None
    except PermissionError:
        raise ImageDecodeError("permission denied") from None
    except OSError as exc:
        raise ImageDecodeError(f"cannot open file ({exc.strerror or exc})") from exc
    with stream:
        return _decode_stream(stream)


def _decode_stream(stream: BinaryIO) -> np.ndarray:
    """Decode an open, seekable binary stream; see :func:`decode_image`."""
    if not stream.read(1):
        raise ImageDecodeError("empty file")
    stream.seek(0)
    try:
        # Image.open only parses the header; pixels are decoded by load().
        with Image.open(stream) as img:
            _check_header(img)
            img.load()
            ImageOps.exif_transpose(img, in_place=True)
            return _to_rgb_array(img)
    except ImageDecodeError:
        raise
    except UnidentifiedImageError:
        raise ImageDecodeError("not an image file") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own guard (the warning arrives as an exception only when the
        # warnings filters say "error"); it fires inside Image.open, before our
        # header check, so the dimensions are not available here, and its
        # threshold follows Image.MAX_IMAGE_PIXELS, which the user may have set.
        raise ImageDecodeError("image too large (over Pillow's decompression-bomb limit)") from exc
    except MemoryError:
        # Running out of memory is the process's problem, not this file's;
        # reporting it as a bad image would hide it behind a skipped file.
        raise
    except Exception as exc:
        # Corrupt data surfaces from Pillow as almost any exception type
        # (OSError, SyntaxError, ValueError, EOFError, struct.error, ...).
        raise ImageDecodeError(_describe_failure(exc)) from exc


def _check_header(img: Image.Image) -> None:
    """Refuse unsupported formats and absurd sizes before decoding pixels."""
    if img.format not in _SUPPORTED_FORMATS:
        raise ImageDecodeError(
            f"unsupported image format {img.format} (supported: {_SUPPORTED_NAMES})"
        )
    width, height = img.size
    if width * height > MAX_PIXELS:
        raise ImageDecodeError(f"image too large ({width}x{height} pixels, limit {MAX_PIXELS})")


def _describe_failure(exc: Exception) -> str:
    """A one-line reason for an unexpected decoder exception."""
    detail = " ".join(str(exc).split())
    if "truncated" in detail.lower():
        return "truncated image"
    if not detail:
        return f"corrupt image data ({type(exc).__name__})"
    return f"corrupt image data ({type(exc).__name__}: {detail})"


def _to_rgb_array(img: Image.Image) -> np.ndarray:
    """Convert a loaded image of any Pillow mode to an HxWx3 uint8 RGB array.

    Pillow's ``convert`` is right for 8-bit modes (including palettes with
    transparency, RGBA and CMYK), but clips wide grayscale to 255 instead of
    scaling it, which would turn most of a 16-bit image white; those modes
    are scaled here instead.
    """
    if img.mode in _WIDE_GRAY_MODES:
        values = np.asarray(img).astype(np.int64)
        gray = (np.clip(values, 0, 65535) >> 8).astype(np.uint8)
    elif img.mode == "F":
        values = np.nan_to_num(np.asarray(img, dtype=np.float64))
        gray = np.rint(np.clip(values, 0.0, 255.0)).astype(np.uint8)
    else:
        rgb = img if img.mode == "RGB" else img.convert("RGB")
        return np.array(rgb, dtype=np.uint8, order="C")
    return np.repeat(gray[:, :, np.newaxis], 3, axis=2)
