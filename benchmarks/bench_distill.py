"""Figure 9: a distilled ResNet-50 vs its ResNet-101 teacher — serving speed and training cost.

1. Images/s of the distilled ResNet-50 run vs the ResNet-101 teacher run in
   `predict` (Keras model, files decoded by the product's pipeline) and in the
   exported SavedModel (`serving_default`: encoded image bytes in, decoding in the
   graph). Target: student >= 1.8x the teacher in both.
2. The whole `resnet-ft distill` process vs the whole `resnet-ft train` process
   of the teacher, each on a cold cache for its own backbone: the teacher is
   trained first and distillation reuses the teacher features its training
   cached, so distill costs the student's extraction pass plus seconds.

Stand-in checkpoints (speed does not depend on weight values); 20 epochs,
flips on, as figure 1. Throughput is measured after a warm-up call, over the
same files for both models, and the ratio is the median of ratios paired
within one repeat.

    python benchmarks/bench_distill.py --backbone R101.keras --student R50.keras
        [--images N] [--repeats R] [--image-size S] [--quick]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train_epochs import warm_os_cache
from common import dataset, machine, parser, save, stats

SERVING_BATCH = 32


def cli_seconds(*args: object) -> float:
    """Wall seconds of one `resnet-ft` process."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "resnet_ft", *map(str, args)], check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def predict_rate(run: Path, files: list[Path]) -> Callable[[], float]:
    """Images/s of the run's Keras classifier on ``files`` through `predict`'s pipeline."""
    from resnet_ft.inference.loaders import load_predictor
    from resnet_ft.inference.predict import predict_files

    predictor = load_predictor(run)
    predict_files(predictor, files[:SERVING_BATCH])  # warm-up: tracing, first allocations

    def measure() -> float:
        started = time.perf_counter()
        predict_files(predictor, files, batch_size=SERVING_BATCH)
        return len(files) / (time.perf_counter() - started)

    return measure


def saved_model_rate(run: Path, out: Path, files: list[Path]) -> Callable[[], float]:
    """Images/s of the run exported as a SavedModel, fed encoded files as a server would."""
    import tensorflow as tf

    from resnet_ft.exports import export

    export(run, out)
    serve = tf.saved_model.load(str(out)).signatures["serving_default"]
    batches = [tf.constant([f.read_bytes() for f in files[i : i + SERVING_BATCH]])
               for i in range(0, len(files), SERVING_BATCH)]
    serve(images=batches[0])  # warm-up

    def measure() -> float:
        started = time.perf_counter()
        for batch in batches:
            serve(images=batch)["probabilities"].numpy()
        return len(files) / (time.perf_counter() - started)

    return measure


def paired(teacher: Callable[[], float], student: Callable[[], float],
           repeats: int) -> dict[str, object]:
    """Both rates per repeat (alternating which goes first), and their paired ratios."""
    rates: dict[str, list[float]] = {"teacher": [], "student": []}
    for repeat in range(repeats):
        order = (("teacher", teacher), ("student", student))
        for name, measure in order if repeat % 2 == 0 else reversed(order):
            rates[name].append(measure())
    ratios = [s / t for s, t in zip(rates["student"], rates["teacher"], strict=True)]
    return {"teacher_images_per_s": stats(rates["teacher"]),
            "student_images_per_s": stats(rates["student"]),
            "ratio_student_over_teacher": statistics.median(ratios)}


def main() -> None:
    arguments = parser(__doc__, images=750, quick_images=16)
    arguments.add_argument("--student", type=Path, required=True,
                           help="student backbone (a ResNet-50 .keras)")
    args = arguments.parse_args()
    size = ("--image-size", args.image_size)
    load_before = os.getloadavg()
    from resnet_ft.data.folders import list_images

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = dataset(work / "data", args.images)
        warm_os_cache(data)
        costs: dict[str, list[float]] = {"train_teacher_s": [], "distill_s": []}
        for repeat in range(args.repeats):
            cache, teacher, student = (work / f"{name}-{repeat}"
                                       for name in ("cache", "teacher", "student"))
            costs["train_teacher_s"].append(cli_seconds(
                "train", data, "--backbone", args.backbone, "-o", teacher, "--cache-dir", cache,
                *size))
            costs["distill_s"].append(cli_seconds(
                "distill", teacher, data, "--student", args.student, "-o", student,
                "--cache-dir", cache, *size))
        files = list_images(data)
        predict = paired(predict_rate(teacher, files), predict_rate(student, files),
                         args.repeats)
        serving = paired(saved_model_rate(teacher, work / "teacher.savedmodel", files),
                         saved_model_rate(student, work / "student.savedmodel", files),
                         args.repeats)
    ratios = [d / t for d, t in zip(costs["distill_s"], costs["train_teacher_s"], strict=True)]
    save("distill", {
        "machine": machine(),
        # the machine is shared: 1/5/15-minute load averages when the run began and ended
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "images": args.images, "image_size": args.image_size,
        "epochs": 20, "batch": SERVING_BATCH,
        "train_teacher_s": stats(costs["train_teacher_s"]), "distill_s": stats(costs["distill_s"]),
        "ratio_distill_over_train": statistics.median(ratios),
        "predict": predict, "saved_model": serving,
    })


if __name__ == "__main__":
    main()
