"""Image-quality checks: dark, overexposed, blurry, low information, odd aspect, tiny, grey.

Scored while fingerprinting (:mod:`~resnet_ft.diagnostics.fingerprints`)
from the pixels that pass already decodes, so they cost no second read: the
brightness, sharpness and information measures on its 128-pixel grey
thumbnail (size-independent: a blur is judged relative to the image), the
colour measure on a strided sample of the full pixels, aspect ratio and size
from the image's dimensions. Dark and overexposed look at the extremes
(the brightest 1 %, the darkest 5 %), not the mean: a night shot with a lit
flower is not dark, a white daisy on grass is not overexposed. Each check is
one score and one threshold; the thresholds come from
``benchmarks/bench_quality.py`` (the shared flowers sample and damaged copies
of it; the table is in docs/commands/doctor.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Check:
    """One quality check: the score's meaning, and on which side of the threshold it flags."""

    name: str
    measure: str
    threshold: float
    below: bool  # flags scores below the threshold (else above)

    def flags(self, scores: np.ndarray) -> np.ndarray:
        return scores < self.threshold if self.below else scores > self.threshold

    def reason(self, score: float) -> str:
        side = "<" if self.below else ">"
        return f"{self.name}: {self.measure} {score:.4g} {side} {self.threshold:g}"


#: The checks, in the order of the columns of :func:`quality_scores`.
CHECKS = (
    Check("dark", "99th-percentile brightness (0-1)", 0.28, below=True),
    Check("overexposed", "5th-percentile brightness (0-1)", 0.6, below=False),
    Check("blurry", "variance of the Laplacian of the contrast-normalised thumbnail", 0.05,
          below=True),
    Check("low_information", "grey-level entropy (bits)", 4.0, below=True),
    Check("odd_aspect_ratio", "long side / short side", 6.0, below=False),
    Check("tiny", "short side (pixels)", 64, below=True),
    Check("grayscale", "mean colour spread max(R,G,B) - min(R,G,B) (0-1)", 0.02, below=True),
)
#: Pixels of the full image the colour measure samples (a stride, no resize).
COLOUR_SAMPLES = 128 * 128


def quality_scores(grey_thumbnail: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """The score of every check (CHECKS' order) of one image.

    ``grey_thumbnail``: uint8 (h, w) luminance thumbnail; ``pixels``: the
    decoded (H, W, 3) uint8 image.
    """
    grey = grey_thumbnail.astype(np.float32)
    height, width = pixels.shape[:2]
    stride = max(1, int(np.sqrt(height * width / COLOUR_SAMPLES)))
    sample = pixels[::stride, ::stride].astype(np.int16)
    counts = np.bincount(grey_thumbnail.reshape(-1), minlength=256)
    share = counts[counts > 0] / grey.size
    brightest, darkest = np.percentile(grey, (99, 5)) / 255
    return np.array([
        brightest, darkest, _sharpness(grey), float(-(share * np.log2(share)).sum()),
        max(width, height) / max(min(width, height), 1), min(width, height),
        float((sample.max(-1) - sample.min(-1)).mean()) / 255,
    ], np.float64)


def _sharpness(grey: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian after scaling to zero mean and unit variance.

    The normalisation makes a dim or low-contrast image no blurrier than its
    well-exposed original; a flat image (no variance) scores 0.
    """
    if min(grey.shape) < 3 or grey.std() == 0:
        return 0.0
    unit = (grey - grey.mean()) / grey.std()
    laplacian = (unit[:-2, 1:-1] + unit[2:, 1:-1] + unit[1:-1, :-2] + unit[1:-1, 2:]
                 - 4 * unit[1:-1, 1:-1])
    return float(laplacian.var())


def flagged(scores: np.ndarray, usable: np.ndarray) -> list[tuple[int, Check, float]]:
    """``(sample, check, score)`` of every usable image a check flags, by check then sample."""
    found = []
    for column, check in enumerate(CHECKS):
        for index in np.flatnonzero(check.flags(scores[:, column]) & usable):
            found.append((int(index), check, float(scores[index, column])))
    return found
