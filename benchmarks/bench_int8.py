"""int8 extraction (OpenVINO + NNCF) against the TensorFlow precisions, and what it costs.

On the shared sample (750 photos at 224 px; generated images when it is absent), with
the ResNet-101 stand-in, as ``train --precision int8`` runs it:

* **calibration**: seconds to convert, quantise (the default 256 stratified training
  images) and check the backbone; the cached IR's size beside the float32 backbone file;
  the check's centred cosine between int8 and float32 pooled features (median, worst)
  on the 64 held-out training images.
* **backbone**: the compiled int8 model against the folded ``mixed_bfloat16`` and float32
  extractors and tf-slim's float32 graph, on one random batch, interleaved rounds
  (``bench_backbone``'s method); and the share of the machine's int8 peak it reaches
  (a chain of large 3x3 convolutions, quantised the same way, timed in the same rounds).
* **end to end**: what ``train`` does before its first epoch: decode, engine and store
  writes into a cold feature store, every file once, int8 (its quantised model already
  cached) against ``mixed_bfloat16``, alternating repeats.

    python benchmarks/bench_int8.py --backbone B.keras [--images N] [--repeats R] [--quick]
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # support.*
from bench_backbone import PEAK_SHAPE, conv_gflop_per_image, interleaved, ours, peak_gflops, tf_slim
from common import OUT, dataset, machine, parser, save, stats

BATCH = 32


def featurizer(backbone: Path, size: int, precision: str, store: Path | None, models: Path,
               calibration=None):
    from rich.console import Console

    from resnet_ft.data.preprocessing import Preprocessing
    from resnet_ft.features.featurizer import Backbone, Featurizer

    return Featurizer(Backbone.from_file(backbone), Preprocessing(size), precision,
                      store_root=store, console=Console(quiet=True), calibration=calibration,
                      models_root=models)


def calibrate(args, samples, models: Path) -> tuple[dict, object]:
    """Quantise and check once (timed); the IR's size; the check's figures."""
    from resnet_ft.data.sampling import calibration_sample

    sample = calibration_sample(samples, args.calibration_images)
    int8 = featurizer(args.backbone, args.image_size, "int8", None, models, sample)
    started = time.perf_counter()
    int8.pooled([], views=1)  # converts, quantises and checks (or refuses) before extracting
    seconds = time.perf_counter() - started
    ir = sum(f.stat().st_size for f in (models / "int8").rglob("*") if f.is_file())
    return {"seconds": seconds, "images": len(sample.files), "held_out": len(sample.held_out),
            "ir_bytes": ir, "backbone_bytes": args.backbone.stat().st_size,
            "check": int8.int8, "precision_used": int8.precision}, (int8.function(1), sample)


#: 3x3 convolutions chained in the int8 peak model: OpenVINO quantises the float input and
#: reorders NHWC <-> its own layout at the model's edges, memory-bound work that one
#: convolution alone cannot hide (measured: one conv reached less than the whole backbone).
PEAK_DEPTH = 8


def int8_peak():
    """PEAK_DEPTH PEAK_SHAPE 3x3 convolutions (ReLU between), quantised by the project's recipe
    and compiled as the engine compiles: the machine's practical int8 convolution peak."""
    import openvino as ov
    import tensorflow as tf

    from resnet_ft.features.engines.openvino import CONFIG, quantise

    channels = PEAK_SHAPE[-1]
    rng = np.random.default_rng(1)
    scale = np.float32(1 / np.sqrt(9 * channels))  # keeps activations O(1) through the chain
    kernels = [tf.constant(rng.standard_normal((3, 3, channels, channels)).astype(np.float32)
                           * scale) for _ in range(PEAK_DEPTH)]

    def chain(x):
        for kernel in kernels:
            x = tf.nn.relu(tf.nn.conv2d(x, kernel, 1, "SAME"))
        return x

    traced = tf.function(chain, input_signature=[tf.TensorSpec((None, *PEAK_SHAPE[1:]),
                                                               tf.float32)])
    x = rng.standard_normal(PEAK_SHAPE).astype(np.float32)
    model = quantise(ov.convert_model(traced.get_concrete_function()), x[:4])
    compiled = ov.Core().compile_model(model, "CPU", CONFIG)
    queue = ov.AsyncInferQueue(compiled, 2)

    def run(_):
        for part in np.array_split(x, 2):
            queue.start_async({0: part})
        queue.wait_all()
    return run


def end_to_end(args, paths, models: Path, calibration) -> dict:
    """images/s of a cold-store pass over every file, int8 vs mixed_bfloat16, alternating."""
    seconds: dict[str, list[float]] = {"int8": [], "mixed_bfloat16": []}
    for _ in range(args.repeats):
        for precision in seconds:
            with tempfile.TemporaryDirectory() as store:
                f = featurizer(args.backbone, args.image_size, precision, Path(store), models,
                               calibration)
                f.function(1)  # model load, compile (the IR is cached): not extraction
                started = time.perf_counter()
                f.pooled(paths, views=1)
                seconds[precision].append(time.perf_counter() - started)
    speed = {k: stats([len(paths) / s for s in v]) for k, v in seconds.items()}
    return {"images": len(paths), "images_per_s": speed,
            "ratio_int8_vs_bf16": speed["int8"]["median"] / speed["mixed_bfloat16"]["median"]}


def main() -> None:
    cli = parser(__doc__, images=750, quick_images=40)
    cli.add_argument("--calibration-images", type=int, default=256)
    cli.add_argument("--rounds", type=int, default=7)
    args = cli.parse_args()
    if args.images <= 40:
        args.calibration_images, args.rounds = 16, 2
    from resnet_ft.data.folders import scan

    data = dataset(OUT / "int8_data", args.images)
    _, samples, _ = scan(data)
    models = OUT / "int8_models"
    shutil.rmtree(models, ignore_errors=True)
    calibration, (runner, sample) = calibrate(args, samples, models)
    batch = np.random.default_rng(0).uniform(0, 255, (BATCH, args.image_size, args.image_size,
                                                      3)).astype(np.float32)
    timed = interleaved({"int8": runner, "mixed_bfloat16": ours(args.backbone, "mixed_bfloat16"),
                         "float32": ours(args.backbone, "float32"),
                         "tf_slim": tf_slim(args.image_size, BATCH),
                         "peak_int8": int8_peak()}, batch, args.rounds)
    peak = PEAK_DEPTH * peak_gflops(timed.pop("peak_int8")["median"])
    speed = {name: r["images_per_s"] for name, r in timed.items()}
    save("int8", {
        "machine": machine(), "images": args.images, "image_size": args.image_size,
        "batch": BATCH, "rounds": args.rounds, "calibration": calibration,
        "backbone": timed,
        "ratio_int8_vs_bf16": speed["int8"] / speed["mixed_bfloat16"],
        "ratio_int8_vs_slim": speed["int8"] / speed["tf_slim"],
        "int8_peak_gops": peak,
        "share_of_int8_peak": speed["int8"] * conv_gflop_per_image(args.image_size) / peak,
        "end_to_end": end_to_end(args, [s.path for s in samples], models, sample),
    })


if __name__ == "__main__":
    main()
