"""Resumable, verified downloads and safe tar extraction for the example assets.

The two assets users need (TensorFlow's ``flower_photos`` and the TF-slim
``resnet_v1_101`` checkpoint) are a few hundred megabytes each and come from
hosts that occasionally drop connections, so downloads resume from a
``.part`` file instead of starting over, and the final file only appears
under its real name once it is complete (and verified, when a checksum is
known). Archives are extracted into a staging directory first, so a failed or
malicious archive never leaves a half-populated dataset that looks usable.

Only the standard library talks HTTP here (``urllib.request``); ``rich`` draws
the progress bar. Nothing here imports TensorFlow, so fetching data stays fast
and works before the heavy dependencies are importable.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import logging
import os
import posixpath
import re
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from resnet_ft.atomic import write_text
from resnet_ft.errors import InputError, OutputError, ResnetFtError

__all__ = [
    "ASSETS",
    "FLOWER_PHOTOS",
    "RESNET_V1_101_SLIM",
    "Asset",
    "asset_url",
    "download",
    "extract_tar",
    "fetch_asset",
    "fetch_flowers",
    "sha256_file",
]

log = logging.getLogger(__name__)

_CHUNK = 1 << 16
_USER_AGENT = "resnet-ft (python-urllib)"
# Statuses that usually mean "try again later" rather than "this will never work".
_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
# tarfile's "data" filter (PEP 706) exists from 3.11.4 / 3.10.12; it re-checks
# every member against the real filesystem at extraction time, which catches
# link tricks that a purely lexical check of member names cannot.
_HAS_DATA_FILTER = hasattr(tarfile, "data_filter")


@dataclass(frozen=True)
class Asset:
    """A downloadable file and how to install it.

    ``sha256`` is ``None`` when no checksum could be verified when this code
    was written (the hosts publish none); ``download`` then prints the digest
    it computed so users can pin it. A value is never guessed.
    """

    name: str
    url: str
    sha256: str | None
    filename: str
    extract: bool


FLOWER_PHOTOS = Asset(
    name="flower_photos",
    url="https://storage.googleapis.com/download.tensorflow.org/example_images/flower_photos.tgz",
    sha256=None,
    filename="flower_photos.tgz",
    extract=True,
)

# The official TF-slim release: a tarball holding the TF1 V1-format checkpoint
# ``resnet_v1_101.ckpt`` (whatever else it holds is extracted as-is).
RESNET_V1_101_SLIM = Asset(
    name="resnet_v1_101_slim",
    url="http://download.tensorflow.org/models/resnet_v1_101_2016_08_28.tar.gz",
    sha256=None,
    filename="resnet_v1_101_2016_08_28.tar.gz",
    extract=True,
)

ASSETS: dict[str, Asset] = {asset.name: asset for asset in (FLOWER_PHOTOS, RESNET_V1_101_SLIM)}


class _TransientError(Exception):
    """A failure worth retrying; the next attempt resumes from the ``.part`` file."""


# --------------------------------------------------------------------------- download


def download(
    url: str,
    dest: str | os.PathLike[str],
    *,
    sha256: str | None = None,
    progress: bool = True,
    timeout: float = 60,
    retries: int = 3,
    backoff: float = 1.0,
    console: Console | None = None,
) -> Path:
    """Download ``url`` to ``dest``, resuming and retrying, and return ``dest``.

    Bytes go to ``dest.part`` first; an existing ``.part`` is resumed with an
    HTTP ``Range`` request (a server that ignores it and answers 200 makes the
    download restart from byte 0). Connection errors, timeouts, truncated
    bodies and 5xx/429 answers are retried ``retries`` times with exponential
    backoff (``backoff``, 2×``backoff``, ...), each retry resuming where the
    last one stopped. Only a complete file whose sha256 matches (when given)
    is renamed onto ``dest``, so ``dest`` existing means it is whole.

    If ``dest`` already exists it is kept without any network access when
    ``sha256`` is ``None`` or matches; a mismatching ``dest`` is downloaded
    again. With ``sha256=None`` the computed digest is printed so it can be
    pinned. ``console`` receives the progress bar and messages (stderr by
    default); pass one writing to a buffer to capture or silence them.
    """
    dest = Path(dest)
    expected = _normalise_sha256(sha256)
    if retries < 0:
        raise InputError(f"retries must be >= 0, got {retries}")
    console = console if console is not None else Console(stderr=True)

    if dest.is_file():
        if expected is None:
            log.info("%s already present; not downloading", dest)
            return dest
        if sha256_file(dest) == expected:
            log.info("%s already present with the expected sha256", dest)
            return dest
        console.print(f"{dest} exists but its sha256 differs; downloading it again")

    part = _part_path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {dest.parent}: {exc.strerror or exc}") from exc

    with _progress_bar(console, enabled=progress) as bar:
        task = bar.add_task(dest.name, total=None)
        last_error: _TransientError | None = None
        for attempt in range(retries + 1):
            if attempt:
                delay = backoff * 2 ** (attempt - 1)
                log.info("retrying %s in %.1fs after: %s", url, delay, last_error)
                time.sleep(delay)
            try:
                _fetch_into(url, part, timeout=timeout, bar=bar, task=task)
                break
            except _TransientError as exc:
                last_error = exc
        else:
            kept = f"; rerun to resume from {part}" if part.exists() else ""
            raise ResnetFtError(
                f"cannot download {url}: {last_error} (gave up after {retries + 1} attempts){kept}"
            )

    found = sha256_file(part)
    if expected is not None and found != expected:
        part.unlink(missing_ok=True)
        raise ResnetFtError(
            f"checksum mismatch for {url}: expected sha256 {expected}, found {found}"
        )
    try:
        os.replace(part, dest)
    except OSError as exc:
        raise OutputError(f"cannot write {dest}: {exc.strerror or exc}") from exc
    if expected is None:
        # No pinned checksum: show the digest so the user can pin it next time.
        log.info("sha256 %s  %s", found, dest)
        console.print(f"sha256 {found}  {dest.name} (not verified: no checksum pinned for {url})")
    return dest


def _fetch_into(url: str, part: Path, *, timeout: float, bar: Progress, task: TaskID) -> None:
    """One attempt: append the rest of ``url`` to ``part`` or raise ``_TransientError``.

    Returns only when ``part`` holds the whole body (as far as the server's
    headers let us tell). Permanent failures raise ``ResnetFtError`` directly
    so they are not retried.
    """
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": _USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
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
            raise _TransientError("server rejected the resume offset; restarting") from None
        if status in _RETRY_STATUSES:
            raise _TransientError(f"HTTP {status} {reason}") from None
        raise ResnetFtError(f"cannot download {url}: HTTP {status} {reason}") from None
    except urllib.error.URLError as exc:
        if not isinstance(exc.reason, OSError):  # "unknown url type", "no host given"
            raise InputError(f"invalid download URL {url!r}: {exc.reason}") from None
        raise _TransientError(_describe(exc)) from exc
    except ValueError as exc:  # malformed URL
        raise InputError(f"invalid download URL {url!r}: {exc}") from None
    except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts, resets
        raise _TransientError(_describe(exc)) from exc

    with response:
        if response.status == 206:
            start, total = _parse_content_range(response.headers.get("Content-Range"))
            if start != offset:
                part.unlink(missing_ok=True)
                raise _TransientError(f"server resumed at byte {start}, not {offset}; restarting")
            mode = "ab"
        else:
            # A 200 answer is the whole file even if we asked for a range.
            offset, mode = 0, "wb"
            total = _int_or_none(response.headers.get("Content-Length"))
        bar.update(task, total=total, completed=offset)
        received = offset
        try:
            handle = open(part, mode)  # noqa: SIM115 - closed by the with-block below
        except OSError as exc:
            raise OutputError(f"cannot write {part}: {exc.strerror or exc}") from exc
        with handle:
            while True:
                try:
                    chunk = response.read(_CHUNK)
                except (OSError, http.client.HTTPException) as exc:
                    raise _TransientError(_describe(exc)) from exc
                if not chunk:
                    break
                try:
                    handle.write(chunk)
                except OSError as exc:
                    raise OutputError(f"cannot write {part}: {exc.strerror or exc}") from exc
                received += len(chunk)
                bar.update(task, completed=received)
            try:
                handle.flush()
                os.fsync(handle.fileno())
            except OSError as exc:
                raise OutputError(f"cannot write {part}: {exc.strerror or exc}") from exc
    # http.client returns b"" (not an error) when a Content-Length body is cut
    # short, so a dropped connection is only visible by counting.
    if total is not None and received != total:
        raise _TransientError(f"connection closed after {received} of {total} bytes")


def _part_path(dest: Path) -> Path:
    """Where the in-progress bytes of ``dest`` live (kept between runs to resume)."""
    return dest.with_name(dest.name + ".part")


def _progress_bar(console: Console, *, enabled: bool) -> Progress:
    """A bytes/speed/ETA bar; disabled bars cost nothing and print nothing."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not enabled,
    )


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


def _describe(exc: BaseException) -> str:
    """A one-line reason for a network failure (URLError hides it in ``.reason``)."""
    cause: object = exc
    if isinstance(exc, urllib.error.URLError) and exc.reason is not None:
        cause = exc.reason
    if isinstance(cause, TimeoutError):
        return "timed out"
    text = str(cause).strip()
    return text.splitlines()[0] if text else type(cause).__name__


def _normalise_sha256(value: str | None) -> str | None:
    """Lower-case a hex digest, rejecting anything that cannot be a sha256."""
    if value is None:
        return None
    digest = value.strip().lower()
    if not _SHA256_RE.fullmatch(digest):
        raise InputError(f"not a sha256 hex digest: {value!r}")
    return digest


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in chunks so large archives need little memory."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return digest.hexdigest()


# --------------------------------------------------------------------------- extraction


def extract_tar(archive: str | os.PathLike[str], dest_dir: str | os.PathLike[str]) -> Path:
    """Safely extract ``archive`` into ``dest_dir`` and return what it produced.

    Every member is checked before anything is written: absolute paths,
    ``..`` components, links that point outside, and device/FIFO members are
    rejected with ``InputError``. Extraction then happens in a hidden staging
    directory inside ``dest_dir`` (same filesystem, so the final renames are
    atomic) using tarfile's ``"data"`` filter where this Python has it; only
    when everything is extracted are the top-level entries renamed into
    place, replacing older copies. A failure leaves ``dest_dir`` as it was.

    Returns ``dest_dir / <entry>`` when the archive has a single top-level
    entry (``flower_photos/``, ``resnet_v1_101.ckpt``), else ``dest_dir``.
    """
    path, _ = _extract_tar(Path(archive), Path(dest_dir))
    return path


def _extract_tar(archive: Path, dest_dir: Path) -> tuple[Path, list[str]]:
    """``extract_tar`` that also reports the top-level names it installed."""
    try:
        tar = tarfile.open(archive, "r:*")  # noqa: SIM115 - closed by the with-block below
    except FileNotFoundError:
        raise InputError(f"archive not found: {archive}") from None
    except OSError as exc:
        raise InputError(f"cannot read {archive}: {exc.strerror or exc}") from None
    except (tarfile.TarError, EOFError, zlib.error):
        raise InputError(f"{archive} is not a readable tar archive") from None
    with tar:
        try:
            members = tar.getmembers()
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise InputError(f"{archive} is corrupt: {_describe(exc)}") from None
        tops = _check_members(members, archive)
        if not tops:
            raise InputError(f"{archive} contains no files")

        created_dest = not dest_dir.exists()
        try:
            dest_dir.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{archive.name}.", dir=dest_dir))
        except OSError as exc:
            raise OutputError(f"cannot create {dest_dir}: {exc.strerror or exc}") from exc
        try:
            _extract_members(tar, members, staging, archive)
            _install(staging, dest_dir, tops)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            if created_dest:
                with contextlib.suppress(OSError):
                    dest_dir.rmdir()  # only succeeds if we left it empty
            raise
        shutil.rmtree(staging, ignore_errors=True)  # now holds only replaced old copies
    result = dest_dir / tops[0] if len(tops) == 1 else dest_dir
    return result, tops


def _check_members(members: Sequence[tarfile.TarInfo], archive: Path) -> list[str]:
    """Reject unsafe members; return the archive's top-level names in order.

    This is a lexical check that works on every Python. Links are only
    accepted when the ``"data"`` filter is available, because link chains can
    escape in ways only a check against the real filesystem catches.
    """
    tops: dict[str, None] = {}
    for member in members:
        name = member.name

        def reject(why: str, name: str = name) -> InputError:
            return InputError(f"refusing to extract {archive}: member {name!r} {why}")

        if _is_absolute(name):
            raise reject("has an absolute path")
        parts = [p for p in PurePosixPath(name).parts if p != "."]
        if ".." in parts:
            raise reject("escapes the destination ('..')")
        if member.issym() or member.islnk():
            if not _HAS_DATA_FILTER:
                raise reject("is a link (needs Python >= 3.10.12 / 3.11.4 to extract safely)")
            link = member.linkname
            if _is_absolute(link):
                raise reject(f"links to an absolute path {link!r}")
            base = posixpath.dirname(name) if member.issym() else ""
            target = posixpath.normpath(posixpath.join(base, link))
            if target == ".." or target.startswith("../"):
                raise reject(f"links outside the destination ({link!r})")
        elif not (member.isfile() or member.isdir()):
            raise reject("is a device, FIFO or other special file")
        if parts:
            tops.setdefault(parts[0], None)
    return list(tops)


def _is_absolute(name: str) -> bool:
    """True for POSIX-absolute names and Windows drive/UNC/backslash-rooted ones."""
    return name.startswith(("/", "\\")) or bool(PureWindowsPath(name).drive)


def _extract_members(
    tar: tarfile.TarFile, members: list[tarfile.TarInfo], staging: Path, archive: Path
) -> None:
    """Extract already-checked members into ``staging``, mapping errors to one line."""
    try:
        if _HAS_DATA_FILTER:
            tar.extractall(staging, members=members, filter="data")
        else:  # pragma: no cover - old Pythons; links were rejected by _check_members
            tar.extractall(staging, members=members)
    except tarfile.TarError as exc:  # includes the data filter's FilterError
        raise InputError(f"refusing to extract {archive}: {exc}") from None
    except (EOFError, zlib.error) as exc:
        raise InputError(f"{archive} is corrupt: {_describe(exc)}") from None
    except OSError as exc:
        raise OutputError(f"cannot extract {archive}: {exc.strerror or exc}") from exc


def _install(staging: Path, dest_dir: Path, tops: list[str]) -> None:
    """Rename each extracted top-level entry from ``staging`` into ``dest_dir``.

    An existing entry is first moved into ``staging`` (deleted afterwards), so
    each entry swaps in whole; renames within one directory tree are atomic.
    """
    try:
        for index, top in enumerate(tops):
            source = staging / top
            target = dest_dir / top
            if target.exists() or target.is_symlink():
                os.rename(target, staging / f".replaced-{index}")
            os.rename(source, target)
    except OSError as exc:
        raise OutputError(f"cannot install into {dest_dir}: {exc.strerror or exc}") from exc


# --------------------------------------------------------------------------- assets


def asset_url(asset: Asset, base_url: str | None = None) -> str:
    """The asset's URL, or ``base_url/filename`` to use a mirror (or a test server)."""
    if base_url is None:
        return asset.url
    return f"{base_url.rstrip('/')}/{asset.filename}"


def fetch_asset(
    asset: Asset,
    dest_dir: str | os.PathLike[str],
    *,
    base_url: str | None = None,
    console: Console | None = None,
    progress: bool = True,
    timeout: float = 60,
    retries: int = 3,
) -> Path:
    """Download (and extract, if ``asset.extract``) one asset into ``dest_dir``.

    Extracted assets leave a small marker file recording what was installed;
    when it is present and those paths exist the call returns at once with
    no network access. The archive is deleted after a successful extraction
    to save disk space (the marker is what makes reruns cheap); if
    extraction fails the archive is kept so a rerun does not download again.
    """
    dest_dir = Path(dest_dir)
    url = asset_url(asset, base_url)
    archive = dest_dir / asset.filename
    if not asset.extract:
        return download(
            url,
            archive,
            sha256=asset.sha256,
            progress=progress,
            timeout=timeout,
            retries=retries,
            console=console,
        )

    marker = dest_dir / f".{asset.name}.extracted.json"
    done = _read_marker(marker, dest_dir)
    if done is not None:
        return done
    download(
        url,
        archive,
        sha256=asset.sha256,
        progress=progress,
        timeout=timeout,
        retries=retries,
        console=console,
    )
    result, tops = _extract_tar(archive, dest_dir)
    record = {
        "asset": asset.name,
        "url": url,
        "entries": tops,
        "result": result.relative_to(dest_dir).as_posix(),
    }
    write_text(marker, json.dumps(record, indent=2) + "\n")
    with contextlib.suppress(OSError):
        archive.unlink()
    return result


def _read_marker(marker: Path, dest_dir: Path) -> Path | None:
    """The recorded result path if ``marker`` is valid and everything it lists exists."""
    try:
        record = json.loads(marker.read_text(encoding="utf-8"))
        entries = record["entries"]
        result = dest_dir / record["result"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(entries, list) or not entries:
        return None
    if all(isinstance(e, str) and (dest_dir / e).exists() for e in entries) and result.exists():
        return result
    return None


def fetch_flowers(
    dest_dir: str | os.PathLike[str],
    *,
    base_url: str | None = None,
    console: Console | None = None,
    progress: bool = True,
    timeout: float = 60,
    retries: int = 3,
) -> dict[str, Path]:
    """Fetch ``flower_photos`` and the slim ResNet-101 checkpoint into ``dest_dir``.

    Returns ``{"flower_photos": dest_dir/flower_photos, "resnet_v1_101_slim":
    dest_dir/resnet_v1_101.ckpt}`` (the latter is ``dest_dir`` itself should
    the tarball ever hold several top-level files). ``base_url`` replaces the
    hosts: each asset is fetched from ``base_url/<filename>``. Idempotent: a
    second call with everything in place does no network access.
    """
    return {
        asset.name: fetch_asset(
            asset,
            dest_dir,
            base_url=base_url,
            console=console,
            progress=progress,
            timeout=timeout,
            retries=retries,
        )
        for asset in (FLOWER_PHOTOS, RESNET_V1_101_SLIM)
    }
