"""Reference for the slim v2 family: tf-slim's own ``resnet_v2_<depth>`` in a TF1 session.

Independent of resnet-ft: the network is tf-slim's
graph, the weights are drawn here, and the BatchNorm moving statistics come
from one training-mode pass of that same graph (decay 0, so the moving
averages become the batch statistics), then perturbed. The checkpoint is
written by ``tf.compat.v1.train.Saver``, i.e. exactly the official format.

Input: the published v2 checkpoints were trained and evaluated with Inception
preprocessing (pixels scaled to [-1, 1]: ``(x / 255 - 0.5) * 2``; tensorflow/models'
slim README), so this module feeds the graph that, computed from raw RGB [0, 255].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from support.slim_reference import assigner


def import_slim():
    """tf-slim and its resnet_v2 (the v1 reference's import makes tf-slim importable)."""
    from support.slim_reference import import_slim as import_slim_v1

    slim, _ = import_slim_v1()
    from tf_slim.nets import resnet_v2

    return slim, resnet_v2


def inception_scale(raw_rgb: np.ndarray) -> np.ndarray:
    """slim's inception_preprocessing: to [0, 1] floats, then ``(x - 0.5) * 2``."""
    return ((raw_rgb.astype(np.float64) / 255.0 - 0.5) * 2.0).astype(np.float32)


@dataclass
class SlimV2Reference:
    """The saved checkpoint of one randomised network and its outputs."""

    depth: int
    prefix: Path
    variables: dict[str, np.ndarray]  # everything saved, by slim name
    images: dict[int, np.ndarray]  # size -> raw RGB [0, 255], NHWC
    block4: dict[int, np.ndarray]  # end point resnet_v2_N/block4 (before postnorm)
    features: dict[int, np.ndarray]  # postnorm BN + ReLU output
    logits: dict[int, np.ndarray]  # (N, num_classes)


#: The first norm after the stem's max-pool. Half its channels get a negative gamma, so that
#: a pool output replaced by a padding zero survives the ReLU (with positive gammas and
#: calibrated statistics, bn(0) and bn(negative) are both < 0 and the ReLU hides a
#: -inf vs zero padding difference completely; see traps.md).
FIRST_NORM = "block1/unit_1/bottleneck_v2/preact/gamma"


def _draw(name: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """He-scaled kernels (a residual branch's last at half gain), varied norm parameters."""
    role = name.rsplit("/", 1)[-1]
    if name.endswith(FIRST_NORM):
        value = rng.uniform(0.5, 1.5, shape)
        value[::2] *= -1.0
        return value.astype(np.float32)
    if role == "weights":
        fan_in = int(np.prod(shape[:-1]))
        gain = 0.5 if "/conv3/" in name else 1.0  # a residual branch's last conv
        value = rng.standard_normal(shape) * gain * np.sqrt(2.0 / fan_in)
    elif role == "biases":
        value = rng.standard_normal(shape) * 0.1
    elif role == "gamma":
        value = rng.uniform(0.5, 1.5, shape)
    elif role == "beta":
        value = rng.standard_normal(shape) * 0.2
    elif role == "moving_mean":
        value = np.zeros(shape)
    elif role == "moving_variance":
        value = np.ones(shape)
    else:
        raise ValueError(name)
    return value.astype(np.float32)


def _build(resnet_v2, slim, depth, pixels, is_training, num_classes, decay):
    build = getattr(resnet_v2, f"resnet_v2_{depth}")
    with slim.arg_scope(resnet_v2.resnet_arg_scope(batch_norm_decay=decay)):
        return build(pixels, num_classes=num_classes, is_training=is_training)


def make_reference(directory: Path, depth: int = 50, sizes=(224, 193), seed: int = 0,
                   num_classes: int = 1001) -> SlimV2Reference:
    """Build, randomise (statistics calibrated on noise, then perturbed), save, run."""
    import tensorflow as tf

    slim, resnet_v2 = import_slim()
    rng = np.random.default_rng(seed)
    images = {s: rng.uniform(0, 255, (2, s, s, 3)).astype(np.float32) for s in sizes}
    noise = rng.uniform(0, 255, (4, 160, 160, 3)).astype(np.float32)

    # 1. Training-mode graph, decay 0: one run of the update ops sets moving stats = batch stats.
    graph = tf.Graph()
    with graph.as_default():
        pixels = tf.compat.v1.placeholder(tf.float32, (None, None, None, 3))
        _build(resnet_v2, slim, depth, pixels, True, num_classes, decay=0.0)
        model_vars = tf.compat.v1.global_variables()
        values = {v.op.name: _draw(v.op.name, tuple(v.shape), rng) for v in model_vars}
        updates = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS)
        assign = assigner(model_vars)
        statistics = [v for v in model_vars
                      if v.op.name.endswith(("moving_mean", "moving_variance"))]
        with tf.compat.v1.Session(graph=graph) as session:
            assign(session, values)
            session.run(updates, {pixels: inception_scale(noise)})
            for v, value in zip(statistics, session.run(statistics), strict=True):
                values[v.op.name] = value
    for name in sorted(values):  # perturb: inference must really use the stored statistics
        if name.endswith("moving_mean"):
            std = np.sqrt(values[name.replace("moving_mean", "moving_variance")])
            values[name] = (values[name] + 0.1 * std * rng.standard_normal(std.shape)).astype("f4")
    for name in sorted(values):
        if name.endswith("moving_variance"):
            values[name] = (values[name] * rng.uniform(0.8, 1.25, values[name].shape)
                            + 1e-3).astype("f4")

    # 2. Inference graph with those values: save as the official Saver does, run.
    graph = tf.Graph()
    with graph.as_default():
        pixels = tf.compat.v1.placeholder(tf.float32, (None, None, None, 3))
        logits, end_points = _build(resnet_v2, slim, depth, pixels, False, num_classes, 0.997)
        tf.compat.v1.train.get_or_create_global_step()
        postnorm = graph.get_tensor_by_name(f"resnet_v2_{depth}/postnorm/Relu:0")
        block4 = end_points[f"resnet_v2_{depth}/block4"]
        model_vars = [v for v in tf.compat.v1.global_variables() if v.op.name in values]
        assert len(model_vars) == len(values), "variable sets of the two graphs differ"
        assign = assigner(model_vars)
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            assign(session, values)
            directory.mkdir(parents=True, exist_ok=True)
            prefix = directory / f"resnet_v2_{depth}.ckpt"
            tf.compat.v1.train.Saver().save(session, str(prefix), write_meta_graph=False)
            out_b4, out_feat, out_logits = {}, {}, {}
            for size, batch in images.items():
                b4, feat, top = session.run([block4, postnorm, logits],
                                            {pixels: inception_scale(batch)})
                out_b4[size], out_feat[size] = b4, feat
                out_logits[size] = top.reshape(top.shape[0], -1)
    return SlimV2Reference(depth, prefix, values, images, out_b4, out_feat, out_logits)
