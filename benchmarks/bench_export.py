"""Every export format x quantisation: size, agreement with the Keras model, images/s.

A run is trained on the shared sample (750 photos; ``train`` defaults: 20 % validation)
with the ResNet-101 stand-in, then exported in every format and quantisation
``export`` offers. For each export: its size on disk, the export's own report (top-1
agreement and max |Δp| against the float Keras model on the run's validation images,
each run by its own runtime) and seconds to export. Throughput: every export's runtime
and the Keras model classify the same decoded validation pixels, batch 32, in
interleaved rounds (one pass of every variant per round), so load affects all alike.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
from common import OUT, dataset, machine, parser, save, stats

#: (format, quantize, file name) in table order
VARIANTS = [("saved_model", "none", "saved_model"), ("tflite", "none", "f32.tflite"),
            ("tflite", "float16", "f16.tflite"), ("tflite", "dynamic", "dyn.tflite"),
            ("tflite", "int8", "int8.tflite"), ("onnx", "none", "f32.onnx"),
            ("onnx", "int8", "int8.onnx"), ("openvino", "none", "f32.xml"),
            ("openvino", "int8", "int8.xml")]
BATCH = 32


def trained_run(args, data: Path) -> Path:
    """One run on the sample (features cached once; 10 epochs of the head)."""
    run = OUT / "export_run"
    subprocess.run(["resnet-ft", "train", str(data), "--backbone", str(args.backbone), "-o",
                    str(run), "--epochs", "10", "--image-size", str(args.image_size),
                    "--cache-dir", str(OUT / "export_cache"), "--overwrite"],
                   check=True, capture_output=True)
    return run


def exports(run: Path) -> dict[str, dict[str, object]]:
    """Export every variant; its report and how long it took."""
    from resnet_ft.errors import OutputError
    from resnet_ft.exports import export

    folder = OUT / "exports"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    results = {}
    for fmt, quantize, name in VARIANTS:
        started = time.perf_counter()
        try:
            report = export(run, folder / name, fmt, quantize).to_dict()
        except OutputError as refusal:  # below the agreement floor: a figure too
            report = {"refused": str(refusal)}
        results[f"{fmt}/{quantize}"] = {**report, "export_s": time.perf_counter() - started}
    return results


def throughput(run: Path, repeats: int) -> dict[str, dict[str, float]]:
    """images/s of every export's runtime and of the Keras model, interleaved rounds."""
    from resnet_ft.data.preprocessing import decoded_pixels
    from resnet_ft.exports import load_exported
    from resnet_ft.inference.loaders import load_predictor
    from resnet_ft.runs.run import Run

    keras_model = load_predictor(run)
    predictors = {"keras/float32": keras_model}
    predictors |= {f"{fmt}/{quantize}": load_exported(OUT / "exports" / name)
                   for fmt, quantize, name in VARIANTS if (OUT / "exports" / name).exists()}
    pixels = decoded_pixels(Run.finished(run).split("val"), keras_model.preprocessing)
    seconds: dict[str, list[float]] = {name: [] for name in predictors}
    for predictor in predictors.values():  # warm-up: compile, allocate
        predictor.model(pixels[:BATCH], training=False)
    for _ in range(repeats):
        for name, predictor in predictors.items():
            started = time.perf_counter()
            for start in range(0, len(pixels), BATCH):
                np.asarray(predictor.model(pixels[start:start + BATCH], training=False))
            seconds[name].append(time.perf_counter() - started)
    return {name: {**stats([len(pixels) / s for s in values]), "images": len(pixels)}
            for name, values in seconds.items()}


def main() -> None:
    args = parser(__doc__, images=750, quick_images=40).parse_args()
    data = dataset(OUT / "export_data", args.images)
    run = trained_run(args, data)
    result = {"machine": machine(), "images": args.images, "image_size": args.image_size,
              "exports": exports(run), "images_per_s": throughput(run, args.repeats)}
    save("export", result)


if __name__ == "__main__":
    main()
