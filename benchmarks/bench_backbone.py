"""Figure 4: extraction throughput — ours (`auto`, `float32`) vs tf-slim and keras.applications.

Every variant runs ResNet-101 to its last block on the same random batch, at
the same batch size and input size, in one plain configuration (a tf.function
for the Keras models, a TF1 session for slim, whose grappler folds BatchNorm);
after two warm-up calls each, the variants are timed in interleaved rounds
(the order rotates every round) and each figure is the median over rounds, so
machine noise hits all sides alike. "Ours" is what extraction runs: the
backbone file loaded, BN folded (``resnet_ft.models.folding``), under the
precision ``auto`` picks here and under float32; the saved, unfolded float32
backbone (what ``predict`` runs) is shown beside them. The machine's practical
peak is one large 3x3 convolution in the same dtype (the same oneDNN kernels,
timed in the same rounds), so the table can say what share of it the backbone
reaches.

    python benchmarks/bench_backbone.py --backbone B.keras [--batch 16] [--size 224]
                                        [--rounds 7] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # support.*

from common import machine, save, stats


def keras_runner(model):
    import tensorflow as tf

    run = tf.function(lambda x: model(x, training=False))
    return lambda x: np.asarray(run(x))


def ours(backbone: Path, precision: str, folded: bool = True):
    """What extraction runs: the file's backbone, BN folded, computing in ``precision``."""
    from resnet_ft.models.files import backbone_metadata, load_backbone
    from resnet_ft.models.folding import folded_copy
    from resnet_ft.models.precision import policy

    model = load_backbone(backbone)
    if folded:
        with policy(precision):
            model = folded_copy(model, backbone_metadata(backbone))
    return keras_runner(model)


def keras_applications():
    import keras

    return keras_runner(keras.applications.ResNet101(weights=None, include_top=False))


def tf_slim(size: int, batch: int):
    import tensorflow as tf
    from support.slim_reference import import_slim

    slim, resnet_v1 = import_slim()
    graph = tf.Graph()
    with graph.as_default():
        pixels = tf.compat.v1.placeholder(tf.float32, (batch, size, size, 3))
        with slim.arg_scope(resnet_v1.resnet_arg_scope()):
            _, end_points = resnet_v1.resnet_v1_101(pixels, num_classes=None, is_training=False,
                                                     global_pool=False)
        output = end_points["resnet_v1_101/block4"]
        session = tf.compat.v1.Session(graph=graph)
        session.run(tf.compat.v1.global_variables_initializer())
    return lambda x: session.run(output, {pixels: x})


def interleaved(runners: dict, batch: np.ndarray, rounds: int) -> dict[str, dict]:
    """Seconds per call of every runner, timed round-robin (rotating order), as images/s."""
    for run in runners.values():
        run(batch)
        run(batch)
    names, times = list(runners), {name: [] for name in runners}
    for turn in range(rounds):
        for name in names[turn % len(names):] + names[: turn % len(names)]:
            started = time.perf_counter()
            runners[name](batch)
            times[name].append(time.perf_counter() - started)
    return {name: {**stats(t), "images_per_s": len(batch) / statistics.median(t)}
            for name, t in times.items()}


PEAK_SHAPE = (8, 56, 56, 256)  # batch, height, width, channels of ResNet's block1-sized 3x3 conv


def conv_peak(dtype: str):
    """A runner for one large 3x3 convolution in ``dtype``: the machine's practical conv peak.

    The same oneDNN kernels the backbone's convolutions use, at a size where
    they run best; timed in the same interleaved rounds as the backbones.
    """
    import tensorflow as tf

    channels = PEAK_SHAPE[-1]
    rng = np.random.default_rng(1)
    x = tf.cast(rng.standard_normal(PEAK_SHAPE).astype(np.float32), dtype)
    kernel = tf.cast(rng.standard_normal((3, 3, channels, channels)).astype(np.float32), dtype)
    run = tf.function(lambda: tf.nn.conv2d(x, kernel, 1, "SAME"))
    return lambda _: np.asarray(run())


def peak_gflops(seconds: float) -> float:
    batch, height, width, channels = PEAK_SHAPE
    return 2 * batch * height * width * 9 * channels * channels / seconds / 1e9


def conv_gflop_per_image(size: int) -> float:
    """Multiply-adds x 2 of ResNet-101's convolutions (to block4) for one image."""
    import keras

    model = keras.applications.ResNet101(weights=None, include_top=False,
                                         input_shape=(size, size, 3))
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            kh, kw, c_in, _ = layer.kernel.shape
            total += 2 * h * w * kh * kw * c_in * c_out
    return total / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", type=Path, required=True)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", default="backbone", help="name of the result file")
    args = parser.parse_args()
    if args.quick:
        args.batch, args.size, args.rounds = 4, 96, 2
    from resnet_ft.models.precision import resolve_precision

    auto, why = resolve_precision("auto")
    batch = np.random.default_rng(0).uniform(0, 255, (args.batch, args.size, args.size, 3))
    batch = batch.astype(np.float32)
    compute = "bfloat16" if "bfloat16" in auto else "float32"
    peaks = {"peak_float32": conv_peak("float32")}
    if compute != "float32":
        peaks[f"peak_{compute}"] = conv_peak(compute)
    timed = interleaved({
        "ours_auto": ours(args.backbone, auto),
        "ours_float32": ours(args.backbone, "float32"),
        "ours_float32_unfolded": ours(args.backbone, "float32", folded=False),
        "tf_slim": tf_slim(args.size, args.batch),
        "keras_applications": keras_applications(),
        **peaks,
    }, batch, args.rounds)
    peak = {name.removeprefix("peak_"): peak_gflops(timed.pop(name)["median"]) for name in peaks}
    results = timed
    speed = {name: r["images_per_s"] for name, r in results.items()}
    gflop = conv_gflop_per_image(args.size)
    save(args.output, {
        "machine": machine(), "batch": args.batch, "size": args.size, "rounds": args.rounds,
        "auto": auto, "auto_why": why, "results": results,
        "ratio_auto_vs_slim": speed["ours_auto"] / speed["tf_slim"],
        "ratio_float32_vs_slim": speed["ours_float32"] / speed["tf_slim"],
        "ratio_float32_vs_keras": speed["ours_float32"] / speed["keras_applications"],
        "gflop_per_image": gflop, "conv_peak_gflops": peak,
        "share_of_peak_auto": speed["ours_auto"] * gflop / peak[compute],
        "share_of_peak_float32": speed["ours_float32"] * gflop / peak["float32"],
    })


if __name__ == "__main__":
    main()
