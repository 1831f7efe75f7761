"""Tests for resnet_ft.data.fetch.http against a local HTTP server on 127.0.0.1.

No test touches the internet: the ``server`` fixture (tests/support/http_server.py)
is a ThreadingHTTPServer bound to 127.0.0.1 on an ephemeral port that serves
in-memory bytes, with switches to misbehave in the ways real hosts do (drop the
connection mid-body, ignore Range, stall, 404), and records every request so
tests can prove what was (or was not) fetched.
"""

from __future__ import annotations

import hashlib
import io
import random
import socket
import tarfile
from pathlib import Path

import pytest
from rich.console import Console
from support.http_server import LocalServer, server_fixture  # noqa: F401 - the `server` fixture

from resnet_ft.data import fetch as dl
from resnet_ft.errors import ChecksumError, InputError, ResnetFtError

PAYLOAD = random.Random(0).randbytes(300_000)
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()
FAST = {"progress": False, "timeout": 2.0, "backoff": 0.0}


@pytest.fixture
def console() -> Console:
    """A console writing to a buffer, so output can be asserted and stays quiet."""
    return Console(file=io.StringIO(), width=120, force_terminal=False)


def _output(console: Console) -> str:
    file = console.file
    assert isinstance(file, io.StringIO)
    return file.getvalue()


def _part(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


# --------------------------------------------------------------------------- download


def test_full_download_is_byte_exact(server: LocalServer, tmp_path: Path, console: Console) -> None:
    server.state.files["blob.bin"] = PAYLOAD
    dest = tmp_path / "sub" / "blob.bin"
    result = dl.download(server.url("blob.bin"), dest, checksum=PAYLOAD_SHA, console=console,
                         **FAST)
    assert result == dest
    assert dest.read_bytes() == PAYLOAD
    assert not _part(dest).exists()
    assert server.state.ranges() == [None]


def test_progress_bar_renders_to_given_console(
    server: LocalServer, tmp_path: Path, console: Console
) -> None:
    server.state.files["blob.bin"] = PAYLOAD
    dest = tmp_path / "blob.bin"
    dl.download(server.url("blob.bin"), dest, console=console, timeout=2.0, progress=True)
    assert dest.read_bytes() == PAYLOAD
    assert "blob.bin" in _output(console)


def test_resume_sends_range_from_part_size(
    server: LocalServer, tmp_path: Path, console: Console
) -> None:
    server.state.files["blob.bin"] = PAYLOAD
    dest = tmp_path / "blob.bin"
    _part(dest).write_bytes(PAYLOAD[:12_345])
    dl.download(server.url("blob.bin"), dest, checksum=PAYLOAD_SHA, console=console, **FAST)
    assert server.state.ranges() == ["bytes=12345-"]
    assert dest.read_bytes() == PAYLOAD
    assert not _part(dest).exists()


def test_dropped_connection_is_retried_and_resumed(
    server: LocalServer, tmp_path: Path, console: Console
) -> None:
    server.state.files["blob.bin"] = PAYLOAD
    server.state.drop_next = 1
    dest = tmp_path / "blob.bin"
    dl.download(server.url("blob.bin"), dest, checksum=PAYLOAD_SHA, console=console, **FAST)
    # First request got a third of the body, the retry resumed from there.
    assert server.state.ranges() == [None, f"bytes={len(PAYLOAD) // 3}-"]
    assert dest.read_bytes() == PAYLOAD


def test_timeout_is_retried(server: LocalServer, tmp_path: Path, console: Console) -> None:
    server.state.files["blob.bin"] = PAYLOAD
    server.state.stall_next = 1
    server.state.stall_seconds = 0.6
    dest = tmp_path / "blob.bin"
    fast = {**FAST, "timeout": 0.2}
    dl.download(server.url("blob.bin"), dest, checksum=PAYLOAD_SHA, console=console, **fast)
    assert server.state.hits == 2
    assert dest.read_bytes() == PAYLOAD


def test_gives_up_after_retries_and_keeps_part(
    server: LocalServer, tmp_path: Path, console: Console
) -> None:
    server.state.files["blob.bin"] = PAYLOAD
    server.state.drop_next = 100
    dest = tmp_path / "blob.bin"
    with pytest.raises(ResnetFtError, match="gave up after 3 attempts") as info:
        dl.download(server.url("blob.bin"), dest, retries=2, console=console, **FAST)
    assert "\n" not in str(info.value)
    assert server.state.hits == 3
    assert not dest.exists()
    # The partial bytes are kept, and are a correct prefix, so a rerun resumes.
    part = _part(dest).read_bytes()
    assert 0 < len(part) < len(PAYLOAD)
    assert PAYLOAD.startswith(part)


def test_server_ignoring_range_restarts_from_zero(
    server: LocalServer, tmp_path: Path, console: Console
) -> None:
    server.state.files["blob.bin"] = PAYLOAD
    server.state.ignore_range = True
    dest = tmp_path / "blob.bin"
    _part(dest).write_bytes(b"garbage that must not survive")
    dl.download(server.url("blob.bin"), dest, checksum=PAYLOAD_SHA, console=console, **FAST)
    assert server.state.ranges() == ["bytes=29-"]
    assert dest.read_bytes() == PAYLOAD


def test_complete_part_answered_416_is_finished(
    server: LocalServer, tmp_path: Path, console: Console
) -> None:
    server.state.files["blob.bin"] = PAYLOAD
    dest = tmp_path / "blob.bin"
    _part(dest).write_bytes(PAYLOAD)
    dl.download(server.url("blob.bin"), dest, checksum=PAYLOAD_SHA, console=console, **FAST)
    assert server.state.ranges() == [f"bytes={len(PAYLOAD)}-"]
    assert dest.read_bytes() == PAYLOAD


def test_oversized_part_is_discarded(server: LocalServer, tmp_path: Path, console: Console) -> None:
    server.state.files["blob.bin"] = PAYLOAD
    dest = tmp_path / "blob.bin"
    _part(dest).write_bytes(PAYLOAD + b"extra")
    dl.download(server.url("blob.bin"), dest, checksum=PAYLOAD_SHA, console=console, **FAST)
    assert server.state.ranges() == [f"bytes={len(PAYLOAD) + 5}-", None]
    assert dest.read_bytes() == PAYLOAD


def test_checksum_mismatch_leaves_nothing(
    server: LocalServer, tmp_path: Path, console: Console
) -> None:
    server.state.files["blob.bin"] = PAYLOAD
    dest = tmp_path / "blob.bin"
    wrong = "0" * 64
    with pytest.raises(ResnetFtError) as info:
        dl.download(server.url("blob.bin"), dest, checksum=wrong, console=console, **FAST)
    message = str(info.value)
    assert wrong in message and PAYLOAD_SHA in message and "\n" not in message
    assert not dest.exists()
    assert not _part(dest).exists()


def test_http_404_is_one_line_error(server: LocalServer, tmp_path: Path, console: Console) -> None:
    server.state.always_404 = True
    dest = tmp_path / "missing.bin"
    url = server.url("missing.bin")
    with pytest.raises(ResnetFtError) as info:
        dl.download(url, dest, console=console, **FAST)
    message = str(info.value)
    assert "404" in message and url in message and "\n" not in message
    assert server.state.hits == 1  # a 404 is not retried
    assert not dest.exists() and not _part(dest).exists()


def test_connection_refused_is_one_line_error(tmp_path: Path, console: Console) -> None:
    with socket.socket() as sock:  # find a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/blob.bin"
    with pytest.raises(ResnetFtError, match="gave up after 2 attempts") as info:
        dl.download(url, tmp_path / "blob.bin", retries=1, console=console, **FAST)
    assert url in str(info.value)
    assert not (tmp_path / "blob.bin").exists()


def test_an_md5_checksum_is_checked_like_a_sha256(
    server: LocalServer, tmp_path: Path, console: Console
) -> None:
    """keras.applications pins its files with md5: the same checks, another digest."""
    from resnet_ft.util.hashing import Checksum

    server.state.files["blob.bin"] = PAYLOAD
    md5 = hashlib.md5(PAYLOAD).hexdigest()
    dest = tmp_path / "blob.bin"
    dl.download(server.url("blob.bin"), dest, checksum=Checksum("md5", md5.upper()),
                console=console, **FAST)
    assert dest.read_bytes() == PAYLOAD
    with pytest.raises(ChecksumError, match=f"expected md5 {'0' * 32}, found {md5}$"):
        dl.download(server.url("blob.bin"), tmp_path / "other.bin",
                    checksum=Checksum("md5", "0" * 32), console=console, **FAST)
    assert not (tmp_path / "other.bin").exists()
    assert not (tmp_path / "other.bin.part").exists()
    with pytest.raises(InputError, match="not a md5 hex digest"):
        Checksum("md5", PAYLOAD_SHA)
    with pytest.raises(InputError, match="unknown checksum algorithm 'crc32'"):
        Checksum("crc32", "1234")


def test_existing_dest_with_right_checksum_is_not_fetched(
    server: LocalServer, tmp_path: Path, console: Console
) -> None:
    server.state.files["blob.bin"] = PAYLOAD
    dest = tmp_path / "blob.bin"
    dest.write_bytes(PAYLOAD)
    dl.download(server.url("blob.bin"), dest, checksum=PAYLOAD_SHA.upper(), console=console, **FAST)
    dl.download(server.url("blob.bin"), dest, checksum=None, console=console, **FAST)
    assert server.state.hits == 0
    assert dest.read_bytes() == PAYLOAD


def test_existing_dest_with_wrong_checksum_is_replaced(
    server: LocalServer, tmp_path: Path, console: Console
) -> None:
    server.state.files["blob.bin"] = PAYLOAD
    dest = tmp_path / "blob.bin"
    dest.write_bytes(b"stale")
    dl.download(server.url("blob.bin"), dest, checksum=PAYLOAD_SHA, console=console, **FAST)
    assert server.state.hits == 1
    assert dest.read_bytes() == PAYLOAD


def test_unpinned_download_reports_its_sha256(
    server: LocalServer, tmp_path: Path, console: Console
) -> None:
    server.state.files["blob.bin"] = PAYLOAD
    dl.download(server.url("blob.bin"), tmp_path / "blob.bin", console=console, **FAST)
    assert PAYLOAD_SHA in _output(console)


def test_invalid_sha256_argument_is_input_error(tmp_path: Path, console: Console) -> None:
    with pytest.raises(InputError, match="sha256"):
        dl.download("http://127.0.0.1:9/x", tmp_path / "x", checksum="abc", console=console, **FAST)


def test_unsupported_url_is_input_error_without_retry(tmp_path: Path, console: Console) -> None:
    with pytest.raises(InputError, match="invalid download URL"):
        dl.download("nosuchscheme://host/x", tmp_path / "x", console=console, **FAST)
    assert not (tmp_path / "x").exists()


# --------------------------------------------------------------------------- extraction


def _tar_bytes(entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    """Build a .tar.gz in memory from (TarInfo, data) pairs."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, data in entries:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return buffer.getvalue()


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _link(name: str, target: str, kind: bytes) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def test_extract_tar_installs_single_top_level_entry(tmp_path: Path) -> None:
    archive = tmp_path / "a.tgz"
    archive.write_bytes(_tar_bytes([_file("pkg/one.txt", b"1"), _file("pkg/sub/two.txt", b"22")]))
    dest = tmp_path / "out"
    result = dl.extract_tar(archive, dest)
    assert result == dest / "pkg"
    assert (result / "one.txt").read_bytes() == b"1"
    assert (result / "sub" / "two.txt").read_bytes() == b"22"
    assert sorted(p.name for p in dest.iterdir()) == ["pkg"]  # no staging left behind


def test_extract_tar_replaces_previous_copy(tmp_path: Path) -> None:
    archive = tmp_path / "a.tgz"
    archive.write_bytes(_tar_bytes([_file("pkg/new.txt", b"new")]))
    dest = tmp_path / "out"
    (dest / "pkg").mkdir(parents=True)
    (dest / "pkg" / "old.txt").write_text("old")
    result = dl.extract_tar(archive, dest)
    assert sorted(p.name for p in result.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in dest.iterdir()) == ["pkg"]


@pytest.mark.parametrize(
    "evil",
    [
        pytest.param(_file("../evil", b"x"), id="dotdot"),
        pytest.param(_file("ok/../../evil", b"x"), id="nested-dotdot"),
        pytest.param(_file("/tmp/evil-absolute", b"x"), id="absolute"),
        pytest.param(_link("ok/link", "../../evil", tarfile.SYMTYPE), id="symlink-out"),
        pytest.param(_link("ok/link", "/etc/passwd", tarfile.SYMTYPE), id="symlink-abs"),
        pytest.param(_link("ok/hard", "../evil", tarfile.LNKTYPE), id="hardlink-out"),
    ],
)
def test_extract_tar_rejects_unsafe_members(
    tmp_path: Path, evil: tuple[tarfile.TarInfo, bytes | None]
) -> None:
    archive = tmp_path / "evil.tgz"
    archive.write_bytes(_tar_bytes([_file("ok/fine.txt", b"fine"), evil]))
    dest = tmp_path / "work" / "out"
    with pytest.raises(InputError, match="refusing to extract") as info:
        dl.extract_tar(archive, dest)
    assert "\n" not in str(info.value)
    assert not dest.exists()  # nothing half-extracted, not even the directory
    assert not (tmp_path / "work" / "evil").exists()
    assert not (tmp_path / "evil").exists()


def test_extract_tar_failure_keeps_existing_dest_untouched(tmp_path: Path) -> None:
    archive = tmp_path / "evil.tgz"
    archive.write_bytes(_tar_bytes([_file("pkg/a.txt", b"a"), _file("../evil", b"x")]))
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "keep.txt").write_text("keep")
    with pytest.raises(InputError):
        dl.extract_tar(archive, dest)
    assert sorted(p.name for p in dest.iterdir()) == ["keep.txt"]


def test_extract_tar_corrupt_archive_is_input_error(tmp_path: Path) -> None:
    archive = tmp_path / "broken.tgz"
    archive.write_bytes(_tar_bytes([_file("pkg/a.txt", PAYLOAD)])[:2000])
    dest = tmp_path / "out"
    with pytest.raises(InputError) as info:
        dl.extract_tar(archive, dest)
    assert "\n" not in str(info.value)
    assert not dest.exists()


# --------------------------------------------------------------------------- assets


def test_registry_is_consistent() -> None:
    assert set(dl.ASSETS) == {"flower_photos", "resnet_v1_101_slim"}
    for asset in dl.ASSETS.values():
        assert asset.url.rsplit("/", 1)[1] == asset.filename
        assert asset.sha256 is None or len(asset.sha256) == 64
    assert dl.asset_url(dl.FLOWER_PHOTOS, "http://127.0.0.1:1/") == (
        "http://127.0.0.1:1/flower_photos.tgz"
    )


def test_fetch_flowers_downloads_extracts_and_is_idempotent(
    server: LocalServer, tmp_path: Path, console: Console
) -> None:
    server.state.files[dl.FLOWER_PHOTOS.filename] = _tar_bytes(
        [
            _file("flower_photos/LICENSE.txt", b"CC-BY"),
            _file("flower_photos/daisy/1.jpg", b"\xff\xd8daisy"),
            _file("flower_photos/roses/2.jpg", b"\xff\xd8roses"),
        ]
    )
    server.state.files[dl.RESNET_V1_101_SLIM.filename] = _tar_bytes(
        [_file("resnet_v1_101.ckpt", b"fake checkpoint bytes")]
    )
    data = tmp_path / "data"

    paths = dl.fetch_flowers(data, base_url=server.base_url + "/", console=console)

    assert paths == {
        "flower_photos": data / "flower_photos",
        "resnet_v1_101_slim": data / "resnet_v1_101.ckpt",
    }
    assert (data / "flower_photos" / "daisy" / "1.jpg").read_bytes() == b"\xff\xd8daisy"
    assert (data / "flower_photos" / "roses" / "2.jpg").read_bytes() == b"\xff\xd8roses"
    assert (data / "flower_photos" / "LICENSE.txt").read_bytes() == b"CC-BY"
    assert (data / "resnet_v1_101.ckpt").read_bytes() == b"fake checkpoint bytes"
    assert sorted(p for p, _ in server.state.requests) == [
        "/flower_photos.tgz",
        "/resnet_v1_101_2016_08_28.tar.gz",
    ]
    # Archives are removed after extraction; no .part files remain.
    assert not list(data.glob("*.tgz")) and not list(data.glob("*.tar.gz"))
    assert not list(data.glob("*.part"))

    hits = server.state.hits
    again = dl.fetch_flowers(data, base_url=server.base_url, console=console)
    assert again == paths
    assert server.state.hits == hits  # second call: no network access at all

    # Deleting an output makes only that asset come back.
    (data / "resnet_v1_101.ckpt").unlink()
    dl.fetch_flowers(data, base_url=server.base_url, console=console)
    assert server.state.hits == hits + 1
    assert (data / "resnet_v1_101.ckpt").read_bytes() == b"fake checkpoint bytes"


def test_data_flowers_command(server: LocalServer, tmp_path: Path, cli) -> None:
    """`resnet-ft data flowers DEST --base-url` end to end, and a clean error for a 404."""
    server.state.files[dl.FLOWER_PHOTOS.filename] = _tar_bytes(
        [_file("flower_photos/daisy/1.jpg", b"\xff\xd8daisy")]
    )
    server.state.files[dl.RESNET_V1_101_SLIM.filename] = _tar_bytes(
        [_file("resnet_v1_101.ckpt", b"fake checkpoint bytes")]
    )
    result = cli("data", "flowers", tmp_path / "data", "--base-url", server.base_url)
    assert result.code == 0, result.err
    assert f"flower_photos: {tmp_path / 'data' / 'flower_photos'}" in result.out
    assert (tmp_path / "data" / "resnet_v1_101.ckpt").read_bytes() == b"fake checkpoint bytes"
    del server.state.files[dl.FLOWER_PHOTOS.filename]
    missing = cli("data", "flowers", tmp_path / "other", "--base-url", server.base_url)
    assert missing.code != 0 and missing.err.startswith("error: ") and "404" in missing.err
