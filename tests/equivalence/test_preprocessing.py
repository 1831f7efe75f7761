"""Preprocessing geometry against an independent Pillow/numpy statement of the rule.

The rule (evaluation-style, as in the TF-slim and torchvision reference
pipelines): ``crop`` scales the shorter side to round(size / 0.875), keeping
the aspect ratio, then takes the centred size x size square; ``squash``
resizes straight to size x size. Written here from that sentence with Pillow's
antialiased bilinear filter; nothing is imported from resnet-ft but the
function under test.

Tolerance: TensorFlow's antialiased bilinear resize is the same triangle
filter as Pillow's; on float images the two differ only by float32 round-off
(measured: at most 2.1e-3 grey levels over the cases below), so the maximum
absolute difference may be at most 0.01 levels. The test image is 6-pixel blocks of
random colours: a crop one pixel off (mean difference 13 levels), the other
resize rule (66) or another crop fraction (58) is far outside it (last test).
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from resnet_ft.data.preprocessing import Preprocessing, resize

TOLERANCE = 0.01


def blocks(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (height // 6 + 1, width // 6 + 1, 3), dtype=np.uint8)
    return np.repeat(np.repeat(coarse, 6, axis=0), 6, axis=1)[:height, :width]


def pillow_resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    channels = [Image.fromarray(image[..., c].astype(np.float32), mode="F")
                .resize((width, height), Image.Resampling.BILINEAR) for c in range(3)]
    return np.stack([np.asarray(c) for c in channels], axis=-1)


def reference(image: np.ndarray, size: int, rule: str, fraction: float = 0.875) -> np.ndarray:
    height, width = image.shape[:2]
    if rule == "squash":
        return pillow_resize(image, size, size)
    shorter = round(size / fraction)
    scale = shorter / min(height, width)
    new_h, new_w = max(round(height * scale), size), max(round(width * scale), size)
    scaled = pillow_resize(image, new_h, new_w)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return scaled[top : top + size, left : left + size]


def ours(image: np.ndarray, size: int, rule: str) -> np.ndarray:
    return np.asarray(resize(image, Preprocessing(size, rule)))


CASES = [((300, 173), 64), ((173, 300), 64), ((240, 320), 224), ((50, 70), 96), ((97, 97), 48)]


@pytest.mark.parametrize("rule", ["crop", "squash"])
@pytest.mark.parametrize(("shape", "size"), CASES, ids=[f"{h}x{w}-{s}" for (h, w), s in CASES])
def test_geometry_matches_the_stated_rule(shape, size, rule):
    image = blocks(*shape)
    got, expected = ours(image, size, rule), reference(image, size, rule)
    assert got.shape == expected.shape == (size, size, 3)
    assert np.abs(got - expected).max() <= TOLERANCE


def test_the_tolerance_sees_geometry_errors():
    """The comparison would fail for a crop off by one pixel or the other rule."""
    image = blocks(300, 173)
    got = ours(image, 64, "crop")
    shifted = reference(np.pad(image, ((1, 0), (0, 0), (0, 0)), mode="edge")[:-1], 64, "crop")
    assert np.abs(got - shifted).mean() > 5
    assert np.abs(got - reference(image, 64, "squash")).mean() > 5
    assert np.abs(got - reference(image, 64, "crop", fraction=0.8)).mean() > 5
