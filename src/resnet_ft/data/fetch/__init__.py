"""Fetch the example assets: resumable, verified downloads and safe tar extraction.

The two assets users need (TensorFlow's ``flower_photos`` and the TF-slim
``resnet_v1_101`` checkpoint) are a few hundred megabytes each and come from
hosts that occasionally drop connections, so downloads resume from a
``.part`` file instead of starting over, and the final file only appears
under its real name once it is complete (and verified, when a checksum is
known). Archives are extracted into a staging directory first, so a failed or
malicious archive never leaves a half-populated dataset that looks usable.

- :mod:`.http`: ``download``: retries with backoff, checksum, atomic install.
- :mod:`.resume`: one attempt that resumes a ``.part`` file with ``Range``.
- :mod:`.archive`: safe tar extraction via a staging directory.
- :mod:`.assets`: the asset registry and idempotent fetching.

Only the standard library talks HTTP here (``urllib.request``); ``rich`` draws
the progress bar. Nothing here imports TensorFlow, so fetching data stays fast
and works before the heavy dependencies are importable.
"""

from __future__ import annotations

from resnet_ft.data.fetch.archive import extract_tar
from resnet_ft.data.fetch.assets import (
    ASSETS,
    FLOWER_PHOTOS,
    RESNET_V1_101_SLIM,
    Asset,
    asset_url,
    fetch_asset,
    fetch_flowers,
)
from resnet_ft.data.fetch.http import download
from resnet_ft.util.hashing import sha256_file

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
