"""The reference: tf-slim's own ``resnet_v1`` graph, run in a TF1 session.

The checkpoint it writes with ``tf.compat.v1.train.Saver`` is exactly the
official format; its ``block4`` end point and logits are what our converted
Keras model must reproduce.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from resnet_ft.conversion.standin import random_weights
from resnet_ft.models.architectures import SLIM


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


def make_reference(
    directory: Path, depth: int, sizes: tuple[int, ...], seed: int = 0, extra_mean_rgb: bool = True
) -> SlimReference:
    """Build slim's resnet_v1_<depth>, randomise it (BN statistics too), save, run."""
    import tensorflow as tf

    slim, resnet_v1 = import_slim()
    build = getattr(resnet_v1, f"resnet_v1_{depth}")
    rng = np.random.default_rng(seed)
    images = {s: rng.uniform(0, 255, (2, s, s, 3)).astype(np.float32) for s in sizes}
    mean = np.array(SLIM.normalization.mean, dtype=np.float32)
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
        values = random_weights({v.op.name: tuple(v.shape) for v in model_vars}, seed)
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            for variable in model_vars:
                variable.load(values[variable.op.name], session)
            prefix = directory / f"resnet_v1_{depth}.ckpt"
            tf.compat.v1.train.Saver().save(session, str(prefix), write_meta_graph=False)
            block4, top = {}, {}
            for size, batch in images.items():
                feats, out = session.run(
                    [end_points[f"resnet_v1_{depth}/block4"], logits], {pixels: batch - mean}
                )
                block4[size], top[size] = feats, out.reshape(out.shape[0], -1)
    return SlimReference(prefix, images, block4, top)
