"""Calibration samples: a seeded, class-stratified handful of training images.

Quantising a model to int8 needs the range of every activation, measured on
images like the ones it will see; the run's own training images are those,
and its validation images must stay unseen by anything that is fitted. Every
class gets its share (``split.csv`` lists files class by class, so the first N
would cover a few classes only), the draw is seeded, and the images not drawn
are kept apart to check the quantised model on (:class:`CalibrationSample`).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from resnet_ft.data.folders import Sample

#: Images held out of the calibration sample to check the quantised model on.
HELD_OUT = 64


@dataclass(frozen=True)
class CalibrationSample:
    """Training images to calibrate on, others to check the result on, and their identity."""

    files: tuple[Path, ...]
    held_out: tuple[Path, ...]

    @property
    def identity(self) -> str:
        """Changes when a file of the sample changes (path, size, mtime): the quantised
        model's cache key."""
        parts = []
        for path in self.files:
            stat = os.stat(path)
            parts.append([str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns])
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def calibration_sample(train: list[Sample], count: int, seed: int = 0,
                       held_out: int = HELD_OUT) -> CalibrationSample:
    """``count`` training images dealt evenly over the classes (seeded), and up to
    ``held_out`` of the remaining ones, also over the classes.

    A small training set keeps a quarter of its images (at most ``held_out``) for the
    check rather than calibrating on all of them.
    """
    by_class: dict[int, list[Path]] = {}
    for sample in train:
        by_class.setdefault(sample.label, []).append(sample.path)
    rng = np.random.default_rng([seed, count])
    shuffled = {label: [paths[i] for i in rng.permutation(len(paths))]
                for label, paths in sorted(by_class.items())}
    held = min(held_out, max(len(train) - count, len(train) // 4))
    chosen = _deal(shuffled, min(count, len(train) - held))
    taken = set(chosen)
    rest = {label: [p for p in paths if p not in taken] for label, paths in shuffled.items()}
    return CalibrationSample(tuple(chosen), tuple(_deal(rest, held)))


def _deal(by_class: dict[int, list[Path]], count: int) -> list[Path]:
    """Round-robin over the classes until ``count`` files (or all of them) are taken."""
    taken: list[Path] = []
    position = 0
    while len(taken) < count and any(position < len(p) for p in by_class.values()):
        taken.extend(paths[position] for paths in by_class.values() if position < len(paths))
        position += 1
    return taken[:count]
