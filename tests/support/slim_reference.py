"""The reference: tf-slim's own ``resnet_v1`` graph, run in a TF1 session.

The checkpoint it writes with ``tf.compat.v1.train.Saver`` is exactly the
official format (V2 by default, or the single-file V1 of the 2016 release);
its ``block4`` end point and logits are what our converted Keras model must
reproduce.

Nothing here comes from resnet-ft: the input means are the published ones and
the random weights are drawn by this module's own rules, so a wrong constant
or a shared bug in the project cannot make the reference agree with it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: tf-slim's ``preprocessing/vgg_preprocessing.py`` (used by its ResNet v1 checkpoints):
#: ``_R_MEAN = 123.68``, ``_G_MEAN = 116.78``, ``_B_MEAN = 103.94``, subtracted from RGB
#: pixels in [0, 255], no scaling.
SLIM_RGB_MEAN = (123.68, 116.78, 103.94)


def import_slim():
    """tf-slim on TF 2.21 needs tf-keras' legacy layers under their old module name."""
    import tf_keras
    import tf_keras.src.legacy_tf_layers

    sys.modules.setdefault("tf_keras.legacy_tf_layers", tf_keras.src.legacy_tf_layers)
    import tf_slim
    from tf_slim.nets import resnet_v1

    return tf_slim, resnet_v1


@dataclass
class SlimReference:
    """A saved slim checkpoint and the reference outputs for some images."""

    prefix: Path
    images: dict[int, np.ndarray]  # size -> raw RGB [0, 255]
    block4: dict[int, np.ndarray]
    logits: dict[int, np.ndarray]


def reference_weights(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, np.ndarray]:
    """Random values with non-trivial BN statistics, scaled so 150 layers stay finite.

    Kernels: normal with std sqrt(1 / fan_in) (halved again for each residual
    branch's last conv, so the stream grows slowly); BN gamma in [0.5, 1.5],
    beta and moving mean small normals, moving variance in [0.5, 2.5].
    """
    rng = np.random.Generator(np.random.PCG64(seed + 12345))
    values = {}
    for name in sorted(shapes):
        shape, role = shapes[name], name.rsplit("/", 1)[-1]
        if role == "weights":
            fan_in = int(np.prod(shape[:-1]))
            scale = 0.5 if "/conv3/" in name else 1.0
            value = rng.standard_normal(shape) * scale * np.sqrt(1.0 / fan_in)
        elif role == "gamma":
            value = rng.uniform(0.5, 1.5, shape)
        elif role == "moving_variance":
            value = rng.uniform(0.5, 2.5, shape)
        else:  # beta, moving_mean, biases
            value = rng.standard_normal(shape) * 0.1
        values[name] = value.astype(np.float32)
    return values


def assigner(variables):
    """``assign(session, values)``: every variable set from ``values`` (by op name) in one run.

    Built in the variables' graph. One ``Variable.load`` per variable is a session run
    each, with its own pruned graph: ~50 s for ResNet-152.
    """
    import tensorflow as tf

    feeds = {v: tf.compat.v1.placeholder(v.dtype.base_dtype, v.shape) for v in variables}
    op = tf.group(*(v.assign(placeholder) for v, placeholder in feeds.items()))

    def assign(session, values) -> None:
        session.run(op, {placeholder: values[v.op.name] for v, placeholder in feeds.items()})

    return assign


def make_reference(
    directory: Path, depth: int, sizes: tuple[int, ...], seed: int = 0,
    extra_mean_rgb: bool = True, v1_format: bool = False,
) -> SlimReference:
    """Build slim's resnet_v1_<depth>, randomise it (BN statistics too), save, run."""
    import tensorflow as tf

    slim, resnet_v1 = import_slim()
    build = getattr(resnet_v1, f"resnet_v1_{depth}")
    rng = np.random.default_rng(seed)
    images = {s: rng.uniform(0, 255, (2, s, s, 3)).astype(np.float32) for s in sizes}
    mean = np.array(SLIM_RGB_MEAN, dtype=np.float32)
    graph = tf.Graph()
    with graph.as_default():
        pixels = tf.compat.v1.placeholder(tf.float32, (None, None, None, 3))
        with slim.arg_scope(resnet_v1.resnet_arg_scope()):
            logits, end_points = build(pixels, num_classes=1000, is_training=False)
        tf.compat.v1.train.get_or_create_global_step()
        if extra_mean_rgb:  # present in some official files; must be ignored
            tf.compat.v1.get_variable(f"resnet_v1_{depth}/mean_rgb", initializer=mean)
        variables = tf.compat.v1.global_variables()
        model_vars = [v for v in variables if v.dtype.base_dtype == tf.float32
                      and not v.op.name.endswith("mean_rgb")]
        values = reference_weights({v.op.name: tuple(v.shape) for v in model_vars}, seed)
        assign = assigner(model_vars)
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            assign(session, values)
            prefix = directory / f"resnet_v1_{depth}.ckpt"
            version = (tf.compat.v1.train.SaverDef.V1 if v1_format
                       else tf.compat.v1.train.SaverDef.V2)
            saver = tf.compat.v1.train.Saver(write_version=version)
            saver.save(session, str(prefix), write_meta_graph=False)
            block4, top = {}, {}
            for size, batch in images.items():
                feats, out = session.run(
                    [end_points[f"resnet_v1_{depth}/block4"], logits], {pixels: batch - mean}
                )
                block4[size], top[size] = feats, out.reshape(out.shape[0], -1)
    return SlimReference(prefix, images, block4, top)
