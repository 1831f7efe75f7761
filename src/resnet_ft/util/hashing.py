"""Content hashes of files: identities for cache keys and checks for downloads."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass

from resnet_ft.errors import InputError

#: Hex length of each digest a publisher pins its files with. md5 only because
#: keras.applications' published weights are pinned with it in Keras' own source.
DIGEST_LENGTHS = {"sha256": 64, "md5": 32}


@dataclass(frozen=True)
class Checksum:
    """An expected file digest: ``algorithm`` (sha256 or md5) and its lower-case hex."""

    algorithm: str
    hexdigest: str

    def __post_init__(self) -> None:
        length = DIGEST_LENGTHS.get(self.algorithm)
        if length is None:
            raise InputError(f"unknown checksum algorithm {self.algorithm!r}; "
                             f"expected one of {', '.join(DIGEST_LENGTHS)}")
        value = self.hexdigest.strip().lower()
        if not re.fullmatch(f"[0-9a-f]{{{length}}}", value):
            raise InputError(f"not a {self.algorithm} hex digest: {self.hexdigest!r}")
        object.__setattr__(self, "hexdigest", value)

    def of_file(self, path: str | os.PathLike[str]) -> str:
        """The same kind of digest, computed over ``path``."""
        return file_digest(path, self.algorithm)

    def matches(self, path: str | os.PathLike[str]) -> bool:
        """Whether ``path``'s content has this digest."""
        return self.of_file(path) == self.hexdigest

    def __str__(self) -> str:
        return f"{self.algorithm} {self.hexdigest}"


def file_digest(path: str | os.PathLike[str], algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks so that large files need little memory."""
    digest = hashlib.new(algorithm)
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return digest.hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file."""
    return file_digest(path, "sha256")


def sha256_text(*parts: str) -> str:
    """Hex sha256 of strings joined by NUL (which no path or JSON text contains)."""
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()
