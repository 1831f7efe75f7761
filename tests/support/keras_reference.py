"""The reference for the keras families: ``keras.applications.ResNet{50,101}`` and ``...V2`` itself.

The model is randomised (kernels, biases, BN gamma/beta) and its BatchNorm
moving statistics are set from real batch statistics on noise images, then
perturbed: non-trivial, yet activations stay in a sane range through 100
layers. It is saved in every layout such weights come in:

* ``legacy`` / ``legacy_notop``: the Keras 2 HDF5 layout of the published
  ``resnet{50,101,152}_weights_tf_dim_ordering_tf_kernels[_notop].h5`` files,
  written here with h5py exactly as Keras' legacy loader
  (``keras/src/legacy/saving/legacy_h5_format.py``) reads it, and with the
  top Dense named ``probs`` as in those files. Keras' own loader then reads
  the notop file into a second, variable-input-size model: the file is proven
  to be what Keras accepts, and that model gives reference features at odd sizes.
* ``keras3`` / ``keras3_notop``: ``model.save_weights("*.weights.h5")``.
* ``keras3_unnamed``: the same with the layer-name attributes removed, as
  written by Keras < 3.10.

Reference outputs use Keras' own ``preprocess_input`` (v1: caffe mode, RGB->BGR and
mean subtraction; V2: tf mode, x / 127.5 - 1) on raw RGB images; our backbones get
the raw images. V2's features are ``post_relu`` (after the final BN + ReLU).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TOP_LAYERS = ("avg_pool", "predictions")


@dataclass
class KerasReference:
    """Weight files of one randomised keras.applications ResNet and its outputs."""

    depth: int
    files: dict[str, Path]
    images: dict[int, np.ndarray]  # size -> raw RGB in [0, 255], NHWC
    features: dict[int, np.ndarray]  # size -> the last feature map of the notop model
    features_full: np.ndarray  # the last feature map of the full (224-only) model at 224
    logits: np.ndarray  # pre-softmax output of `predictions` at 224
    probabilities: np.ndarray  # the full model's own (softmax) output at 224
    conv_order: list[str]  # Conv2D layer names in model.layers order
    bn_order: list[str]


def randomise(model, rng: np.random.Generator, branch_end: str = "_3_bn") -> None:
    """Random kernels, biases, gammas and betas; a residual branch's last layer (its BN in v1,
    its third convolution in V2) is shrunk, so activations stay sane through 100 units."""
    import keras

    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            kernel = layer.kernel
            fan_in = int(np.prod(kernel.shape[:-1]))
            shrink = 0.2 if layer.name.endswith(branch_end) else 1.0
            kernel.assign(rng.normal(0, np.sqrt(2.0 / fan_in) * shrink, kernel.shape).astype("f4"))
            if layer.bias is not None:  # V2's _1_conv and _2_conv have none
                layer.bias.assign(rng.normal(0, 0.05, layer.bias.shape).astype("f4"))
        elif isinstance(layer, keras.layers.BatchNormalization):
            shrink = 0.2 if layer.name.endswith(branch_end) else 1.0
            layer.gamma.assign(rng.uniform(0.5, 1.5, layer.gamma.shape).astype("f4") * shrink)
            layer.beta.assign(rng.normal(0, 0.2, layer.beta.shape).astype("f4"))


def calibrate(model, batch: np.ndarray, rng: np.random.Generator) -> None:
    """Moving statistics = this batch's statistics (one training-mode pass), then perturbed."""
    import keras

    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in norms:
        layer.momentum = 0.0  # the moving averages become the batch statistics
    model(batch, training=True)
    for layer in norms:
        mean = np.asarray(layer.moving_mean)
        var = np.asarray(layer.moving_variance)
        layer.moving_mean.assign(mean + rng.normal(0, 0.1, mean.shape) * np.sqrt(var))
        layer.moving_variance.assign(var * rng.uniform(0.8, 1.25, var.shape) + 1e-3)
        layer.momentum = 0.99


def write_legacy_h5(model, path: Path, *, include_top: bool) -> Path:
    """Keras 2's ``save_weights`` HDF5 layout (``layer_names``, per-layer ``weight_names``).

    Every layer is listed, weightless ones with an empty ``weight_names``, as
    Keras 2 wrote them; weights in the legacy order (trainable, then
    non-trainable: gamma, beta, moving_mean, moving_variance); dataset paths
    ``<layer>/<layer>/<variable>:0`` as TensorFlow-backed Keras 2 named them.
    """
    import h5py

    layers = [layer for layer in model.layers if include_top or layer.name not in TOP_LAYERS]

    def saved_name(layer) -> str:
        return "probs" if layer.name == "predictions" else layer.name

    with h5py.File(path, "w") as handle:
        handle.attrs["layer_names"] = [saved_name(layer).encode() for layer in layers]
        handle.attrs["backend"] = b"tensorflow"
        handle.attrs["keras_version"] = b"2.2.4"
        for layer in layers:
            group = handle.create_group(saved_name(layer))
            weights = layer.trainable_weights + layer.non_trainable_weights
            names = [f"{saved_name(layer)}/{w.name}:0".encode() for w in weights]
            group.attrs["weight_names"] = names
            for name, weight in zip(names, weights, strict=True):
                group.create_dataset(name.decode("utf8"), data=np.asarray(weight))
    return path


def strip_layer_names(source: Path, dest: Path) -> Path:
    """A copy of a Keras 3 ``.weights.h5`` without the per-layer ``name`` (Keras < 3.10)."""
    import h5py

    shutil.copyfile(source, dest)
    with h5py.File(dest, "r+") as handle:
        for group in handle["layers"].values():
            if "vars" in group and "name" in group["vars"].attrs:
                del group["vars"].attrs["name"]
    return dest


def make_reference(
    directory: Path, depth: int, sizes: tuple[int, ...], seed: int = 0, v2: bool = False
) -> KerasReference:
    """Build, randomise, save in all layouts and run keras.applications' ResNet-<depth>[V2]."""
    import keras
    from keras.applications import resnet, resnet_v2

    preprocess_input = (resnet_v2 if v2 else resnet).preprocess_input
    build = getattr(keras.applications, f"ResNet{depth}{'V2' if v2 else ''}")
    stem, out_layer = (f"resnet{depth}v2", "post_relu") if v2 else (f"resnet{depth}",
                                                                      "conv5_block3_out")
    rng = np.random.default_rng(seed)
    images = {s: rng.uniform(0, 255, (2, s, s, 3)).astype(np.float32) for s in sizes}
    full = build(weights=None)
    randomise(full, rng, "_3_conv" if v2 else "_3_bn")
    noise = rng.uniform(0, 255, (4, 224, 224, 3)).astype(np.float32)
    calibrate(full, preprocess_input(noise), rng)

    directory.mkdir(parents=True, exist_ok=True)
    files = {
        "legacy": write_legacy_h5(
            full, directory / f"{stem}_weights_tf_dim_ordering_tf_kernels.h5",
            include_top=True,
        ),
        "legacy_notop": write_legacy_h5(
            full, directory / f"{stem}_weights_tf_dim_ordering_tf_kernels_notop.h5",
            include_top=False,
        ),
        "keras3": directory / f"{stem}.weights.h5",
        "keras3_notop": directory / f"{stem}_notop.weights.h5",
    }
    full.save_weights(files["keras3"])
    files["keras3_unnamed"] = strip_layer_names(
        files["keras3"], directory / f"{stem}_keras3.9.weights.h5"
    )

    # Keras' own legacy loader reads our Keras 2 file (topologically, as it loads the
    # published files) into a model that accepts any input size.
    notop = build(weights=None, include_top=False, input_shape=(None, None, 3))
    notop.load_weights(files["legacy_notop"])
    notop.save_weights(files["keras3_notop"])

    batch = preprocess_input(images[224].copy())
    pooled_model = keras.Model(
        full.input, [full.get_layer(out_layer).output, full.get_layer("avg_pool").output]
    )
    features_full, pooled = (np.asarray(t) for t in pooled_model(batch))
    dense = full.get_layer("predictions")
    logits = pooled @ np.asarray(dense.kernel) + np.asarray(dense.bias)
    return KerasReference(
        depth=depth,
        files=files,
        images=images,
        features={s: np.asarray(notop(preprocess_input(x.copy()))) for s, x in images.items()},
        features_full=features_full,
        logits=logits,
        probabilities=np.asarray(full(batch)),
        conv_order=[layer.name for layer in full.layers if isinstance(layer, keras.layers.Conv2D)],
        bn_order=[
            layer.name for layer in full.layers
            if isinstance(layer, keras.layers.BatchNormalization)
        ],
    )
