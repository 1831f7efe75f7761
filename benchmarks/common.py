"""Shared benchmark plumbing: timing statistics, data sets, machine facts."""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "flowers-sample"
OUT = Path(__file__).resolve().parent / "out"


def stats(values: list[float]) -> dict[str, float]:
    """median / min / max / runs of repeated measurements."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "runs": len(values)}


def repeat(function: Callable[[], float], repeats: int) -> dict[str, float]:
    """Call a measuring function ``repeats`` times and summarise."""
    return stats([function() for _ in range(repeats)])


def timed(function: Callable[[], object]) -> float:
    """Wall seconds of one call."""
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def dataset(target: Path, count: int) -> Path:
    """A class-per-folder set of ``count`` JPEGs: the shared flowers sample, cycled
    round-robin over classes; generated images of similar sizes when it is absent."""
    if target.is_dir():
        shutil.rmtree(target)
    if SHARED.is_dir():
        classes = [sorted(c.glob("*.jpg")) for c in sorted(SHARED.iterdir()) if c.is_dir()]
        for index in range(count):
            files = classes[index % len(classes)]
            source = files[(index // len(classes)) % len(files)]
            dest = target / source.parent.name / f"{index:05d}_{source.name}"
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, dest)
    else:
        from resnet_ft.data.standin import write_standin_images

        write_standin_images(target, per_class=max(count // 5, 2), min_size=134, max_size=512)
    return target


def machine() -> dict[str, object]:
    """The facts a reader needs to compare figures."""
    import numpy
    import tensorflow as tf

    return {
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "numpy": numpy.__version__,
        "data": str(SHARED) if SHARED.is_dir() else "generated images",
        # other work on the machine slows every figure: recorded so a reader can judge
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }


def save(name: str, result: dict[str, object]) -> Path:
    """Write ``benchmarks/out/<name>.json`` (read by make_results.py)."""
    OUT.mkdir(exist_ok=True)
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return path


def parser(doc: str, images: int, quick_images: int = 16):
    """The options every data benchmark takes; ``--quick`` shrinks them to a smoke run."""
    import argparse

    class Quick(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            namespace.images, namespace.repeats, namespace.image_size = quick_images, 1, 64

    result = argparse.ArgumentParser(description=doc.splitlines()[0])
    result.add_argument("--backbone", type=Path, required=True)
    result.add_argument("--images", type=int, default=images)
    result.add_argument("--repeats", type=int, default=3)
    result.add_argument("--image-size", type=int, default=224)
    result.add_argument("--quick", nargs=0, action=Quick, help="smoke run: tiny sizes, 1 repeat")
    return result
