"""A killed extraction keeps every completed shard and resumes after it.

A child process fills the store slowly (tests/support/store_worker.py) and is
killed with SIGKILL once two shards are committed; a rerun computes only what
no complete shard holds, and the store then serves exactly what an
uninterrupted extraction computes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from support import store_worker

from resnet_ft.data.preprocessing import Preprocessing
from resnet_ft.data.standin import write_standin_images
from resnet_ft.features.extract import extract

ROWS_PER_SHARD = 8  # 4 images x 2 views: one shard per batch
ROW = 8 * 4  # 8 float32 channels


def _wait_for_shards(cache: Path, count: int, child: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while len(list(cache.rglob("*.shard"))) < count:
        assert child.poll() is None, "the child ended before it could be killed"
        assert time.monotonic() < deadline, "no shard appeared"
        time.sleep(0.05)


def test_killed_extraction_resumes_after_its_last_shard(tmp_path):
    data = write_standin_images(tmp_path / "images", classes=("a", "b"), per_class=12,
                                min_size=36, max_size=44)
    cache = tmp_path / "cache"
    child = subprocess.Popen(
        [sys.executable, str(Path(store_worker.__file__)), str(data), str(cache),
         str(ROWS_PER_SHARD * ROW), "0.5"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for_shards(cache, 2, child, timeout=120)
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    kept = len(list(cache.rglob("*.shard")))
    assert 2 <= kept < 6  # 24 images are 6 shards: the child died on the way

    files = store_worker.images(data)
    backbone = store_worker.tiny_backbone()
    common = {"views": 2, "console": Console(quiet=True), "batch_size": 4}
    resumed = extract(files, backbone, Preprocessing(store_worker.SIZE),
                      cache=store_worker.store(cache), **common)
    assert resumed.extracted == len(files) - 4 * kept  # nothing completed is computed again
    fresh = extract(files, backbone, Preprocessing(store_worker.SIZE), cache=None, **common)
    assert np.array_equal(np.asarray(resumed.values), fresh.values)
