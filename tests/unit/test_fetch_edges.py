"""Edge cases of resnet_ft.data.fetch.resume (one HTTP attempt) and .archive (tar extraction).

The resume tests talk to the local server of tests/support/http_server.py,
mostly through scripted answers (a 206 from the wrong offset, a 503, a body
that stalls or is cut off), and check what each leaves in the ``.part`` file
and whether it is classed as retryable (``TransientError``) or not. The
archive tests build small tars in memory and check that every rejected or
failed extraction leaves the destination exactly as it was.
"""

from __future__ import annotations

import errno
import io
import os
import random
import socket
import tarfile
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from rich.console import Console
from rich.progress import Progress, TaskID
from support.http_server import LocalServer, Responder, server_fixture  # noqa: F401 - `server`

from resnet_ft.data import fetch as dl
from resnet_ft.data.fetch import archive, resume
from resnet_ft.data.fetch.resume import TransientError, fetch_into
from resnet_ft.errors import InputError, OutputError, ResnetFtError

PAYLOAD = random.Random(1).randbytes(200_000)
FAST = {"progress": False, "timeout": 2.0, "backoff": 0.0}


@pytest.fixture
def console() -> Console:
    """A console writing to a buffer, so downloads stay quiet."""
    return Console(file=io.StringIO(), width=120, force_terminal=False)


@pytest.fixture
def bar() -> tuple[Progress, TaskID]:
    """A disabled progress bar and its task, as ``fetch_into`` needs them."""
    progress = Progress(disable=True)
    return progress, progress.add_task("blob.bin", total=None)


def _fetch(url: str, part: Path, bar: tuple[Progress, TaskID], timeout: float = 2.0) -> None:
    """One ``fetch_into`` attempt with the test's progress bar."""
    fetch_into(url, part, timeout=timeout, bar=bar[0], task=bar[1])


# --------------------------------------------------------------------------- scripted answers


def _answer(status: int, headers: dict[str, str], body: bytes = b"") -> Responder:
    """Answer with exactly this status, these headers and this body."""

    def respond(handler: BaseHTTPRequestHandler, _file: bytes | None) -> None:
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)

    return respond


def _error(status: int) -> Responder:
    """Answer with an HTTP error status (and its standard reason phrase)."""

    def respond(handler: BaseHTTPRequestHandler, _file: bytes | None) -> None:
        handler.send_error(status)

    return respond


def _stall_after(sent: int, server: LocalServer, seconds: float = 1.0) -> Responder:
    """Promise the whole file, send its first ``sent`` bytes, then go silent."""

    def respond(handler: BaseHTTPRequestHandler, body: bytes | None) -> None:
        assert body is not None
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body[:sent])
        handler.wfile.flush()
        server.state.stopping.wait(seconds)  # the client times out meanwhile

    return respond


def _chunked_cut_after(sent: int) -> Responder:
    """Send the file chunked: one chunk of ``sent`` bytes, then half a chunk and hang up."""

    def respond(handler: BaseHTTPRequestHandler, body: bytes | None) -> None:
        assert body is not None
        handler.protocol_version = "HTTP/1.1"
        handler.send_response(200)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        rest = body[sent:]
        handler.wfile.write(b"%x\r\n%s\r\n" % (sent, body[:sent]))
        handler.wfile.write(b"%x\r\n%s" % (len(rest), rest[: len(rest) // 2]))
        handler.wfile.flush()
        handler.connection.shutdown(socket.SHUT_RDWR)
        handler.close_connection = True

    return respond


# --------------------------------------------------------------------------- resume: offsets


@pytest.mark.parametrize(
    ("content_range", "start"),
    [
        pytest.param(f"bytes 0-{len(PAYLOAD) - 1}/{len(PAYLOAD)}", "0", id="from-zero"),
        pytest.param(f"bytes 2000-{len(PAYLOAD) - 1}/{len(PAYLOAD)}", "2000", id="too-late"),
        pytest.param(None, "None", id="missing"),
        pytest.param("bytes 1000-1999", "None", id="malformed"),
    ],
)
def test_206_not_from_the_part_size_discards_part(
    server: LocalServer,
    tmp_path: Path,
    bar: tuple[Progress, TaskID],
    content_range: str | None,
    start: str,
) -> None:
    """Catches appending a 206 body that does not start where ``.part`` ends (silent corruption)."""
    part = tmp_path / "blob.bin.part"
    part.write_bytes(PAYLOAD[:1000])
    headers = {"Content-Length": "10"} | ({"Content-Range": content_range} if content_range else {})
    server.state.script.append(_answer(206, headers, b"0123456789"))
    with pytest.raises(TransientError) as info:
        _fetch(server.url("blob.bin"), part, bar)
    assert str(info.value) == f"server resumed at byte {start}, not 1000; restarting"
    assert not part.exists()  # the next attempt starts from byte 0
    assert server.state.ranges() == ["bytes=1000-"]


def test_206_from_wrong_offset_restarts_whole_download(
    server: LocalServer, tmp_path: Path, console: Console
) -> None:
    """Catches a download that keeps a mis-resumed ``.part`` instead of starting over."""
    server.state.files["blob.bin"] = PAYLOAD
    size = len(PAYLOAD)
    server.state.script.append(
        _answer(206, {"Content-Range": f"bytes 0-{size - 1}/{size}"}, PAYLOAD)
    )
    dest = tmp_path / "blob.bin"
    (tmp_path / "blob.bin.part").write_bytes(PAYLOAD[:1000])
    dl.download(server.url("blob.bin"), dest, console=console, **FAST)
    assert server.state.ranges() == ["bytes=1000-", None]
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "blob.bin.part").exists()


def test_206_with_unknown_total_appends_without_length_check(
    server: LocalServer, tmp_path: Path, bar: tuple[Progress, TaskID]
) -> None:
    """Catches choking on ``Content-Range: bytes A-B/*`` (total unknown) instead of resuming."""
    part = tmp_path / "blob.bin.part"
    part.write_bytes(PAYLOAD[:1000])
    rest = PAYLOAD[1000:]
    headers = {
        "Content-Range": f"bytes 1000-{len(PAYLOAD) - 1}/*",
        "Content-Length": str(len(rest)),
    }
    server.state.script.append(_answer(206, headers, rest))
    _fetch(server.url("blob.bin"), part, bar)
    assert part.read_bytes() == PAYLOAD


def test_200_with_malformed_content_length_reads_to_close(
    server: LocalServer, tmp_path: Path, bar: tuple[Progress, TaskID]
) -> None:
    """Catches a crash on a malformed ``Content-Length`` (the body simply runs to the close)."""
    part = tmp_path / "blob.bin.part"
    server.state.script.append(_answer(200, {"Content-Length": "12 bytes"}, PAYLOAD))
    _fetch(server.url("blob.bin"), part, bar)
    assert part.read_bytes() == PAYLOAD


def test_416_without_content_range_discards_part(
    server: LocalServer, tmp_path: Path, bar: tuple[Progress, TaskID]
) -> None:
    """Catches taking a 416 with no size as "already complete" (keeping a possibly bad part)."""
    part = tmp_path / "blob.bin.part"
    part.write_bytes(PAYLOAD[:5000])
    server.state.script.append(_answer(416, {"Content-Length": "0"}))
    with pytest.raises(TransientError, match=r"server rejected the resume offset; restarting"):
        _fetch(server.url("blob.bin"), part, bar)
    assert not part.exists()


# --------------------------------------------------------------------------- resume: statuses


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_retryable_status_is_transient_and_keeps_part(
    server: LocalServer, tmp_path: Path, bar: tuple[Progress, TaskID], status: int
) -> None:
    """Catches 5xx/429/408 being treated as permanent, or the resumable part being dropped."""
    part = tmp_path / "blob.bin.part"
    part.write_bytes(PAYLOAD[:1234])
    server.state.script.append(_error(status))
    with pytest.raises(TransientError, match=rf"^HTTP {status} "):
        _fetch(server.url("blob.bin"), part, bar)
    assert part.read_bytes() == PAYLOAD[:1234]


@pytest.mark.parametrize(
    ("status", "reason"), [(400, "Bad Request"), (401, "Unauthorized"), (403, "Forbidden")]
)
def test_other_4xx_is_permanent(
    server: LocalServer, tmp_path: Path, bar: tuple[Progress, TaskID], status: int, reason: str
) -> None:
    """Catches a 4xx that can never succeed being retried (or losing the URL in the message)."""
    part = tmp_path / "blob.bin.part"
    part.write_bytes(PAYLOAD[:1234])
    url = server.url("blob.bin")
    server.state.script.append(_error(status))
    with pytest.raises(ResnetFtError) as info:
        _fetch(url, part, bar)
    assert not isinstance(info.value, TransientError)
    assert str(info.value) == f"cannot download {url}: HTTP {status} {reason}"
    assert part.read_bytes() == PAYLOAD[:1234]


def test_503_is_retried_then_succeeds(
    server: LocalServer, tmp_path: Path, console: Console
) -> None:
    """Catches ``download`` giving up on a temporarily unavailable server."""
    server.state.files["blob.bin"] = PAYLOAD
    server.state.script.append(_error(503))
    dest = tmp_path / "blob.bin"
    dl.download(server.url("blob.bin"), dest, console=console, **FAST)
    assert server.state.hits == 2
    assert dest.read_bytes() == PAYLOAD


def test_persistent_429_gives_up_with_the_status(
    server: LocalServer, tmp_path: Path, console: Console
) -> None:
    """Catches retrying forever, or a give-up message that hides the last status."""
    server.state.script.extend([_error(429), _error(429)])
    dest = tmp_path / "blob.bin"
    url = server.url("blob.bin")
    with pytest.raises(ResnetFtError) as info:
        dl.download(url, dest, retries=1, console=console, **FAST)
    assert str(info.value) == (
        f"cannot download {url}: HTTP 429 Too Many Requests (gave up after 2 attempts)"
    )
    assert server.state.hits == 2
    assert not dest.exists()


# --------------------------------------------------------------------------- resume: URLs


@pytest.mark.parametrize(
    ("url", "why"),
    [
        pytest.param("nosuchscheme://host/x", "unknown url type: nosuchscheme", id="scheme"),
        pytest.param("http:///x", "no host given", id="no-host"),
        pytest.param("data:no-comma", "not enough values to unpack", id="bad-data-url"),
        pytest.param("example.com/x.tgz", "unknown url type: 'example.com/x.tgz'",
                     id="no-scheme"),
        pytest.param("http://[::1/x", "Invalid IPv6 URL", id="bad-ipv6"),
        pytest.param("http://127.0.0.1:abc/x", "nonnumeric port: 'abc'", id="bad-port"),
        pytest.param("http://127.0.0.1:1/a b", "URL can't contain control characters",
                     id="space"),
    ],
)
def test_unusable_url_is_input_error(
    tmp_path: Path, bar: tuple[Progress, TaskID], url: str, why: str
) -> None:
    """Catches a URL that can never work being classed as transient (retried with backoff)."""
    part = tmp_path / "x.part"
    with pytest.raises(InputError) as info:
        _fetch(url, part, bar)
    assert str(info.value).startswith(f"invalid download URL {url!r}: {why}")
    assert not part.exists()


# --------------------------------------------------------------------------- resume: body errors


def test_stall_mid_body_is_transient_and_keeps_what_arrived(
    server: LocalServer, tmp_path: Path, bar: tuple[Progress, TaskID]
) -> None:
    """Catches a read timeout mid-body escaping raw, or discarding the bytes already written."""
    server.state.files["blob.bin"] = PAYLOAD
    server.state.script.append(_stall_after(150_000, server))
    part = tmp_path / "blob.bin.part"
    with pytest.raises(TransientError, match=r"^timed out$"):
        _fetch(server.url("blob.bin"), part, bar, timeout=0.2)
    kept = part.read_bytes()
    assert 0 < len(kept) <= 150_000
    assert PAYLOAD.startswith(kept)


def test_stall_mid_body_download_resumes_from_what_arrived(
    server: LocalServer, tmp_path: Path, console: Console
) -> None:
    """Catches a retry after a mid-body timeout starting over instead of resuming."""
    server.state.files["blob.bin"] = PAYLOAD
    server.state.script.append(_stall_after(150_000, server))
    dest = tmp_path / "blob.bin"
    dl.download(server.url("blob.bin"), dest, console=console, **{**FAST, "timeout": 0.2})
    first, second = server.state.ranges()
    assert first is None
    assert second is not None and second.startswith("bytes=") and second != "bytes=0-"
    assert dest.read_bytes() == PAYLOAD


def test_cut_chunked_body_is_transient(
    server: LocalServer, tmp_path: Path, bar: tuple[Progress, TaskID]
) -> None:
    """Catches http.client's IncompleteRead (an HTTPException, not OSError) escaping raw."""
    server.state.files["blob.bin"] = PAYLOAD
    server.state.script.append(_chunked_cut_after(100_000))
    part = tmp_path / "blob.bin.part"
    with pytest.raises(TransientError, match="IncompleteRead"):
        _fetch(server.url("blob.bin"), part, bar)
    kept = part.read_bytes()
    assert 0 < len(kept) <= 150_000  # the first chunk and half of the second were sent
    assert PAYLOAD.startswith(kept)


def test_part_in_missing_directory_is_output_error(
    server: LocalServer, tmp_path: Path, bar: tuple[Progress, TaskID]
) -> None:
    """Catches failing to open ``.part`` being retried as transient or escaping as OSError."""
    server.state.files["blob.bin"] = PAYLOAD
    (tmp_path / "file").write_text("not a directory")
    part = tmp_path / "file" / "blob.bin.part"
    with pytest.raises(OutputError) as info:
        _fetch(server.url("blob.bin"), part, bar)
    assert str(info.value) == f"cannot write {part}: Not a directory"
    assert (tmp_path / "file").read_text() == "not a directory"


def test_disk_full_on_write_is_output_error(
    server: LocalServer, bar: tuple[Progress, TaskID]
) -> None:
    """Catches ENOSPC while writing being retried as transient or escaping as OSError."""
    server.state.files["blob.bin"] = PAYLOAD  # chunks larger than the write buffer
    with pytest.raises(OutputError) as info:
        _fetch(server.url("blob.bin"), Path("/dev/full"), bar)
    assert str(info.value) == "cannot write /dev/full: No space left on device"


def test_disk_full_on_the_buffered_tail_is_output_error(
    server: LocalServer, bar: tuple[Progress, TaskID]
) -> None:
    """Catches ENOSPC surfacing only when closing flushes a small body's buffer: it escaped
    as a raw OSError (closing flushed again after the OutputError was raised)."""
    server.state.files["small.bin"] = b"0123456789"
    with pytest.raises(OutputError) as info:
        _fetch(server.url("small.bin"), Path("/dev/full"), bar)
    assert str(info.value) == "cannot write /dev/full: No space left on device"


def test_fsync_failure_is_output_error(server: LocalServer, bar: tuple[Progress, TaskID]) -> None:
    """Catches an unchecked fsync: a body that may not be on disk must not count as written."""
    server.state.files["blob.bin"] = PAYLOAD
    with pytest.raises(OutputError) as info:
        _fetch(server.url("blob.bin"), Path("/dev/null"), bar)  # fsync: EINVAL
    assert str(info.value) == "cannot write /dev/null: Invalid argument"


# --------------------------------------------------------------------------- resume: parsing


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("bytes 0-9/10", (0, 10)),
        ("bytes 100-199/1000", (100, 1000)),
        ("  bytes  5-9/10  ", (5, 10)),
        ("bytes */300", (None, 300)),
        ("bytes 5-9/*", (5, None)),
        ("bytes */*", (None, None)),
        ("bytes 10-20", (None, None)),
        ("items 0-9/10", (None, None)),
        ("bytes -5-9/10", (None, None)),
        ("bytes 0-9/10, 20-29/10", (None, None)),
        ("", (None, None)),
        (None, (None, None)),
    ],
)
def test_parse_content_range(value: str | None, expected: tuple[int | None, int | None]) -> None:
    """Catches misreading a Content-Range (a wrong start would resume at the wrong byte)."""
    assert resume._parse_content_range(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0", 0), ("12345", 12345), ("12 bytes", None), ("", None), (None, None)],
)
def test_int_or_none(value: str | None, expected: int | None) -> None:
    """Catches a malformed header integer raising instead of meaning "unknown"."""
    assert resume._int_or_none(value) == expected


# --------------------------------------------------------------------------- archive helpers


Member = tuple[tarfile.TarInfo, bytes | None]


def _member(
    name: str, data: bytes | None = b"", *, kind: bytes = tarfile.REGTYPE, link: str = ""
) -> Member:
    """A tar member: a regular file with ``data`` unless ``kind`` says otherwise."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    if kind == tarfile.DIRTYPE:
        info.mode = 0o755
    if kind != tarfile.REGTYPE:
        data = None
    return info, data


def _write_tar(path: Path, members: list[Member], mode: str = "w:gz") -> Path:
    """Write ``members`` as a (gzipped) tar at ``path`` and return ``path``."""
    with tarfile.open(path, mode) as tar:
        for info, data in members:
            if data is None:
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def _names(directory: Path) -> list[str]:
    """What ``directory`` holds, top level only (staging directories would show here)."""
    return sorted(p.name for p in directory.iterdir())


def _existing_dest(tmp_path: Path) -> Path:
    """A destination that already holds an earlier extraction and an unrelated file."""
    dest = tmp_path / "out"
    (dest / "pkg").mkdir(parents=True)
    (dest / "pkg" / "old.txt").write_text("old")
    (dest / "keep.txt").write_text("keep")
    return dest


def _assert_untouched(dest: Path) -> None:
    """``dest`` is exactly what :func:`_existing_dest` made: no staging, no new entries."""
    assert _names(dest) == ["keep.txt", "pkg"]
    assert _names(dest / "pkg") == ["old.txt"]
    assert (dest / "pkg" / "old.txt").read_text() == "old"


# --------------------------------------------------------------------------- archive: opening


def test_missing_archive_is_input_error(tmp_path: Path) -> None:
    """Catches a missing archive escaping as FileNotFoundError (or creating dest first)."""
    archive_path = tmp_path / "nope.tgz"
    with pytest.raises(InputError) as info:
        dl.extract_tar(archive_path, tmp_path / "out")
    assert str(info.value) == f"archive not found: {archive_path}"
    assert not (tmp_path / "out").exists()


def test_unreadable_archive_is_input_error(tmp_path: Path) -> None:
    """Catches an OSError other than "not found" (here: a directory) escaping raw."""
    archive_path = tmp_path / "dir.tgz"
    archive_path.mkdir()
    with pytest.raises(InputError) as info:
        dl.extract_tar(archive_path, tmp_path / "out")
    assert str(info.value) == f"cannot read {archive_path}: Is a directory"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(random.Random(2).randbytes(5000), id="random-bytes"),
        pytest.param(b"", id="zero-bytes"),
        pytest.param(b"<html>404 Not Found</html>\n", id="html-page"),
    ],
)
def test_not_a_tar_is_input_error(tmp_path: Path, content: bytes) -> None:
    """Catches tarfile.ReadError escaping when a download is not an archive at all."""
    archive_path = tmp_path / "a.tgz"
    archive_path.write_bytes(content)
    with pytest.raises(InputError) as info:
        dl.extract_tar(archive_path, tmp_path / "out")
    assert str(info.value) == f"{archive_path} is not a readable tar archive"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "members",
    [
        pytest.param([], id="no-members"),
        pytest.param([_member(".", kind=tarfile.DIRTYPE)], id="dot"),
    ],
)
def test_empty_archive_is_input_error(tmp_path: Path, members: list[Member]) -> None:
    """Catches an empty archive "succeeding" (and then indexing tops[0] → IndexError)."""
    archive_path = _write_tar(tmp_path / "a.tgz", members)
    with pytest.raises(InputError) as info:
        dl.extract_tar(archive_path, tmp_path / "out")
    assert str(info.value) == f"{archive_path} contains no files"
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- archive: members


@pytest.mark.parametrize(
    ("member", "why"),
    [
        pytest.param(_member("C:\\evil"), "has an absolute path", id="drive-backslash"),
        pytest.param(_member("C:/evil"), "has an absolute path", id="drive-slash"),
        pytest.param(_member("\\\\srv\\share\\evil"), "has an absolute path", id="unc"),
        pytest.param(_member("\\evil"), "has an absolute path", id="backslash-rooted"),
        pytest.param(
            _member("pkg/l", kind=tarfile.SYMTYPE, link="C:\\Windows"),
            "links to an absolute path 'C:\\\\Windows'",
            id="symlink-to-drive",
        ),
        pytest.param(
            _member("pkg/deep/h", kind=tarfile.LNKTYPE, link="../evil"),
            "links outside the destination ('../evil')",
            id="hardlink-is-archive-relative",
        ),
        pytest.param(
            _member("pkg/l", kind=tarfile.SYMTYPE, link="../.."),
            "links outside the destination ('../..')",
            id="symlink-to-parent",
        ),
        pytest.param(
            _member("pkg/fifo", kind=tarfile.FIFOTYPE),
            "is a device, FIFO or other special file",
            id="fifo",
        ),
        pytest.param(
            _member("pkg/tty", kind=tarfile.CHRTYPE),
            "is a device, FIFO or other special file",
            id="char-device",
        ),
        pytest.param(
            _member("pkg/sda", kind=tarfile.BLKTYPE),
            "is a device, FIFO or other special file",
            id="block-device",
        ),
    ],
)
def test_unsafe_member_is_refused_before_writing(tmp_path: Path, member: Member, why: str) -> None:
    """Catches each lexical check: Windows-absolute names, links out, special files."""
    archive_path = _write_tar(tmp_path / "a.tgz", [_member("pkg/fine.txt", b"fine"), member])
    dest = _existing_dest(tmp_path)
    with pytest.raises(InputError) as info:
        dl.extract_tar(archive_path, dest)
    name = member[0].name
    assert str(info.value) == f"refusing to extract {archive_path}: member {name!r} {why}"
    _assert_untouched(dest)


def test_links_inside_the_archive_are_extracted(tmp_path: Path) -> None:
    """Catches over-eager link checks: a symlink up within the tree, a root-relative hardlink."""
    archive_path = _write_tar(
        tmp_path / "a.tgz",
        [
            _member("pkg/a.txt", b"A"),
            _member("pkg/sub/up", kind=tarfile.SYMTYPE, link="../a.txt"),
            _member("pkg/same", kind=tarfile.LNKTYPE, link="pkg/a.txt"),
        ],
    )
    dest = tmp_path / "out"
    result = dl.extract_tar(archive_path, dest)
    assert result == dest / "pkg"
    assert os.readlink(result / "sub" / "up") == "../a.txt"
    assert (result / "sub" / "up").read_bytes() == b"A"
    assert (result / "same").stat().st_ino == (result / "a.txt").stat().st_ino
    assert _names(dest) == ["pkg"]


@pytest.mark.parametrize("dest_exists", [False, True], ids=["new-dest", "existing-dest"])
def test_symlink_chain_escape_is_caught_by_data_filter(tmp_path: Path, dest_exists: bool) -> None:
    """Catches dropping the "data" filter: ``a/b -> ..`` then ``a/b/c -> ..`` passes the lexical
    check (each link alone stays inside) but together they point out of the destination."""
    archive_path = _write_tar(
        tmp_path / "a.tgz",
        [
            _member("a/f", b"x"),
            _member("a/b", kind=tarfile.SYMTYPE, link=".."),
            _member("a/b/c", kind=tarfile.SYMTYPE, link=".."),
        ],
    )
    dest = _existing_dest(tmp_path) if dest_exists else tmp_path / "out"
    with pytest.raises(InputError) as info:
        dl.extract_tar(archive_path, dest)
    message = str(info.value)
    assert message.startswith(f"refusing to extract {archive_path}: ")
    assert "'a/b/c'" in message and "outside the destination" in message
    if dest_exists:
        _assert_untouched(dest)
    else:
        assert not dest.exists()  # the staging directory and the dest it needed are gone


def test_links_are_refused_without_the_data_filter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Catches accepting links on a Python whose tarfile cannot re-check them on disk."""
    monkeypatch.setattr(archive, "_HAS_DATA_FILTER", False)
    link = _member("pkg/l", kind=tarfile.SYMTYPE, link="a.txt")
    with_link = _write_tar(tmp_path / "a.tgz", [_member("pkg/a.txt", b"A"), link])
    with pytest.raises(InputError) as info:
        dl.extract_tar(with_link, tmp_path / "out")
    assert str(info.value) == (
        f"refusing to extract {with_link}: member 'pkg/l' "
        "is a link (needs Python >= 3.10.12 / 3.11.4 to extract safely)"
    )
    assert not (tmp_path / "out").exists()
    # Plain files still extract on such a Python.
    plain = _write_tar(tmp_path / "b.tgz", [_member("pkg/a.txt", b"A")])
    assert (dl.extract_tar(plain, tmp_path / "out") / "a.txt").read_bytes() == b"A"


# --------------------------------------------------------------------------- archive: results


def test_several_top_level_entries_return_dest_dir(tmp_path: Path) -> None:
    """Catches returning the first entry for a multi-entry archive, or mangling ``./`` names."""
    archive_path = _write_tar(
        tmp_path / "a.tar",
        [
            _member("./", kind=tarfile.DIRTYPE),
            _member("b.txt", b"b"),
            _member("./a/x.txt", b"x"),
            _member("a/y.txt", b"y"),
            _member("c", kind=tarfile.DIRTYPE),
        ],
        mode="w",
    )
    dest = _existing_dest(tmp_path)
    path, tops = archive.extract_tar_entries(archive_path, dest)
    assert (path, tops) == (dest, ["b.txt", "a", "c"])
    assert dl.extract_tar(str(archive_path), str(dest)) == dest  # str paths work too
    assert _names(dest) == ["a", "b.txt", "c", "keep.txt", "pkg"]
    assert _names(dest / "a") == ["x.txt", "y.txt"]
    assert (dest / "b.txt").read_bytes() == b"b"
    # Entries the archive does not have are left alone.
    assert (dest / "pkg" / "old.txt").read_text() == "old"


def test_dangling_symlink_at_target_is_replaced(tmp_path: Path) -> None:
    """Catches ``exists()`` missing a dangling symlink, so the rename fails with ENOTDIR."""
    archive_path = _write_tar(tmp_path / "a.tgz", [_member("pkg/new.txt", b"new")])
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "pkg").symlink_to(tmp_path / "gone")
    result = dl.extract_tar(archive_path, dest)
    assert not result.is_symlink()
    assert (result / "new.txt").read_bytes() == b"new"
    assert _names(dest) == ["pkg"]


# --------------------------------------------------------------------------- archive: failures


def test_dest_under_a_file_is_output_error(tmp_path: Path) -> None:
    """Catches a dest that cannot be created escaping as OSError (or as an InputError)."""
    archive_path = _write_tar(tmp_path / "a.tgz", [_member("pkg/a.txt", b"A")])
    (tmp_path / "file").write_text("x")
    dest = tmp_path / "file" / "out"
    with pytest.raises(OutputError) as info:
        dl.extract_tar(archive_path, dest)
    assert str(info.value) == f"cannot create {dest}: Not a directory"
    assert (tmp_path / "file").read_text() == "x"


@pytest.mark.parametrize("dest_exists", [False, True], ids=["new-dest", "existing-dest"])
def test_os_error_while_extracting_cleans_up(tmp_path: Path, dest_exists: bool) -> None:
    """Catches a failed extraction leaving staging (or a dest this call created) behind."""
    archive_path = _write_tar(
        tmp_path / "a.tgz", [_member("pkg/a.txt", b"A"), _member("pkg/" + "n" * 300, b"long")]
    )
    dest = _existing_dest(tmp_path) if dest_exists else tmp_path / "out"
    with pytest.raises(OutputError) as info:
        dl.extract_tar(archive_path, dest)
    assert str(info.value) == f"cannot extract {archive_path}: File name too long"
    if dest_exists:
        _assert_untouched(dest)
    else:
        assert not dest.exists()


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        pytest.param(
            zlib.error("Error -3 while decompressing data: invalid block type"),
            "is corrupt: Error -3 while decompressing data: invalid block type",
            id="zlib",
        ),
        pytest.param(
            EOFError("Compressed file ended before the end-of-stream marker was reached"),
            "is corrupt: Compressed file ended before the end-of-stream marker was reached",
            id="eof",
        ),
        pytest.param(KeyboardInterrupt(), None, id="ctrl-c"),
    ],
)
def test_failure_mid_extraction_removes_staging(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    exc: BaseException,
    expected: str | None,
) -> None:
    """Catches a decompression error escaping raw, and cleanup that skips Ctrl-C.

    The stream is made to fail after the first member is already on disk in
    staging, as a corrupt compressed stream would.
    """
    real_extractall = tarfile.TarFile.extractall

    def fail_after_first(
        self: tarfile.TarFile, path: str, members: list[tarfile.TarInfo], **kwargs: object
    ) -> None:
        real_extractall(self, path, members=members[:1], **kwargs)
        assert any(Path(path).rglob("a.txt"))
        raise exc

    monkeypatch.setattr(tarfile.TarFile, "extractall", fail_after_first)
    archive_path = _write_tar(
        tmp_path / "a.tgz", [_member("pkg/a.txt", b"A"), _member("pkg/b", b"B")]
    )
    dest = tmp_path / "out"
    expected_type: type[BaseException] = InputError if expected else type(exc)
    with pytest.raises(expected_type) as info:
        dl.extract_tar(archive_path, dest)
    if expected:
        assert str(info.value) == f"{archive_path} {expected}"
    assert not dest.exists()


def _rename_failing_on(monkeypatch: pytest.MonkeyPatch, bad: Callable[[Path, Path], bool]) -> None:
    """Make ``os.rename`` fail with EIO for the calls where ``bad(src, dst)`` holds."""
    real_rename = os.rename

    def rename(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if bad(Path(src), Path(dst)):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)


def test_install_failure_keeps_the_old_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Catches an install error escaping raw or losing the previous extraction."""
    archive_path = _write_tar(tmp_path / "a.tgz", [_member("pkg/new.txt", b"new")])
    dest = _existing_dest(tmp_path)
    _rename_failing_on(monkeypatch, lambda src, _dst: src == dest / "pkg")
    with pytest.raises(OutputError) as info:
        dl.extract_tar(archive_path, dest)
    assert str(info.value) == f"cannot install into {dest}: Input/output error"
    _assert_untouched(dest)


def test_install_failure_removes_the_dest_it_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Catches an empty dest (or staging inside it) left behind by a failed install."""
    archive_path = _write_tar(tmp_path / "a.tgz", [_member("pkg/new.txt", b"new")])
    dest = tmp_path / "out"
    _rename_failing_on(monkeypatch, lambda _src, dst: dst == dest / "pkg")
    with pytest.raises(OutputError, match=r"^cannot install into "):
        dl.extract_tar(archive_path, dest)
    assert not dest.exists()
    assert _names(tmp_path) == ["a.tgz"]


def test_install_failure_midway_puts_every_entry_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Catches entries swapped before a failing one keeping the new copy (old one deleted)."""
    archive_path = _write_tar(tmp_path / "a.tgz", [_member("pkg/new.txt", b"new"),
                                                   _member("keep.txt", b"new keep")])
    dest = _existing_dest(tmp_path)
    _rename_failing_on(monkeypatch, lambda src, _dst: src.name == "keep.txt"
                       and src.parent != dest)
    with pytest.raises(OutputError, match=r"^cannot install into "):
        dl.extract_tar(archive_path, dest)
    _assert_untouched(dest)
    assert (dest / "keep.txt").read_text() == "keep"


def test_an_entry_named_like_a_parked_copy_cannot_swallow_the_old_one(tmp_path: Path) -> None:
    """Catches old copies parked under names an archive can also use (``.replaced-0``): the
    old ``pkg`` was installed as the archive's ``.replaced-0``."""
    archive_path = _write_tar(tmp_path / "a.tgz", [_member("pkg/new.txt", b"new"),
                                                   _member(".replaced-0", b"archive's own")])
    dest = _existing_dest(tmp_path)
    dl.extract_tar(archive_path, dest)
    assert (dest / ".replaced-0").read_bytes() == b"archive's own"
    assert _names(dest / "pkg") == ["new.txt"]
    assert _names(dest) == [".replaced-0", "keep.txt", "pkg"]
