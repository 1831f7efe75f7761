"""Shard checksums: the hash chosen by speed, and what verifying costs a warm ``train``.

1. Hash throughput on one 32 MB shard's worth of bytes, in one process, alternating
   rounds: xxh3-128 (shipped), crc32c (google-crc32c), blake3, sha256.
2. Verification inside a warm ``train`` of the shared 750-photo sample: a cold run fills
   the store; then warm runs (whole processes) alternate with a fresh process that opens
   the store and verifies every shard exactly as a run does (index checksums at open,
   values before the first row). The figure is verification time / warm run time.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from common import OUT, dataset, machine, parser, save, stats

HASHES = ("xxh3_128", "crc32c", "blake3", "sha256")


def hash_speeds(rounds: int, size: int = 32 << 20) -> dict[str, dict[str, float]]:
    """GB/s of each hash over the same bytes, rounds alternating."""
    import hashlib

    import blake3
    import google_crc32c
    import xxhash

    data = np.random.default_rng(0).integers(0, 256, size, dtype=np.uint8).tobytes()
    functions = {"xxh3_128": xxhash.xxh3_128_digest, "crc32c": google_crc32c.value,
                 "blake3": lambda b: blake3.blake3(b).digest(),
                 "sha256": lambda b: hashlib.sha256(b).digest()}
    seconds: dict[str, list[float]] = {name: [] for name in HASHES}
    for _ in range(rounds):
        for name in HASHES:
            started = time.perf_counter()
            functions[name](data)
            seconds[name].append(time.perf_counter() - started)
    return {name: stats([size / s / 1e9 for s in values]) for name, values in seconds.items()}


VERIFY = """
import sys, time
from pathlib import Path
started = time.perf_counter()
from resnet_ft.features.shards import read_shard
for path in sorted(Path(sys.argv[1]).rglob("*.shard")):
    read_shard(path).verify()
print(time.perf_counter() - started)
"""


def verification_share(args, data: Path) -> dict[str, object]:
    """Warm train runs alternating with the same store's verification, each a fresh process."""
    cache, work = OUT / "checksum_cache", OUT / "checksum_runs"
    train = ["resnet-ft", "train", str(data), "--backbone", str(args.backbone), "--epochs", "20",
             "--image-size", str(args.image_size), "--cache-dir", str(cache), "--overwrite"]
    subprocess.run([*train, "-o", str(work / "cold")], check=True, capture_output=True)
    warm, verify = [], []
    for round_ in range(args.repeats):
        started = time.perf_counter()
        subprocess.run([*train, "-o", str(work / f"warm{round_}")], check=True,
                       capture_output=True)
        warm.append(time.perf_counter() - started)
        done = subprocess.run([sys.executable, "-c", VERIFY, str(cache)], check=True,
                              capture_output=True, text=True)
        verify.append(float(done.stdout.strip()))
    shards = list(cache.rglob("*.shard"))
    return {"warm_train_s": stats(warm), "verify_s": stats(verify), "shards": len(shards),
            "store_bytes": sum(p.stat().st_size for p in shards),
            "share": float(np.median(verify) / np.median(warm))}


def main() -> None:
    args = parser(__doc__, images=750, quick_images=20).parse_args()
    data = dataset(OUT / "checksum_data", args.images)
    result = {"machine": machine(), "images": args.images,
              "hashes_gb_per_s": hash_speeds(max(args.repeats, 3)),
              "verification": verification_share(args, data)}
    save("checksum", result)


if __name__ == "__main__":
    main()
