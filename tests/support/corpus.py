"""A messy class-per-folder dataset: every kind of bad or odd input users have.

Layout (classes: ``blühende rosen``, ``odd``, ``plain``)::

    plain/            good JPEGs, plus loop -> .. (symlink loop)
    blühende rosen/   good JPEGs (spaces, non-ASCII)
    odd/              one file of each odd-but-valid kind, and the bad ones
    empty/            no images: not a class
    self -> .         symlink loop at the top
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from resnet_ft.data.standin import write_standin_images
from support.image_files import png_claiming_size

#: bad file name -> the reason the decoder must give
BAD = {
    "zero.jpg": "empty file",
    "truncated.jpg": "truncated image",
    "text.jpg": "not an image file",
    "bomb.png": "image too large",
}
ODD = ("png_named.jpg", "cmyk.jpg", "gray.jpg", "gray16.png", "rgba.png", "palette.png",
       "animated.gif", "bitmap.bmp", "lossless.webp", "rotated.jpg")
CLASSES = ["blühende rosen", "odd", "plain"]
GOOD_PER_CLASS = 6


@dataclass
class Corpus:
    """Where things are."""

    root: Path
    bad: dict[Path, str]
    odd: list[Path]

    @property
    def decodable(self) -> int:
        """Images that must be trained on."""
        return 2 * GOOD_PER_CLASS + len(self.odd)


def _jpeg(array: np.ndarray, **params: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "JPEG", **params)
    return buffer.getvalue()


def build(root: Path) -> Corpus:
    """Write the corpus under ``root`` and describe it."""
    write_standin_images(root, classes=("plain", "blühende rosen"), per_class=GOOD_PER_CLASS,
                         min_size=40, max_size=72)
    odd = root / "odd"
    odd.mkdir()
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(odd / "png_named.jpg", "PNG")
    Image.fromarray(rgb).convert("CMYK").save(odd / "cmyk.jpg", "JPEG")
    Image.fromarray(rgb[..., 0]).save(odd / "gray.jpg")
    Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).save(odd / "gray16.png")
    Image.fromarray(np.dstack([rgb, rgb[..., :1]])).save(odd / "rgba.png")
    palette = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.info["transparency"] = 0
    palette.save(odd / "palette.png", transparency=0)
    frames = [Image.fromarray(rgb), Image.fromarray(255 - rgb)]
    frames[0].save(odd / "animated.gif", save_all=True, append_images=frames[1:], duration=50)
    Image.fromarray(rgb).save(odd / "bitmap.bmp")
    Image.fromarray(rgb).save(odd / "lossless.webp", lossless=True)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    Image.fromarray(rgb).save(odd / "rotated.jpg", exif=exif.tobytes())
    full = _jpeg(rgb, quality=95)
    (odd / "zero.jpg").write_bytes(b"")
    (odd / "truncated.jpg").write_bytes(full[: len(full) // 2])
    (odd / "text.jpg").write_text("this is not a picture\n")
    (odd / "bomb.png").write_bytes(png_claiming_size(40_000, 40_000))
    (odd / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (odd / "notes.txt").write_text("photographer notes")
    (root / "empty").mkdir()
    os.symlink(".", root / "self")
    os.symlink("..", root / "plain" / "loop")
    return Corpus(root, {odd / name: reason for name, reason in BAD.items()},
                  [odd / name for name in ODD])
