"""Figure 10: memory per image of a real `train` run (target: <= 1 KB per image).

`resnet-ft train` on 5,000 and on 20,000 generated images at `--image-size 64`
(the default precision and flips: two views per image, both extracted into
the sharded store and read back memory-mapped), one epoch each, in a fresh
process per run. The parent samples the child's RssAnon (anonymous memory:
the heap, not the page cache that memory-mapped shards use) every 20 ms; the
slope is (peak at 20,000 - peak at 5,000) / 15,000 images.

    python benchmarks/bench_memory_slope.py --backbone B.keras [--quick]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, save


def rss_anon(pid: int) -> int:
    """The process's current RssAnon in bytes (0 once it has gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next((int(line.split()[1]) * 1024 for line in status.splitlines()
                 if line.startswith("RssAnon:")), 0)


def peak_anon(command: list[str]) -> tuple[int, float]:
    """Run ``command``; its peak RssAnon (bytes) and wall seconds."""
    began = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True)
    peak = 0
    while child.poll() is None:
        peak = max(peak, rss_anon(child.pid))
        time.sleep(0.02)
    if child.returncode:
        raise SystemExit(f"train failed: {child.stderr.read()[-2000:]}")
    return peak, time.perf_counter() - began


def run(images: int, backbone: Path, work: Path) -> dict[str, float]:
    from resnet_ft.data.standin import write_standin_images

    data = write_standin_images(work / f"data-{images}", per_class=images // 5, min_size=64,
                                max_size=96)
    command = [sys.executable, "-m", "resnet_ft", "train", str(data), "--backbone",
               str(backbone), "-o", str(work / f"run-{images}"), "--cache-dir",
               str(work / f"cache-{images}"), "--epochs", "1", "--image-size", "64"]
    peak, seconds = peak_anon(command)
    return {"images": images, "peak_rss_anon_mb": peak / 1e6, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", type=Path, required=True)
    parser.add_argument("--sizes", type=int, nargs=2, default=(5000, 20000))
    parser.add_argument("--quick", action="store_const", const=(200, 800), dest="sizes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=Path(__file__).parent / "out") as tmp:
        small, large = (run(n, args.backbone, Path(tmp)) for n in args.sizes)
    slope = (large["peak_rss_anon_mb"] - small["peak_rss_anon_mb"]) * 1e6 / (
        large["images"] - small["images"])
    save("memory_slope", {"machine": machine(), "runs": [small, large],
                          "bytes_per_image": slope})


if __name__ == "__main__":
    main()
