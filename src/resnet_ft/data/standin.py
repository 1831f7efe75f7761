"""Stand-in image folders: generated JPEGs in the class-per-folder layout of ``flower_photos``.

The real photos cannot be downloaded everywhere (CI, offline machines). The
offline demo and the tests use coloured blobs on noisy backgrounds, one
dominant colour per class, in varied sizes: not flowers, but the same layout
and a signal a head can learn, so the pipeline runs end to end.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

FLOWER_CLASSES = ("daisy", "dandelion", "roses", "sunflowers", "tulips")


#: A dominant colour per stand-in class, so a head can learn something from random features.
_CLASS_COLOURS = ((235, 235, 240), (240, 210, 30), (200, 30, 60), (250, 170, 20), (220, 60, 170))


def write_standin_images(
    dest: str | Path,
    *,
    classes: tuple[str, ...] = FLOWER_CLASSES,
    per_class: int = 20,
    min_size: int = 64,
    max_size: int = 160,
    seed: int = 0,
) -> Path:
    """A class-per-folder JPEG set of coloured blobs on noisy backgrounds, in varied sizes.

    Not flowers: a stand-in with the same layout, so the pipeline can be run
    and tested end to end without the real photos.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    dest = Path(dest)
    for index, name in enumerate(classes):
        folder = dest / name
        folder.mkdir(parents=True, exist_ok=True)
        colour = np.array(_CLASS_COLOURS[index % len(_CLASS_COLOURS)], np.float32)
        for number in range(per_class):
            width, height = (int(v) for v in rng.integers(min_size, max_size + 1, 2))
            yy, xx = np.mgrid[0:height, 0:width]
            cy, cx = rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width
            radius = rng.uniform(0.2, 0.4) * min(width, height)
            blob = ((yy - cy) ** 2 + (xx - cx) ** 2 < radius**2)[..., None]
            background = rng.normal(90, 40, (height, width, 3))
            pixels = np.where(blob, colour + rng.normal(0, 15, (height, width, 3)), background)
            image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
            image.save(folder / f"{name}_{number:04d}.jpg", quality=90)
    return dest
