"""Where resnet-ft keeps what it can recompute: one root for the feature and weights caches."""

from __future__ import annotations

import os
from pathlib import Path


def cache_home() -> Path:
    """``$XDG_CACHE_HOME/resnet-ft`` (``~/.cache/resnet-ft`` when unset or empty)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "resnet-ft"
