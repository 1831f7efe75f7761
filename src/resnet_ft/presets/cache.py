"""A preset's checkpoint fetched once and checked, converted once, and kept in the weights cache.

Layout of the weights cache (``$XDG_CACHE_HOME/resnet-ft/weights``, or
``CACHE_DIR/weights`` with ``--cache-dir``)::

    <slug>/<published file>   the checkpoint (a TF-slim tar's checkpoint, extracted)
    <slug>/backbone.keras     the converted backbone that ``--backbone NAME`` uses
    digests.json              sha256 of first downloads that no publisher pins

A publisher's checksum is checked on every download; where none is published,
the first download's sha256 is printed and recorded, and every later download
must match it (trust on first use). A mismatch leaves nothing in the cache.
``RESNET_FT_MIRROR=BASE`` fetches every preset from ``BASE/<NAME>/<FILE>``, for
sites without internet access. One lock per cache serialises processes, so two
runs asking for the same preset download it once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console

from resnet_ft.conversion.converter import convert
from resnet_ft.data.fetch.archive import extract_tar_entries
from resnet_ft.data.fetch.http import download
from resnet_ft.errors import ChecksumError, InputError, OutputError, ResnetFtError
from resnet_ft.presets.catalog import Preset, find_preset, looks_like_preset
from resnet_ft.util.atomic import write_text
from resnet_ft.util.cache_home import cache_home
from resnet_ft.util.hashing import Checksum, sha256_file

MIRROR_ENV = "RESNET_FT_MIRROR"
BACKBONE_FILE = "backbone.keras"
#: Retries of a failed download (with backoff), as for every other fetch.
RETRIES = 3
DIGESTS_FILE = "digests.json"


def weights_dir(cache_dir: str | Path | None = None) -> Path:
    """``CACHE_DIR/weights``, or ``$XDG_CACHE_HOME/resnet-ft/weights`` (``~/.cache/...``)."""
    return (Path(cache_dir) if cache_dir else cache_home()) / "weights"


def resolve_backbone(spec: str | Path, cache_dir: str | Path | None = None, *,
                     fetch: bool = True, console: Console | None = None) -> Path:
    """The backbone file ``spec`` names: a path as given, or a preset's cached conversion.

    Without ``fetch`` nothing is downloaded or converted: the path is where the
    conversion is or would be (for readers that only compare against it).
    """
    if not looks_like_preset(spec):
        return Path(spec)
    preset = find_preset(str(spec))
    root = weights_dir(cache_dir)
    out = root / preset.slug / BACKBONE_FILE
    if out.is_file() or not fetch:
        return out
    with _cache_lock(root):
        if not out.is_file():
            checkpoint = _fetch_locked(preset, root, console, RETRIES)
            converted = convert(checkpoint, out)
            if converted.family != preset.family or converted.depth != preset.depth:
                out.unlink()
                raise InputError(f"preset {preset.name}: {checkpoint} holds a "
                                 f"{converted.family} ResNet-{converted.depth}, not a "
                                 f"{preset.family} ResNet-{preset.depth}")
    return out


def fetch_checkpoint(preset: Preset, cache_dir: str | Path | None = None, *,
                     console: Console | None = None, retries: int = RETRIES) -> Path:
    """The preset's checkpoint in the cache, downloaded (and checked) if it is not there."""
    root = weights_dir(cache_dir)
    if _present(_checkpoint(root, preset)):
        return _checkpoint(root, preset)
    with _cache_lock(root):
        return _fetch_locked(preset, root, console, retries)


def _checkpoint(root: Path, preset: Preset) -> Path:
    """Where the preset's checkpoint is kept (a tar's checkpoint, or the file itself)."""
    return root / preset.slug / (preset.member or preset.filename)


def _fetch_locked(preset: Preset, root: Path, console: Console | None, retries: int) -> Path:
    """The checkpoint, downloaded if missing; the caller holds the cache lock."""
    checkpoint = _checkpoint(root, preset)
    if not _present(checkpoint):
        console = console if console is not None else Console(stderr=True)
        _download(preset, root, root / preset.slug, console, retries)
    return checkpoint


def cached_size(preset: Preset, cache_dir: str | Path | None = None) -> int | None:
    """Bytes of the preset's download, once it has been downloaded here."""
    entry = _digests(weights_dir(cache_dir)).get(preset.name, {})
    size = entry.get("bytes") if isinstance(entry, dict) else None
    return size if isinstance(size, int) else None


def download_url(preset: Preset) -> str:
    """The preset's URL, or ``$RESNET_FT_MIRROR/<NAME>/<FILE>``."""
    base = os.environ.get(MIRROR_ENV, "").strip()
    return f"{base.rstrip('/')}/{preset.name}/{preset.filename}" if base else preset.url


def _download(preset: Preset, root: Path, folder: Path, console: Console, retries: int) -> None:
    """Download, check, record and (for an archive) extract; nothing is left on failure."""
    digests = _digests(root)
    recorded = digests.get(preset.name, {}).get("sha256")
    expected = preset.checksum or (Checksum("sha256", recorded) if recorded else None)
    url = download_url(preset)
    archive = folder / preset.filename
    created = not folder.exists()
    def record(digest: str | None = None) -> None:
        _record(root, digests, preset, archive, console, digest or sha256_file(archive))

    try:  # an unpinned download hands over the sha256 it computed (computed once)
        download(url, archive, checksum=expected, console=console, retries=retries,
                 on_digest=record if expected is None else None)
        if recorded is None and expected is not None:  # a publisher's pin: record the size
            record()
        if preset.member:
            extract_tar_entries(archive, folder)
            archive.unlink()
            if not _present(folder / preset.member):
                raise InputError(f"preset {preset.name}: {url} holds no {preset.member}")
    except ResnetFtError as exc:
        if created:
            shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(OSError):
            folder.rmdir()  # left empty by this failure: nothing stays
        if isinstance(exc, ChecksumError | InputError | OutputError):
            raise
        raise ResnetFtError(f"{exc}; without internet access, put {preset.filename} in {folder} "
                            f"or set {MIRROR_ENV}=BASE to fetch BASE/{preset.name}/"
                            f"{preset.filename}") from exc


def _record(root: Path, digests: dict[str, dict[str, object]], preset: Preset, archive: Path,
            console: Console, digest: str) -> None:
    """Record a first download's sha256 and size; later downloads must match it."""
    digests[preset.name] = {"sha256": digest, "url": preset.url, "bytes": archive.stat().st_size}
    write_text(root / DIGESTS_FILE, json.dumps(digests, indent=2, sort_keys=True) + "\n")
    if preset.checksum is None:
        console.print(f"{preset.name}: no published checksum; recorded sha256 {digest}, "
                      "which later downloads must match")


def _present(checkpoint: Path) -> bool:
    """A checkpoint file, or a TF-slim prefix whose index is there."""
    return checkpoint.is_file() or checkpoint.with_name(checkpoint.name + ".index").is_file()


def _digests(root: Path) -> dict[str, dict[str, object]]:
    """The recorded first-download digests (an unreadable record is an error, not a reset)."""
    path = root / DIGESTS_FILE
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the recorded checksums {path}: {exc}; "
                         "fix or delete it (deleting trusts the next download)") from exc
    if not isinstance(data, dict):
        raise InputError(f"cannot read the recorded checksums {path}: not a JSON object")
    return data


@contextlib.contextmanager
def _cache_lock(root: Path) -> Iterator[None]:
    """Hold the weights cache's lock (blocking): one process fetches and converts at a time."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        handle = open(root / ".lock", "a", encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        raise OutputError(f"cannot write to {root}: {exc.strerror or exc}") from exc
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
