"""The decode step of every input pipeline: good files decoded, bad ones reported, in order.

``image_dataset`` runs :func:`decode_or_error` inside ``tf.numpy_function`` on
tf.data's threads; a failure must come back as a reason beside a placeholder,
so one pass both decodes the good files and names the bad ones.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from resnet_ft.data.preprocessing import Preprocessing, decode_or_error, image_dataset, resize


def _files(tmp_path: Path) -> list[Path]:
    rng = np.random.default_rng(0)
    good = tmp_path / "good.png"
    Image.fromarray(rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)).save(good)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff not really a jpeg")
    return [good, broken, tmp_path / "missing.png", good]


def test_decode_or_error_returns_pixels_or_the_reason(tmp_path: Path) -> None:
    good, broken, missing, _ = _files(tmp_path)
    pixels, reason = decode_or_error(bytes(good))
    assert reason == b""
    np.testing.assert_array_equal(pixels, np.asarray(Image.open(good).convert("RGB")))
    for path in (broken, missing):
        pixels, reason = decode_or_error(bytes(path))
        assert pixels.shape == (1, 1, 3) and not pixels.any()
        assert reason, path  # a non-empty, human-readable reason
        assert "Traceback" not in reason.decode("utf-8")


def test_dataset_keeps_order_and_reports_each_bad_file(tmp_path: Path) -> None:
    files = _files(tmp_path)
    spec = Preprocessing(24, "crop")
    rows = list(image_dataset([str(p) for p in files], spec).as_numpy_iterator())
    assert [bool(error) for _, error in rows] == [False, True, True, False]
    expected = np.asarray(resize(np.asarray(Image.open(files[0]).convert("RGB")), spec))
    for pixels, _ in (rows[0], rows[3]):
        assert pixels.shape == (24, 24, 3)
        np.testing.assert_array_equal(pixels, expected)
    assert rows[1][1] == decode_or_error(bytes(files[1]))[1]
