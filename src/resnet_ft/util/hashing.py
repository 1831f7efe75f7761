"""Content hashes of files: identities for cache keys and checks for downloads."""

from __future__ import annotations

import hashlib
import os

from resnet_ft.errors import InputError


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks so that large files need little memory."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return digest.hexdigest()


def sha256_text(*parts: str) -> str:
    """Hex sha256 of strings joined by NUL (which no path or JSON text contains)."""
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()
