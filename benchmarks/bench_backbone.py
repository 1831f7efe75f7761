"""Figure 4: backbone forward throughput — ours vs tf-slim and keras.applications.

All run ResNet-101 on the same random batch, same batch size and input size,
after the same warm-up, each in one configuration: a plain graph (tf.function
for the Keras models, a TF1 session for slim). The ratios compare ours plain
with the references plain; XLA, BN folding and other batch sizes are reported
as experiments beside them, never picked as "ours".

    python benchmarks/bench_backbone.py [--batch 16] [--size 224] [--steps 5] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # support.*

from common import machine, save, stats


def throughput(step, batch: np.ndarray, steps: int) -> dict[str, float]:
    step(batch)  # warm-up: tracing, XLA compilation, oneDNN primitive caches
    step(batch)
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        step(batch)
        times.append(time.perf_counter() - started)
    result = stats(times)
    result["images_per_s"] = len(batch) / result["median"]
    return result


def ours(jit: bool):
    import tensorflow as tf

    from resnet_ft.models.architectures import SLIM, build_resnet

    model = build_resnet(SLIM, 101)
    run = tf.function(lambda x: model(x, training=False), jit_compile=jit)
    return lambda x: run(x).numpy()


def ours_folded():
    """Experiment: BN folded into the preceding convolutions (what grappler does for slim)."""
    import keras
    import numpy as np
    import tensorflow as tf

    from resnet_ft.models.architectures import SLIM, build_resnet

    model = build_resnet(SLIM, 101)
    bn_after = {layer.name.removesuffix(".BatchNorm"): layer for layer in model.layers
                if isinstance(layer, keras.layers.BatchNormalization)}
    tensors = {}
    pixels = keras.Input((None, None, 3))
    for layer in model.layers:
        node = layer._inbound_nodes[0]
        if not node.input_tensors:
            tensors[id(node.output_tensors[0])] = pixels
            continue
        inputs = [tensors[id(t)] for t in node.input_tensors]
        argument = inputs if len(inputs) > 1 else inputs[0]
        if isinstance(layer, keras.layers.BatchNormalization):
            output = argument
        elif layer.name in bn_after:
            conv = keras.layers.Conv2D.from_config({**layer.get_config(), "use_bias": True})
            output = conv(argument)
            bn = bn_after[layer.name]
            scale = np.asarray(bn.gamma) / np.sqrt(np.asarray(bn.moving_variance) + bn.epsilon)
            conv.kernel.assign(np.asarray(layer.kernel) * scale)
            conv.bias.assign(np.asarray(bn.beta) - np.asarray(bn.moving_mean) * scale)
        else:
            output = layer(argument)
        tensors[id(node.output_tensors[0])] = output
    folded = keras.Model(pixels, tensors[id(model.outputs[0])])
    run = tf.function(lambda x: folded(x, training=False))
    return lambda x: run(x).numpy()


def keras_applications():
    import keras
    import tensorflow as tf

    model = keras.applications.ResNet101(weights=None, include_top=False)
    run = tf.function(lambda x: model(x, training=False))
    return lambda x: run(x).numpy()


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


def _batch(size: int, pixels: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.uniform(0, 255, (size, pixels, pixels, 3)).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", default="backbone", help="name of the result file")
    args = parser.parse_args()
    if args.quick:
        args.batch, args.size, args.steps = 4, 96, 2
    batch = _batch(args.batch, args.size)
    results = {
        "ours": throughput(ours(jit=False), batch, args.steps),
        "ours_xla": throughput(ours(jit=True), batch, args.steps),
        "ours_bn_folded": throughput(ours_folded(), batch, args.steps),
        **{f"ours_batch_{size}": throughput(ours(jit=False), _batch(size, args.size),
                                            args.steps) for size in (8, 32)},
        "keras_applications": throughput(keras_applications(), batch, args.steps),
        "tf_slim": throughput(tf_slim(args.size, args.batch), batch, args.steps),
    }
    plain = results["ours"]["images_per_s"]
    save(args.output, {
        "onednn": __import__("os").environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)"),
        "machine": machine(), "batch": args.batch, "size": args.size, "results": results,
        "ratio_vs_slim": plain / results["tf_slim"]["images_per_s"],
        "ratio_vs_keras": plain / results["keras_applications"]["images_per_s"],
        "xla_over_plain": results["ours_xla"]["images_per_s"] / results["ours"]["images_per_s"],
    })


if __name__ == "__main__":
    main()
