"""Tests for resnet_ft.data.images: every image is generated here, at test time."""

from __future__ import annotations

import io
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile
from support.image_files import png_claiming_size

from resnet_ft.data import images
from resnet_ft.data.images import (
    IMAGE_EXTENSIONS,
    MAX_PIXELS,
    decode_image,
    is_image_candidate,
)
from resnet_ft.errors import ImageDecodeError

RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)


def _encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _gradient_rgb(width: int = 32, height: int = 24) -> np.ndarray:
    """A smooth, distinctive RGB image (compresses well and survives JPEG)."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack(
        [x * 255 // (width - 1), y * 255 // (height - 1), np.full_like(x, 128)], axis=-1
    ).astype(np.uint8)


def _assert_rgb_array(arr: np.ndarray, height: int, width: int) -> None:
    assert arr.dtype == np.uint8
    assert arr.shape == (height, width, 3)
    assert arr.flags.c_contiguous
    assert arr.flags.writeable


# --- folder scanning -------------------------------------------------------


def test_is_image_candidate(tmp_path: Path) -> None:
    for name in [
        "a.jpg",
        "b.JPEG",
        "c.Png",
        "d.gif",
        "e.bmp",
        "f.webp",
        ".DS_Store",
        "notes.txt",
        "._foo.jpg",
        ".hidden.png",
        "noext",
    ]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "folder.jpg").mkdir()

    found = sorted(p.name for p in tmp_path.iterdir() if is_image_candidate(p))

    assert found == ["a.jpg", "b.JPEG", "c.Png", "d.gif", "e.bmp", "f.webp"]
    assert not is_image_candidate(tmp_path / "missing.jpg")
    assert {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp"} == IMAGE_EXTENSIONS


# --- lossless formats: exact pixels ----------------------------------------


@pytest.mark.parametrize(
    ("fmt", "params"),
    [("PNG", {}), ("BMP", {}), ("WEBP", {"lossless": True})],
)
def test_lossless_rgb_roundtrip_is_exact(tmp_path: Path, fmt: str, params: dict) -> None:
    expected = _gradient_rgb()
    path = _write(
        tmp_path / f"img.{fmt.lower()}", _encode(Image.fromarray(expected), fmt, **params)
    )

    arr = decode_image(path)

    _assert_rgb_array(arr, 24, 32)
    np.testing.assert_array_equal(arr, expected)


def test_format_is_detected_by_content_not_extension(tmp_path: Path) -> None:
    expected = _gradient_rgb()
    path = _write(tmp_path / "really_a_png.jpg", _encode(Image.fromarray(expected), "PNG"))

    np.testing.assert_array_equal(decode_image(path), expected)


def test_bytes_source_matches_path_source(tmp_path: Path) -> None:
    data = _encode(Image.fromarray(_gradient_rgb()), "JPEG", quality=90)
    path = _write(tmp_path / "img.jpg", data)

    from_path = decode_image(path)
    from_str = decode_image(str(path))
    from_bytes = decode_image(data)

    np.testing.assert_array_equal(from_path, from_bytes)
    np.testing.assert_array_equal(from_str, from_bytes)


def test_rgba_drops_alpha_and_keeps_rgb_exactly(tmp_path: Path) -> None:
    rgba = np.zeros((4, 5, 4), dtype=np.uint8)
    rgba[..., :3] = _gradient_rgb(5, 4)
    rgba[..., 3] = np.arange(20, dtype=np.uint8).reshape(4, 5) * 13  # includes alpha 0
    path = _write(tmp_path / "rgba.png", _encode(Image.fromarray(rgba, "RGBA"), "PNG"))

    arr = decode_image(path)

    _assert_rgb_array(arr, 4, 5)
    np.testing.assert_array_equal(arr, rgba[..., :3])


def test_grayscale_alpha_png(tmp_path: Path) -> None:
    la = Image.new("LA", (3, 2), (77, 0))
    path = _write(tmp_path / "la.png", _encode(la, "PNG"))

    np.testing.assert_array_equal(decode_image(path), np.full((2, 3, 3), 77, np.uint8))


def test_palette_png_with_transparency_uses_palette_colours(tmp_path: Path) -> None:
    pal = Image.new("P", (3, 2), 0)
    pal.putpalette([10, 20, 30, 200, 100, 50])
    pal.putpixel((2, 1), 1)
    path = _write(tmp_path / "pal.png", _encode(pal, "PNG", transparency=0))

    arr = decode_image(path)

    expected = np.empty((2, 3, 3), np.uint8)
    expected[:] = (10, 20, 30)  # the transparent index keeps its colour
    expected[1, 2] = (200, 100, 50)
    np.testing.assert_array_equal(arr, expected)


def test_one_bit_png(tmp_path: Path) -> None:
    bits = Image.new("1", (4, 2), 0)
    bits.putpixel((1, 0), 1)
    path = _write(tmp_path / "bits.png", _encode(bits, "PNG"))

    arr = decode_image(path)

    expected = np.zeros((2, 4, 3), np.uint8)
    expected[0, 1] = 255
    np.testing.assert_array_equal(arr, expected)


def test_sixteen_bit_grayscale_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 255, 256, 511], [32768, 65280, 65534, 65535]], dtype=np.uint16)
    path = _write(tmp_path / "deep.png", _encode(Image.fromarray(values), "PNG"))

    arr = decode_image(path)

    expected = np.array([[0, 0, 1, 1], [128, 255, 255, 255]], dtype=np.uint8)
    _assert_rgb_array(arr, 2, 4)
    for channel in range(3):
        np.testing.assert_array_equal(arr[..., channel], expected)


@pytest.mark.parametrize(
    ("mode_array", "expected"),
    [
        (np.array([[0, 256, 65535]], dtype="<u2"), [0, 1, 255]),  # I;16
        (np.array([[0, 256, 65535]], dtype=">u2"), [0, 1, 255]),  # I;16B
        (np.array([[-5, 256, 70000]], dtype=np.int32), [0, 1, 255]),  # I
        (np.array([[-3.0, 127.6, 300.0]], dtype=np.float32), [0, 128, 255]),  # F
    ],
)
def test_wide_modes_convert_by_scaling_or_clipping(
    mode_array: np.ndarray, expected: list[int]
) -> None:
    # Pillow reports these modes for 16-bit/float data; build them directly
    # because no supported file format produces all of them.
    img = Image.fromarray(mode_array)

    arr = images._to_rgb_array(img)

    _assert_rgb_array(arr, 1, 3)
    np.testing.assert_array_equal(arr, np.repeat(np.array(expected, np.uint8), 3).reshape(1, 3, 3))


def test_animated_gif_uses_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (6, 4), colour) for colour in (RED, GREEN, BLUE)]
    path = _write(
        tmp_path / "anim.gif",
        _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0),
    )

    arr = decode_image(path)

    _assert_rgb_array(arr, 4, 6)
    assert (arr == RED).all()


def test_mpo_jpeg_uses_first_frame(tmp_path: Path) -> None:
    # Phone and camera JPEGs often carry extra frames; Pillow calls them MPO.
    first, second = Image.new("RGB", (16, 8), BLUE), Image.new("RGB", (16, 8), GREEN)
    path = _write(
        tmp_path / "photo.jpg", _encode(first, "MPO", save_all=True, append_images=[second])
    )
    with Image.open(path) as probe:
        assert probe.format == "MPO"

    arr = decode_image(path)

    _assert_rgb_array(arr, 8, 16)
    np.testing.assert_allclose(arr.reshape(-1, 3).mean(axis=0), BLUE, atol=3)


# --- lossy formats ----------------------------------------------------------


def test_grayscale_jpeg_becomes_three_equal_channels(tmp_path: Path) -> None:
    gray = Image.fromarray(np.tile(np.arange(0, 256, 8, dtype=np.uint8), (8, 1)), "L")
    path = _write(tmp_path / "gray.jpg", _encode(gray, "JPEG", quality=95))

    arr = decode_image(path)

    _assert_rgb_array(arr, 8, 32)
    np.testing.assert_array_equal(arr[..., 0], arr[..., 1])
    np.testing.assert_array_equal(arr[..., 0], arr[..., 2])
    np.testing.assert_allclose(arr[..., 0], np.asarray(gray), atol=6)


def test_cmyk_jpeg(tmp_path: Path) -> None:
    cmyk = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # pure red in CMYK
    path = _write(tmp_path / "cmyk.jpg", _encode(cmyk, "JPEG", quality=95))
    with Image.open(path) as probe:
        assert probe.mode == "CMYK"

    arr = decode_image(path)

    _assert_rgb_array(arr, 8, 8)
    np.testing.assert_allclose(arr.reshape(-1, 3), np.tile(RED, (64, 1)), atol=3)


def test_exif_orientation_6_is_applied(tmp_path: Path) -> None:
    # Stored 40 wide x 20 high with a red top-left corner.  Orientation 6
    # means "rotate 90 degrees clockwise to display": it shows 20 wide x 40
    # high, and the stored top-left corner ends up top-right.
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:8, :8] = RED
    exif = Image.Exif()
    exif[0x0112] = 6
    path = _write(
        tmp_path / "rotated.jpg", _encode(Image.fromarray(stored), "JPEG", quality=95, exif=exif)
    )

    arr = decode_image(path)

    _assert_rgb_array(arr, 40, 20)
    np.testing.assert_allclose(arr[1:7, -7:-1].reshape(-1, 3).mean(axis=0), RED, atol=8)
    assert arr[1:7, 1:7].max() < 30  # the displayed top-left is black


def test_decoding_is_deterministic(tmp_path: Path) -> None:
    path = _write(tmp_path / "img.jpg", _encode(Image.fromarray(_gradient_rgb()), "JPEG"))

    np.testing.assert_array_equal(decode_image(path), decode_image(path))


# --- failures ----------------------------------------------------------------


def _reason(source: object) -> str:
    with pytest.raises(ImageDecodeError) as info:
        decode_image(source)  # type: ignore[arg-type]
    message = str(info.value)
    assert message
    assert "\n" not in message
    return message


def test_zero_byte_file(tmp_path: Path) -> None:
    assert _reason(_write(tmp_path / "empty.jpg", b"")) == "empty file"
    assert _reason(b"") == "empty file"


def test_text_file_named_jpg(tmp_path: Path) -> None:
    path = _write(tmp_path / "notes.jpg", b"these are my holiday notes\n" * 10)

    assert _reason(path) == "not an image file"


@pytest.mark.parametrize(
    ("fmt", "params"), [("JPEG", {"quality": 90}), ("PNG", {}), ("GIF", {}), ("BMP", {})]
)
def test_truncated_file(tmp_path: Path, fmt: str, params: dict) -> None:
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)  # incompressible
    data = _encode(Image.fromarray(noise), fmt, **params)
    path = _write(tmp_path / "half", data[: len(data) // 2])

    assert _reason(path) == "truncated image"
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_truncated_webp_is_an_error(tmp_path: Path) -> None:
    data = _encode(Image.fromarray(_gradient_rgb()), "WEBP", lossless=True)

    assert "corrupt image data" in _reason(_write(tmp_path / "half.webp", data[: len(data) // 2]))


def test_missing_file_and_directory(tmp_path: Path) -> None:
    assert _reason(tmp_path / "nope.jpg") == "file not found"
    assert _reason(tmp_path) == "is a directory, not a file"


def test_permission_denied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path / "secret.jpg", _encode(Image.new("RGB", (2, 2)), "JPEG"))

    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    # chmod cannot deny root (tests may run as root), so fake the OS answer
    # by shadowing the builtin open() inside the module under test only.
    monkeypatch.setattr(images, "open", denied, raising=False)

    assert _reason(path) == "permission denied"


def test_unsupported_format_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path / "scan.jpg", _encode(Image.new("RGB", (4, 4), RED), "TIFF"))

    reason = _reason(path)

    assert reason.startswith("unsupported image format TIFF")


@pytest.fixture
def forbid_pixel_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail if anything tries to decode pixels (where Pillow allocates them)."""

    def no_load(self: ImageFile.ImageFile) -> None:
        raise AssertionError("pixel data was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_load)


@pytest.mark.usefixtures("forbid_pixel_decoding")
def test_decompression_bomb_is_refused_before_decoding() -> None:
    bomb = png_claiming_size(40_000, 40_000)
    assert len(bomb) < 200

    start = time.perf_counter()
    reason = _reason(bomb)

    assert time.perf_counter() - start < 1.0
    assert reason.startswith("image too large")


@pytest.mark.usefixtures("forbid_pixel_decoding")
def test_own_pixel_limit_holds_without_pillows_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    # Even when the user disabled Pillow's guard, our header check refuses it.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)

    reason = _reason(png_claiming_size(40_000, 40_000))

    assert reason == f"image too large (40000x40000 pixels, limit {MAX_PIXELS})"


@pytest.mark.usefixtures("forbid_pixel_decoding")
def test_image_just_over_the_limit_is_refused_with_its_size() -> None:
    # Between 1x and 2x the limit Pillow only warns; our check must refuse.
    with pytest.warns(Image.DecompressionBombWarning):
        reason = _reason(png_claiming_size(10_000, 10_000))

    assert reason == f"image too large (10000x10000 pixels, limit {MAX_PIXELS})"


def test_pillow_bomb_warning_as_error_becomes_decode_error() -> None:
    # When warnings are errors (e.g. python -W error), Pillow's warning
    # arrives as an exception from Image.open.
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        reason = _reason(png_claiming_size(10_000, 10_000))

    assert reason.startswith("image too large")


# --- fuzzing -----------------------------------------------------------------


def _assert_decodes_or_refuses(data: bytes) -> None:
    try:
        arr = decode_image(data)
    except ImageDecodeError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert arr.dtype == np.uint8
        assert arr.ndim == 3
        assert arr.shape[2] == 3
        assert arr.shape[0] > 0
        assert arr.shape[1] > 0
        assert arr.flags.c_contiguous


_MAGICS = [
    b"",
    b"\xff\xd8\xff",  # JPEG
    b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
    b"\x89PNG\r\n\x1a\n",
    b"GIF89a",
    b"BM",
    b"RIFF\x00\x10\x00\x00WEBPVP8L",
]


# Random headers often claim a size just over the limit: Pillow warns, we refuse.
_QUIET_BOMB_WARNINGS = pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")


@_QUIET_BOMB_WARNINGS
@settings(max_examples=200, deadline=None)
@given(prefix=st.sampled_from(_MAGICS), body=st.binary(max_size=512))
def test_random_bytes_never_crash(prefix: bytes, body: bytes) -> None:
    _assert_decodes_or_refuses(prefix + body)


def _small_valid_files() -> list[bytes]:
    img = Image.fromarray(_gradient_rgb(12, 10))
    return [
        _encode(img, "JPEG"),
        _encode(img, "PNG"),
        _encode(img.convert("P"), "GIF"),
        _encode(img, "BMP"),
        _encode(img, "WEBP", lossless=True),
    ]


_VALID_FILES = _small_valid_files()


@_QUIET_BOMB_WARNINGS
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_corrupted_real_files_never_crash(data: st.DataObject) -> None:
    original = bytearray(data.draw(st.sampled_from(_VALID_FILES)))
    edits = data.draw(
        st.lists(
            st.tuples(st.integers(0, len(original) - 1), st.integers(0, 255)),
            min_size=1,
            max_size=8,
        )
    )
    for position, value in edits:
        original[position] = value
    cut = data.draw(st.integers(1, len(original)))

    _assert_decodes_or_refuses(bytes(original[:cut]))
