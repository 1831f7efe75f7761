"""One resumable HTTP attempt: append the rest of a URL's body to a ``.part`` file.

Each attempt looks at how many bytes ``.part`` already holds and asks only
for the rest with ``Range: bytes=N-``, so a dropped connection costs only
what had not arrived yet. Servers answer in several ways (206 from the right
offset, 200 with the whole body, 416 when there is nothing left), and every
one of them is handled here so that :func:`fetch_into` either leaves a whole
body in ``.part`` or says whether trying again could help.

Failures fall in two kinds. Transient ones (connection errors, timeouts,
truncated bodies, 5xx/429) raise :class:`TransientError`, which the caller
retries; permanent ones (404, a malformed URL, an unwritable disk) raise the
user-facing error at once, because retrying them only wastes time.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import urllib.error
import urllib.request
import urllib.response
from pathlib import Path
from typing import BinaryIO

from rich.progress import Progress, TaskID

from resnet_ft.errors import InputError, OutputError, ResnetFtError, one_line

__all__ = ["TransientError", "fetch_into"]

_CHUNK = 1 << 16
_USER_AGENT = "resnet-ft (python-urllib)"
# Statuses that usually mean "try again later" rather than "this will never work".
_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})

# What ``urlopen`` answers: HTTPResponse for http(s), addinfourl for file: and ftp:.
_Response = http.client.HTTPResponse | urllib.response.addinfourl


class TransientError(Exception):
    """A failure worth retrying; the next attempt resumes from the ``.part`` file."""


def fetch_into(url: str, part: Path, *, timeout: float, bar: Progress, task: TaskID) -> None:
    """One attempt: append the rest of ``url`` to ``part`` or raise ``TransientError``.

    Returns only when ``part`` holds the whole body (as far as the server's
    headers let us tell). Permanent failures raise ``ResnetFtError`` directly
    so they are not retried.
    """
    offset = part.stat().st_size if part.exists() else 0
    try:
        response = _open(url, offset, timeout=timeout)
    except urllib.error.HTTPError as exc:
        _handle_http_error(exc, url, part, offset, bar=bar, task=task)
        return  # the 416 case: .part was already complete
    with response:
        offset, total, mode = _resume_point(response, part, offset)
        bar.update(task, total=total, completed=offset)
        received = _write_body(response, part, mode, offset, bar=bar, task=task)
    # http.client returns b"" (not an error) when a Content-Length body is cut
    # short, so a dropped connection is only visible by counting.
    if total is not None and received != total:
        raise TransientError(f"connection closed after {received} of {total} bytes")


def _open(url: str, offset: int, *, timeout: float) -> _Response:
    """Send the GET (with ``Range`` when resuming); ``HTTPError`` is left to the caller.

    Network failures become ``TransientError``; URLs that can never work
    become ``InputError`` so they are not retried.
    """
    headers = {"User-Agent": _USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        # Request() itself parses the URL: "example.com/x" (no scheme) fails here
        request = urllib.request.Request(url, headers=headers)
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError:
        raise
    except urllib.error.URLError as exc:
        if not isinstance(exc.reason, OSError):  # "unknown url type", "no host given"
            raise InputError(f"invalid download URL {url!r}: {exc.reason}") from None
        raise TransientError(one_line(exc)) from exc
    except (ValueError, http.client.InvalidURL) as exc:  # malformed: bad port, spaces, IPv6
        raise InputError(f"invalid download URL {url!r}: {exc}") from None
    except (OSError, http.client.HTTPException) as exc:  # timeouts, resets
        raise TransientError(one_line(exc)) from exc


def _handle_http_error(
    exc: urllib.error.HTTPError,
    url: str,
    part: Path,
    offset: int,
    *,
    bar: Progress,
    task: TaskID,
) -> None:
    """Classify an HTTP error status; returns only when ``part`` turns out complete.

    Call from inside the ``except`` block that caught ``exc``.
    """
    with contextlib.closing(exc):
        status, reason = exc.code, exc.reason
        content_range = exc.headers.get("Content-Range") if exc.headers else None
    if status == 416 and offset:
        # The resume offset is at or past the end: either .part is already
        # complete, or it is longer than the file and must be discarded.
        _, total = _parse_content_range(content_range)
        if total == offset:
            bar.update(task, total=total, completed=total)
            return
        part.unlink(missing_ok=True)
        raise TransientError("server rejected the resume offset; restarting") from None
    if status in _RETRY_STATUSES:
        raise TransientError(f"HTTP {status} {reason}") from None
    raise ResnetFtError(f"cannot download {url}: HTTP {status} {reason}") from None


def _resume_point(response: _Response, part: Path, offset: int) -> tuple[int, int | None, str]:
    """Where this response's bytes start, the full size if known, and how to open ``part``.

    A 206 must start exactly at ``offset`` (else ``part`` is discarded and the
    attempt retried); a 200 answer is the whole file even if we asked for a
    range, so ``part`` is rewritten from byte 0.
    """
    if response.status == 206:
        start, total = _parse_content_range(response.headers.get("Content-Range"))
        if start != offset:
            part.unlink(missing_ok=True)
            raise TransientError(f"server resumed at byte {start}, not {offset}; restarting")
        return offset, total, "ab"
    return 0, _int_or_none(response.headers.get("Content-Length")), "wb"


def _write_body(
    response: _Response,
    part: Path,
    mode: str,
    offset: int,
    *,
    bar: Progress,
    task: TaskID,
) -> int:
    """Copy the body into ``part`` (fsynced) and return ``part``'s size in bytes.

    A read failure is transient (what arrived stays in ``part`` for the next
    attempt); a write failure is the disk's fault and is not retried. The
    whole ``with`` is inside the ``try`` because closing flushes the buffer's
    tail: a full disk may first show there.
    """
    try:
        with open(part, mode) as handle:
            received = _copy(response, handle, offset, bar=bar, task=task)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        raise _write_error(part, exc) from exc
    return received


def _copy(response: _Response, handle: BinaryIO, offset: int, *, bar: Progress,
          task: TaskID) -> int:
    """Append the body to ``handle``; a failed read is transient, a failed write is not."""
    received = offset
    while True:
        try:
            chunk = response.read(_CHUNK)
        except (OSError, http.client.HTTPException) as exc:
            raise TransientError(one_line(exc)) from exc
        if not chunk:
            return received
        handle.write(chunk)
        received += len(chunk)
        bar.update(task, completed=received)


def _write_error(part: Path, exc: OSError) -> OutputError:
    """The one message for any failure to write ``part``."""
    return OutputError(f"cannot write {part}: {exc.strerror or exc}")


def _parse_content_range(value: str | None) -> tuple[int | None, int | None]:
    """``bytes START-END/TOTAL`` or ``bytes */TOTAL`` → (START, TOTAL); None where unknown."""
    if not value:
        return None, None
    match = re.fullmatch(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*", value)
    if match is None:
        return None, None
    start = int(match.group(1)) if match.group(1) is not None else None
    return start, _int_or_none(match.group(2))


def _int_or_none(value: str | None) -> int | None:
    """Parse a header integer; missing or malformed headers mean "unknown"."""
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
