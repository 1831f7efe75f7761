"""The example assets users need, and fetching them idempotently.

An asset that is an archive is downloaded, extracted, and then deleted to
save disk space; a small marker file records what the extraction installed.
The marker, not the archive, is what makes a rerun cheap: when it is valid
and everything it lists still exists, fetching does no network access.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from resnet_ft.data.fetch.archive import extract_tar_entries
from resnet_ft.data.fetch.http import download
from resnet_ft.util.atomic import write_text


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

    def fetch() -> Path:
        return download(
            url,
            archive,
            checksum=asset.sha256,
            progress=progress,
            timeout=timeout,
            retries=retries,
            console=console,
        )

    if not asset.extract:
        return fetch()
    marker = dest_dir / f".{asset.name}.extracted.json"
    done = _read_marker(marker, dest_dir)
    if done is not None:
        return done
    fetch()
    result, tops = extract_tar_entries(archive, dest_dir)
    _write_marker(marker, asset, url, tops, result.relative_to(dest_dir).as_posix())
    with contextlib.suppress(OSError):
        archive.unlink()
    return result


def _write_marker(marker: Path, asset: Asset, url: str, entries: list[str], result: str) -> None:
    """Record what an extraction installed (atomically, so a torn marker never exists)."""
    record = {"asset": asset.name, "url": url, "entries": entries, "result": result}
    write_text(marker, json.dumps(record, indent=2) + "\n")


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
