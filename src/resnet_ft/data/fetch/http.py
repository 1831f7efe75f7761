"""Retried, verified downloads: the loop around single resumable attempts.

Bytes go to ``<dest>.part`` and survive between attempts and between runs;
each attempt (:func:`.resume.fetch_into`) asks only for what is missing.
Transient failures are retried with exponential backoff, and ``dest`` itself
only appears, by an atomic rename, once the body is complete and its checksum
matches (when one is pinned), so a file under its real name is always whole.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

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

from resnet_ft.data.fetch.resume import TransientError, fetch_into
from resnet_ft.errors import ChecksumError, InputError, OutputError, ResnetFtError
from resnet_ft.util.hashing import Checksum, file_digest

__all__ = ["download"]

log = logging.getLogger(__name__)

def download(
    url: str,
    dest: str | os.PathLike[str],
    *,
    checksum: Checksum | str | None = None,
    progress: bool = True,
    timeout: float = 60,
    retries: int = 3,
    backoff: float = 1.0,
    console: Console | None = None,
    on_digest: Callable[[str], None] | None = None,
) -> Path:
    """Download ``url`` to ``dest``, resuming and retrying, and return ``dest``.

    Bytes go to ``dest.part`` first; an existing ``.part`` is resumed with an
    HTTP ``Range`` request (a server that ignores it and answers 200 makes the
    download restart from byte 0). Connection errors, timeouts, truncated
    bodies and 5xx/429 answers are retried ``retries`` times with exponential
    backoff (``backoff``, 2×``backoff``, ...), each retry resuming where the
    last one stopped. Only a complete file whose checksum matches (when given;
    a bare string is a sha256 hex digest) is renamed onto ``dest``, so ``dest``
    existing means it is whole.

    If ``dest`` already exists it is kept without any network access when
    ``checksum`` is ``None`` or matches; a mismatching ``dest`` is downloaded
    again. With ``checksum=None`` the computed sha256 is printed so it can be
    pinned, or handed to ``on_digest`` (a caller that records it: trust on first
    use) instead. ``console`` receives the progress bar and messages (stderr by
    default); pass one writing to a buffer to capture or silence them.
    """
    dest = Path(dest)
    expected = Checksum("sha256", checksum) if isinstance(checksum, str) else checksum
    if retries < 0:
        raise InputError(f"retries must be >= 0, got {retries}")
    console = console if console is not None else Console(stderr=True)
    if _already_present(dest, expected, console):
        return dest

    part = _part_path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {dest.parent}: {exc.strerror or exc}") from exc
    with _progress_bar(console, enabled=progress) as bar:
        task = bar.add_task(dest.name, total=None)
        _fetch_with_retries(
            url, part, timeout=timeout, retries=retries, backoff=backoff, bar=bar, task=task
        )
    _verify_and_install(url, part, dest, expected, console, on_digest)
    return dest


def _already_present(dest: Path, expected: Checksum | None, console: Console) -> bool:
    """Whether ``dest`` can be kept as is: present, and matching ``expected`` if pinned."""
    if not dest.is_file():
        return False
    if expected is None:
        log.info("%s already present; not downloading", dest)
        return True
    if expected.matches(dest):
        log.info("%s already present with the expected %s", dest, expected.algorithm)
        return True
    console.print(f"{dest} exists but its {expected.algorithm} differs; downloading it again")
    return False


def _fetch_with_retries(
    url: str,
    part: Path,
    *,
    timeout: float,
    retries: int,
    backoff: float,
    bar: Progress,
    task: TaskID,
) -> None:
    """Fill ``part`` with the whole body, retrying transient failures with backoff."""
    last_error: TransientError | None = None
    for attempt in range(retries + 1):
        if attempt:
            delay = backoff * 2 ** (attempt - 1)
            log.info("retrying %s in %.1fs after: %s", url, delay, last_error)
            time.sleep(delay)
        try:
            fetch_into(url, part, timeout=timeout, bar=bar, task=task)
            return
        except TransientError as exc:
            last_error = exc
    kept = f"; rerun to resume from {part}" if part.exists() else ""
    raise ResnetFtError(
        f"cannot download {url}: {last_error} (gave up after {retries + 1} attempts){kept}"
    )


def _verify_and_install(
    url: str, part: Path, dest: Path, expected: Checksum | None, console: Console,
    on_digest: Callable[[str], None] | None,
) -> None:
    """Check the finished ``part`` against ``expected`` and rename it onto ``dest``.

    A mismatching ``part`` is deleted: resuming it could never fix it.
    """
    found = file_digest(part, expected.algorithm if expected else "sha256")
    if expected is not None and found != expected.hexdigest:
        part.unlink(missing_ok=True)
        raise ChecksumError(
            f"checksum mismatch for {url}: expected {expected}, found {found}"
        )
    try:
        os.replace(part, dest)
    except OSError as exc:
        raise OutputError(f"cannot write {dest}: {exc.strerror or exc}") from exc
    if expected is None and on_digest is not None:
        on_digest(found)
    elif expected is None:
        # No pinned checksum: show the digest so the user can pin it next time.
        log.info("sha256 %s  %s", found, dest)
        console.print(f"sha256 {found}  {dest.name} (not verified: no checksum pinned for {url})")


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
