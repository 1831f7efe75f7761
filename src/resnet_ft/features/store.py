"""Pooled backbone features kept on disk, one entry per image and view.

With the backbone frozen, its output for an image never changes, so training
the head for 20 epochs needs only one forward pass per image (two with flip
augmentation: the original and the mirrored view). Entries are keyed by the
backbone's identity, the image file's identity and the preprocessing
(:mod:`resnet_ft.features.identity`); a run with other head hyper-parameters
reuses them. Undecodable files are cached as failures with their reason, so
a rerun neither decodes them again nor forgets why they were skipped.

Every entry is written atomically (temporary file + rename) and checked on
read, so a killed process can never leave an entry that is served torn.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from resnet_ft.data.preprocessing import Preprocessing
from resnet_ft.features.identity import file_identity, key_digest
from resnet_ft.models.architectures import FEATURE_CHANNELS
from resnet_ft.util.atomic import write_bytes


@dataclass
class FeatureTable:
    """Features of a list of files: ``values[i, view]`` and the files that failed."""

    values: np.ndarray  # (N, views, channels) float32
    errors: dict[int, str] = field(default_factory=dict)
    extracted: int = 0  # images that went through the backbone (cache misses)


class FeatureCache:
    """Entries under ``root/<backbone hash>/``: ``<key>.npy`` features, ``<key>.err`` failures."""

    def __init__(self, root: Path, backbone_id: str, preprocessing: Preprocessing) -> None:
        self.base, self.backbone_id = Path(root), backbone_id
        self.root = self.base / backbone_id[:32]
        self.preprocessing = json.dumps(preprocessing.to_dict(), sort_keys=True)

    def _key(self, path: Path, view: int | None) -> Path:
        digest = key_digest(*file_identity(path), self.preprocessing, view)
        return self.root / digest[:2] / digest

    def get(self, path: Path, view: int) -> np.ndarray | None:
        """Cached features of one view, or ``None`` (missing or unreadable entry)."""
        entry = self._key(path, view).with_suffix(".npy")
        try:
            value = np.load(entry, allow_pickle=False)
        except (OSError, ValueError):
            return None
        return value if value.shape == (FEATURE_CHANNELS,) and value.dtype == np.float32 else None

    def put(self, path: Path, view: int, value: np.ndarray) -> None:
        """Store one view's features atomically."""
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(value, dtype=np.float32), allow_pickle=False)
        write_bytes(self._key(path, view).with_suffix(".npy"), buffer.getvalue())

    def get_error(self, path: Path) -> str | None:
        """The recorded decode failure of ``path``, if any."""
        try:
            return self._key(path, None).with_suffix(".err").read_text(encoding="utf-8")
        except OSError:
            return None

    def put_error(self, path: Path, reason: str) -> None:
        """Remember that ``path`` cannot be decoded, and why."""
        write_bytes(self._key(path, None).with_suffix(".err"), reason.encode("utf-8"))
