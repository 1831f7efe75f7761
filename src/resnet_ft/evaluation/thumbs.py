"""Small JPEG thumbnails of the images a report shows, written next to the page.

A report may show thousands of photos: copying them at full size would make
it as big as the data set, and browsers would decode 12-megapixel files to
draw 160-pixel tiles. Each thumbnail is the whole image (EXIF orientation
applied, aspect kept) scaled to fit a square, decoded by the project's one
decoder. Decoding dominates the cost and Pillow releases the GIL while it
decodes, so thumbnails are made by a pool of threads.
"""

from __future__ import annotations

import hashlib
import io
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from resnet_ft.data.images import decode_image
from resnet_ft.errors import ImageDecodeError
from resnet_ft.util.atomic import write_bytes
from resnet_ft.util.progress import track

if TYPE_CHECKING:
    from PIL import Image

#: Longest side of a gallery thumbnail in pixels.
THUMB_SIZE = 160
JPEG_QUALITY = 82


def thumbnail(path: Path, size: int = THUMB_SIZE) -> Image.Image | None:
    """The image scaled to fit ``size`` x ``size`` (never enlarged), or None if unreadable."""
    from PIL import Image

    try:
        pixels = decode_image(path)
    except ImageDecodeError:
        return None
    image = Image.fromarray(pixels)
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    return image


def jpeg_bytes(image: Image.Image) -> bytes:
    """``image`` as a JPEG file's bytes."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return buffer.getvalue()


def thumb_name(path: Path) -> str:
    """A stable file name per source path (two photos may share a name in other folders)."""
    return hashlib.sha256(str(path).encode("utf-8")).hexdigest()[:20] + ".jpg"


def write_thumbnails(paths: list[Path], folder: Path, console: Console,
                     size: int = THUMB_SIZE) -> dict[Path, str]:
    """Thumbnails of ``paths`` in ``folder``; ``{path: file name}`` of those that could be read."""
    unique = list(dict.fromkeys(paths))

    def one(path: Path) -> tuple[Path, str | None]:
        image = thumbnail(path, size)
        if image is None:
            return path, None
        write_bytes(folder / thumb_name(path), jpeg_bytes(image))
        return path, thumb_name(path)

    written: dict[Path, str] = {}
    with track(console, "thumbnails", len(unique)) as progress, \
            ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for path, name in pool.map(one, unique):
            if name is not None:
                written[path] = name
            progress.advance(1)
    return written
