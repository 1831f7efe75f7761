"""Identities for cache keys: what makes a cached feature valid for a file, model and setting.

A cached array may be served only for the same image bytes, the same
backbone weights, the same preprocessing and the same compute precision.
Image files are identified by (absolute path, size, mtime in ns) — checking
that costs one ``stat``, where hashing a million photos would cost a read of
every byte; the backbone, read once per run, is identified by its content hash.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from resnet_ft.util.cache_home import cache_home
from resnet_ft.util.hashing import sha256_file


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/resnet-ft/features`` (``~/.cache/...`` by default)."""
    return cache_home() / "features"


def file_identity(path: Path) -> list[object]:
    """``[absolute path, size, mtime_ns]``: changes whenever the file is replaced or edited."""
    stat = path.stat()
    return [str(path.resolve()), stat.st_size, stat.st_mtime_ns]


def key_digest(*parts: object) -> str:
    """sha256 of the JSON form of ``parts``: a cache key from identities and settings."""
    return hashlib.sha256(json.dumps(list(parts)).encode("utf-8")).hexdigest()


def backbone_identity(path: str | Path, precision: str) -> str:
    """The backbone file's content hash, salted by the precision features are computed in."""
    return salted(sha256_file(path), precision)


def salted(digest: str, precision: str) -> str:
    """A backbone's content hash made the key of its features in ``precision``.

    Features computed in another precision are other features: another key.
    float32 keeps the bare file hash, so existing caches stay valid.
    """
    if precision == "float32":
        return digest
    return hashlib.sha256(f"{digest}:{precision}".encode()).hexdigest()
