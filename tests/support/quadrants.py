"""Images whose class is decided by one small object in one quadrant, on noise.

Each class is a square of its own colour; every image puts it in a random
quadrant (recorded in the file name, ``..._q2.png``) on a noise background.
Only the square tells the classes apart, so a heat map that explains a
prediction must put its mass in that image's quadrant, and since the
quadrant varies per image, no fixed bias of the network toward a corner can
pass for localisation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: Class name -> colour of its square.
COLOURS = {"blue": (40, 90, 240), "green": (40, 200, 60), "red": (230, 40, 40),
           "yellow": (250, 220, 30)}


def write_quadrant_images(dest: Path, *, per_class: int, size: int, seed: int) -> Path:
    """``dest/<class>/<class>_NNN_q<Q>.png``; quadrant Q: 0 top left, 1 top right, 2, 3 below."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    half, side = size // 2, size // 4
    for name, colour in COLOURS.items():
        (dest / name).mkdir(parents=True, exist_ok=True)
        for number in range(per_class):
            quadrant = int(rng.integers(0, 4))
            row, col = divmod(quadrant, 2)
            pixels = rng.normal(110, 35, (size, size, 3))
            top = row * half + int(rng.integers(2, half - side - 1))
            left = col * half + int(rng.integers(2, half - side - 1))
            pixels[top:top + side, left:left + side] = colour + rng.normal(0, 8, (side, side, 3))
            image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
            image.save(dest / name / f"{name}_{number:03d}_q{quadrant}.png")
    return dest


def quadrant_of(path: Path) -> int:
    """The quadrant recorded in a file name written by :func:`write_quadrant_images`."""
    return int(path.stem.rsplit("_q", 1)[1])


def quadrant_mass(heat: np.ndarray, quadrant: int) -> float:
    """Share of a map's total mass inside ``quadrant`` (the map's sides must be even)."""
    rows, cols = heat.shape
    assert rows % 2 == 0 and cols % 2 == 0, heat.shape
    row, col = divmod(quadrant, 2)
    part = heat[row * rows // 2:(row + 1) * rows // 2, col * cols // 2:(col + 1) * cols // 2]
    return float(part.sum() / heat.sum()) if heat.sum() > 0 else 0.0
