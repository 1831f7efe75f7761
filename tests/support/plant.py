"""Generated data sets with planted problems, where the truth is known.

Stand-in images (one blob colour per class) in an explicit ``train/`` +
``val/`` layout, plus: exact copies (same bytes, once three of them; same pixels as PNG), near
copies by each transformation the doctor must see through (resize 0.5-0.8x,
JPEG quality 60-95, 90 % crop, horizontal flip) placed within a class,
across classes and across train/val, label flips (an image filed under
another class), and one outlier (a screenshot-like image of text bars).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

CLASSES = ("daisy", "dandelion", "roses", "sunflowers", "tulips")


@dataclass
class Plant:
    """Where the planted problems are: file pairs and single files."""

    root: Path
    exact: set[frozenset[str]] = field(default_factory=set)
    near: dict[str, set[frozenset[str]]] = field(default_factory=dict)
    categories: dict[frozenset[str], set[str]] = field(default_factory=dict)
    flips: dict[str, str] = field(default_factory=dict)  # file -> its true class
    outlier: str = ""

    def copy_pairs(self) -> set[frozenset[str]]:
        return self.exact | {p for pairs in self.near.values() for p in pairs}


def _transform(image: Image.Image, kind: str, rng: np.random.Generator) -> tuple[Image.Image, int]:
    """The copy and the JPEG quality to save it with."""
    if kind == "resize":
        scale = rng.uniform(0.5, 0.8)
        size = (round(image.width * scale), round(image.height * scale))
        return image.resize(size, Image.Resampling.BILINEAR), 95
    if kind == "jpeg":
        return image, int(rng.integers(60, 96))
    if kind == "crop":
        width, height = round(image.width * 0.9), round(image.height * 0.9)
        left = int(rng.integers(0, image.width - width + 1))
        top = int(rng.integers(0, image.height - height + 1))
        return image.crop((left, top, left + width, top + height)), 95
    return ImageOps.mirror(image), 95


def _screenshot(path: Path) -> None:
    """White page with black text-like bars: far from every blob class."""
    pixels = np.full((120, 160, 3), 255, np.uint8)
    for row in range(10, 110, 12):
        pixels[row : row + 5, 10 : 10 + 20 * (1 + row % 7)] = 0
    Image.fromarray(pixels).save(path, quality=95)


#: One dominant colour per class, far apart, so a head separates the classes.
COLOURS = ((250, 250, 250), (240, 220, 0), (220, 0, 40), (0, 160, 60), (40, 60, 230))


def photo_like(dest: Path, per_class: int, seed: int) -> Path:
    """Class-coloured discs on smooth random grey scenes, 96-160 px.

    Unlike flat noise, a smooth scene gives every image its own low-frequency
    structure, as photos have: distinct images get distinct perceptual hashes.
    """
    rng = np.random.default_rng(seed)
    for klass, name in enumerate(CLASSES):
        (dest / name).mkdir(parents=True)
        for number in range(per_class):
            width, height = (int(v) for v in rng.integers(96, 161, 2))
            coarse = Image.fromarray(rng.integers(0, 256, (6, 6), np.uint8))
            scene = np.asarray(coarse.resize((width, height), Image.Resampling.BICUBIC), np.float32)
            yy, xx = np.mgrid[0:height, 0:width]
            cy, cx = rng.uniform(0.35, 0.65) * height, rng.uniform(0.35, 0.65) * width
            radius = rng.uniform(0.3, 0.4) * min(width, height)
            disc = (yy - cy) ** 2 + (xx - cx) ** 2 < radius**2
            pixels = np.where(disc[..., None], np.array(COLOURS[klass], np.float32),
                              scene[..., None] * 0.8 + 20)
            pixels = pixels + rng.normal(0, 6, pixels.shape)
            image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
            image.save(dest / name / f"{name}_{number:04d}.jpg", quality=92)
    return dest


def planted_dataset(root: Path, per_class: int = 12, val_per_class: int = 4) -> Plant:
    """Build the data set under ``root`` (``train/`` and ``val/``) and return its plant."""
    source = photo_like(root / "source", per_class + val_per_class, seed=3)
    plant = Plant(root)
    for name in CLASSES:
        files = sorted((source / name).glob("*.jpg"))
        for side, chosen in (("train", files[:per_class]), ("val", files[per_class:])):
            (root / side / name).mkdir(parents=True)
            for file in chosen:
                shutil.copy2(file, root / side / name / file.name)
    shutil.rmtree(source)
    rng = np.random.default_rng(5)
    train, val = root / "train", root / "val"

    listed = {name: sorted((train / name).glob("*.jpg")) for name in CLASSES}

    def original(klass: str, number: int) -> Path:
        """The number-th generated training image of a class (as listed before planting)."""
        return listed[klass][number]

    def record(kind: str, a: Path, b: Path, cats: set[str]) -> None:
        pair = frozenset((str(a), str(b)))
        (plant.exact if kind == "exact" else plant.near.setdefault(kind, set())).add(pair)
        plant.categories[pair] = cats

    # exact: same bytes within a class and across classes; same pixels (PNG) across train/val
    for (klass, target, number, cats) in (("daisy", "daisy", 0, {"within class"}),
                                          ("roses", "tulips", 1, {"across classes"})):
        a = original(klass, number)
        b = train / target / f"copy_exact_{klass}.jpg"
        shutil.copyfile(a, b)
        record("exact", a, b, cats)
    # a third identical copy, in validation: the set's pairs are with its first file (the
    # training copy sorts first), and the three make one group that --fix-split keeps whole
    a = train / "daisy" / "copy_exact_daisy.jpg"
    b = val / "daisy" / "copy_exact_val_daisy.jpg"
    shutil.copyfile(a, b)
    record("exact", a, b, {"within class", "across train/val"})
    a = original("sunflowers", 2)
    b = val / "sunflowers" / "copy_pixels.png"
    Image.open(a).save(b)
    record("exact", a, b, {"within class", "across train/val"})
    # near copies: each transformation within a class, across classes, across train/val
    placements = (("dandelion", train, "dandelion", {"within class"}),
                  ("daisy", train, "roses", {"across classes"}),
                  ("tulips", val, "tulips", {"within class", "across train/val"}))
    for index, kind in enumerate(("resize", "jpeg", "crop", "flip")):
        for klass, side, target, cats in placements:
            a = original(klass, 3 + index)
            copy, quality = _transform(Image.open(a).convert("RGB"), kind, rng)
            b = side / target / f"copy_{kind}_{klass}.jpg"
            copy.save(b, quality=quality)
            record(kind, a, b, cats)
    # label flips: originals moved to another class folder (not copies of anything)
    for klass, target, number in (("daisy", "sunflowers", 9), ("roses", "dandelion", 9),
                                  ("tulips", "daisy", 10)):
        a = original(klass, number)
        b = train / target / f"flipped_{a.name}"
        a.rename(b)
        plant.flips[str(b)] = klass
    outlier = train / "roses" / "screenshot.jpg"
    _screenshot(outlier)
    plant.outlier = str(outlier)
    return plant
