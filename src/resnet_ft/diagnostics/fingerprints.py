"""Per-file fingerprints for duplicate search: bytes hash, decoded-pixel hash, perceptual hashes.

* sha256 of the bytes finds byte-identical files; sha256 of the decoded
  pixels (the project's own decoder, EXIF applied) also finds the same photo
  saved twice as PNG, or with other metadata.
* Perceptual hashes (``imagehash.phash``, 64 bits) of the image, its mirror,
  and 90 % crops at nine positions (and their mirrors) find resized,
  re-encoded, mirrored and cropped copies without trusting the backbone: a
  copy's whole-image hash is close to one of its original's variants.
  Hashes are taken on a 128-pixel grey thumbnail, which makes the 20 hashes
  cost about as much as one on the full image.
* Image-quality scores (:mod:`~resnet_ft.diagnostics.quality`) from the same
  decoded pixels and thumbnail, so the checks cost no second read.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from rich.console import Console

from resnet_ft.data.images import decode_image
from resnet_ft.diagnostics.quality import CHECKS, quality_scores
from resnet_ft.errors import ImageDecodeError
from resnet_ft.util.progress import track

#: Crop fraction and crop positions (as a share of the free margin) of the hashed variants.
CROP, POSITIONS = 0.9, (0.0, 0.5, 1.0)
THUMBNAIL = 128
VARIANTS = 2 * (1 + len(POSITIONS) ** 2)  # whole image and each crop, each also mirrored


@dataclass
class Fingerprints:
    """Per file: ``bytes_hash``/``pixel_hash`` (hex), ``sizes`` (width, height),
    ``hashes`` (N, VARIANTS) uint64, variant 0 being the whole image as it is,
    and ``quality`` (N, len(CHECKS)) scores. Files that cannot be read are in
    ``errors`` and have empty hashes and scores."""

    bytes_hash: list[str]
    pixel_hash: list[str]
    sizes: np.ndarray
    hashes: np.ndarray
    quality: np.ndarray
    errors: dict[int, str] = field(default_factory=dict)


def grey_thumbnail(pixels: np.ndarray) -> Image.Image:
    """The THUMBNAIL-pixel grey image that hashes and quality scores are taken on."""
    image = Image.fromarray(pixels).convert("L")
    image.thumbnail((THUMBNAIL, THUMBNAIL), Image.Resampling.BOX)
    return image


def perceptual_hashes(image: Image.Image) -> np.ndarray:
    """The VARIANTS 64-bit perceptual hashes of a grey thumbnail (see the module doc)."""
    import imagehash
    from PIL import ImageOps

    width, height = image.size
    crop_w, crop_h = max(round(width * CROP), 1), max(round(height * CROP), 1)
    views = [image]
    for fx in POSITIONS:
        for fy in POSITIONS:
            left, top = round((width - crop_w) * fx), round((height - crop_h) * fy)
            views.append(image.crop((left, top, left + crop_w, top + crop_h)))
    codes = []
    for view in views:
        for variant in (view, ImageOps.mirror(view)):
            bits = imagehash.phash(variant).hash.reshape(-1)
            codes.append(np.packbits(bits).view(">u8")[0])
    return np.array(codes, np.uint64)


def fingerprint(path: Path) -> tuple[str, str, tuple[int, int], np.ndarray, np.ndarray]:
    """``(bytes sha256, pixel sha256, (width, height), hashes, quality scores)`` of one file."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ImageDecodeError(f"cannot read file ({exc.strerror or exc})") from exc
    pixels = decode_image(data)
    shape = f"{pixels.shape[0]}x{pixels.shape[1]}".encode()
    pixel_hash = hashlib.sha256(shape + pixels.tobytes()).hexdigest()
    thumbnail = grey_thumbnail(pixels)
    return (hashlib.sha256(data).hexdigest(), pixel_hash, (pixels.shape[1], pixels.shape[0]),
            perceptual_hashes(thumbnail), quality_scores(np.asarray(thumbnail), pixels))


def fingerprints(paths: list[Path], console: Console) -> Fingerprints:
    """Fingerprints of every file, decoded in parallel threads (Pillow releases the GIL)."""
    result = Fingerprints([""] * len(paths), [""] * len(paths),
                          np.zeros((len(paths), 2), np.int64),
                          np.zeros((len(paths), VARIANTS), np.uint64),
                          np.full((len(paths), len(CHECKS)), np.nan))

    def one(index: int) -> tuple[int, object]:
        try:
            return index, fingerprint(paths[index])
        except ImageDecodeError as exc:
            return index, str(exc)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool, \
            track(console, "fingerprinting images", len(paths)) as progress:
        for index, value in pool.map(one, range(len(paths))):
            if isinstance(value, str):
                result.errors[index] = value
            else:
                result.bytes_hash[index], result.pixel_hash[index] = value[0], value[1]
                result.sizes[index], result.hashes[index] = value[2], value[3]
                result.quality[index] = value[4]
            progress.advance(1)
    return result
