"""Safe tar extraction: check every member, extract into staging, then swap into place.

Downloaded archives are untrusted input, so nothing is written until every
member has passed a lexical check (no absolute paths, no ``..``, no links
out, no device files), and tarfile's ``"data"`` filter re-checks against the
real filesystem where this Python has it. Extraction goes into a hidden
staging directory beside the destination, and only a complete extraction is
renamed into place: a failed or malicious archive never leaves a
half-populated dataset that looks usable.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath

from resnet_ft.errors import InputError, OutputError, one_line

__all__ = ["extract_tar", "extract_tar_entries"]

# tarfile's "data" filter (PEP 706) exists from 3.11.4 / 3.10.12; it re-checks
# every member against the real filesystem at extraction time, which catches
# link tricks that a purely lexical check of member names cannot.
_HAS_DATA_FILTER = hasattr(tarfile, "data_filter")


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
    path, _ = extract_tar_entries(Path(archive), Path(dest_dir))
    return path


def extract_tar_entries(archive: Path, dest_dir: Path) -> tuple[Path, list[str]]:
    """:func:`extract_tar` that also reports the top-level names it installed.

    The names are what an asset's marker records, so a rerun can tell
    whether the extraction is still in place without opening the archive.
    """
    with _open_tar(archive) as tar:
        try:
            members = tar.getmembers()
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise InputError(f"{archive} is corrupt: {one_line(exc)}") from None
        tops = _check_members(members, archive)
        if not tops:
            raise InputError(f"{archive} contains no files")
        _extract_via_staging(tar, members, archive, dest_dir, tops)
    result = dest_dir / tops[0] if len(tops) == 1 else dest_dir
    return result, tops


def _open_tar(archive: Path) -> tarfile.TarFile:
    """Open any (compressed) tar, mapping every way it can fail to one ``InputError``."""
    try:
        return tarfile.open(archive, "r:*")
    except FileNotFoundError:
        raise InputError(f"archive not found: {archive}") from None
    except OSError as exc:
        raise InputError(f"cannot read {archive}: {exc.strerror or exc}") from None
    except (tarfile.TarError, EOFError, zlib.error):
        raise InputError(f"{archive} is not a readable tar archive") from None


def _extract_via_staging(
    tar: tarfile.TarFile,
    members: list[tarfile.TarInfo],
    archive: Path,
    dest_dir: Path,
    tops: list[str],
) -> None:
    """Extract into a staging directory inside ``dest_dir``, then install ``tops``.

    On any failure the staging directory goes, and so does ``dest_dir`` if
    this call created it and it is still empty: nothing half-done remains.
    """
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
    shutil.rmtree(staging, ignore_errors=True)  # empty: every entry was installed


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
        raise InputError(f"{archive} is corrupt: {one_line(exc)}") from None
    except OSError as exc:
        raise OutputError(f"cannot extract {archive}: {exc.strerror or exc}") from exc


def _install(staging: Path, dest_dir: Path, tops: list[str]) -> None:
    """Rename each extracted top-level entry from ``staging`` into ``dest_dir``, all or none.

    An existing entry is first parked in a fresh hidden directory beside them
    (its own, so no archive entry can share its name) and deleted only once
    every entry is in place; renames within one filesystem are atomic. If a
    rename fails, the entries already swapped go back and the parked ones
    return: ``dest_dir`` is left as it was.
    """
    try:
        parking = Path(tempfile.mkdtemp(prefix=".replaced.", dir=dest_dir))
    except OSError as exc:
        raise _install_error(dest_dir, exc) from exc
    swapped: list[tuple[str, Path | None]] = []
    try:
        for top in tops:
            target = dest_dir / top
            old = None
            if target.exists() or target.is_symlink():
                old = parking / str(len(swapped))
                os.rename(target, old)
            swapped.append((top, old))
            os.rename(staging / top, target)
    except BaseException as exc:
        _restore(staging, dest_dir, swapped)
        if isinstance(exc, OSError):
            raise _install_error(dest_dir, exc) from exc
        raise
    finally:
        shutil.rmtree(parking, ignore_errors=True)


def _install_error(dest_dir: Path, exc: OSError) -> OutputError:
    """The one message for any failure to install into ``dest_dir``."""
    return OutputError(f"cannot install into {dest_dir}: {exc.strerror or exc}")


def _restore(staging: Path, dest_dir: Path, swapped: list[tuple[str, Path | None]]) -> None:
    """Undo :func:`_install`'s renames, newest first (best effort: this runs after a failure).

    An entry whose new copy was not renamed in yet has nothing at its target, so
    only its parked old copy returns.
    """
    for top, old in reversed(swapped):
        target = dest_dir / top
        with contextlib.suppress(OSError):
            if (target.exists() or target.is_symlink()) and not (staging / top).exists():
                os.rename(target, staging / top)
            if old is not None:
                os.rename(old, target)
