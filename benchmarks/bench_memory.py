"""Figure 5: peak resident memory of `resnet-ft train` (target: <= 3 GB at 3,670 images, 224 px).

Training streams images through tf.data and keeps only pooled features
(N x views x 2048 float32) in memory, never the decoded images. Peak RSS is
the child process's ``ru_maxrss``.

    python benchmarks/bench_memory.py --backbone B.keras [--images 3670] [--repeats R] [--quick]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import dataset, machine, parser, save, stats


def peak_rss_gb(data: Path, backbone: Path, work: Path, size: int, tag: str) -> float:
    """Run one training process and return its peak RSS in GB (a fresh python per run)."""
    script = (
        "import resource, subprocess, sys; "
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    command = [sys.executable, "-m", "resnet_ft", "train", str(data), "--backbone",
               str(backbone), "-o", str(work / f"run-{tag}"), "--cache-dir",
               str(work / f"cache-{tag}"), "--epochs", "2", "--image-size", str(size)]
    out = subprocess.run([sys.executable, "-c", script, *command], check=True,
                         capture_output=True, text=True).stdout
    return int(out.strip().splitlines()[-1]) / 1024**2  # KiB -> GiB


def main() -> None:
    args = parser(__doc__, images=3670, quick_images=20).parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = dataset(work / "data", args.images)
        values = [peak_rss_gb(data, args.backbone, work, args.image_size, str(i))
                  for i in range(args.repeats)]
    save("memory", {"machine": machine(), "images": args.images,
                    "image_size": args.image_size, "peak_rss_gb": stats(values)})


if __name__ == "__main__":
    main()
