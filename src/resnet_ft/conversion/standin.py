"""Stand-in checkpoints with random weights, in the official slim format and names.

Pretrained weights cannot be downloaded everywhere (CI, offline machines). The
offline demo and the tests use a checkpoint that is byte-for-byte the same
*format* as the official ``resnet_v1_<depth>.ckpt`` — same variable names,
shapes and file layout — filled with random weights and random, non-trivial
BatchNorm statistics (identity statistics would hide BN-epsilon and
ordering bugs). The numbers are scaled so activations stay in a sane range
through 100+ layers, which keeps equivalence tests meaningful.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from resnet_ft.conversion.formats import slim
from resnet_ft.models.architectures import build_resnet
from resnet_ft.models.families import SLIM


def random_weights(shapes: Mapping[str, tuple[int, ...]], seed: int = 0) -> dict[str, np.ndarray]:
    """Random values for slim-named variables, chosen by the variable's role.

    Kernels are He-normal; BatchNorm statistics are random but positive where
    they must be; the last BN of each residual branch (``conv3``) gets a small
    gamma so the residual stream grows slowly with depth, as in trained nets.
    """
    rng = np.random.default_rng(seed)
    values: dict[str, np.ndarray] = {}
    for name in sorted(shapes):
        shape = tuple(int(d) for d in shapes[name])
        role = name.rsplit("/", 1)[-1]
        if role == "weights":
            fan_in = int(np.prod(shape[:-1]))
            value = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
        elif role == "gamma":
            value = rng.uniform(0.5, 1.5, shape) * (0.2 if "/conv3/" in name else 1.0)
        elif role == "moving_variance":
            value = rng.uniform(0.5, 2.0, shape)
        elif role in ("beta", "moving_mean"):
            value = rng.normal(0.0, 0.2, shape)
        elif role == "biases":
            value = rng.normal(0.0, 0.05, shape)
        else:
            raise ValueError(f"no random rule for variable {name}")
        values[name] = value.astype(np.float32)
    return values


def slim_variable_shapes(depth: int, num_classes: int = 1000) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the official slim checkpoint's model variables."""
    return {name: value.shape for name, value in _slim_values(_model(depth, num_classes)).items()}


def _model(depth: int, num_classes: int):
    return build_resnet(SLIM, depth, include_top=num_classes > 0, num_classes=num_classes)


def _slim_values(model) -> dict[str, np.ndarray]:
    """The model's variables under their slim names, in slim layout."""
    scope = model.name
    values: dict[str, np.ndarray] = {}
    for layer in model.layers:
        for variable in layer.weights:
            value = np.asarray(variable)
            if layer.name == "logits" and variable.name == "kernel":
                value = value.reshape(1, 1, *value.shape)  # slim's logits are a 1x1 conv
            values[slim.slim_key(scope, layer.name, variable.name)] = value
    return values


def calibrated_model(depth: int, num_classes: int = 1000, seed: int = 0):
    """A random ResNet whose BN statistics are close to, not equal to, real batch statistics.

    Purely random statistics let activations grow by orders of magnitude over
    100 layers; a stand-in that is fed to training should produce features of
    the scale a pretrained network gives. Each BN layer's moving mean and
    variance are set from its input on a batch of noise images, then
    perturbed, while the network is run once, layer by layer.
    """
    import keras

    model = _model(depth, num_classes)
    rng = np.random.default_rng(seed)
    shapes = {name: value.shape for name, value in _slim_values(model).items()}
    values = random_weights(shapes, seed)
    for layer in model.layers:
        for variable in layer.weights:
            value = values[slim.slim_key(model.name, layer.name, variable.name)]
            variable.assign(value.reshape(variable.shape))
    computed: dict[int, object] = {}
    pixels = rng.uniform(0, 255, (4, 96, 96, 3)).astype(np.float32)
    for layer in model.layers:
        node = layer._inbound_nodes[0]
        if not node.input_tensors:  # the input layer
            computed[id(node.output_tensors[0])] = keras.ops.convert_to_tensor(pixels)
            continue
        inputs = [computed[id(t)] for t in node.input_tensors]
        if isinstance(layer, keras.layers.BatchNormalization):
            data = np.asarray(inputs[0])
            mean, var = data.mean(axis=(0, 1, 2)), data.var(axis=(0, 1, 2))
            layer.moving_mean.assign(mean + rng.normal(0, 0.1, mean.shape) * np.sqrt(var))
            layer.moving_variance.assign(var * rng.uniform(0.8, 1.25, var.shape) + 1e-3)
        output = layer(inputs if len(inputs) > 1 else inputs[0])
        for tensor, value in zip(node.output_tensors, keras.tree.flatten(output), strict=True):
            computed[id(tensor)] = value
    return model


def write_standin_checkpoint(
    prefix: str | Path, depth: int = 101, *, seed: int = 0, num_classes: int = 1000
) -> Path:
    """Write a random-weight ``resnet_v1_<depth>`` checkpoint at ``prefix`` (V2 format)."""
    values = _slim_values(calibrated_model(depth, num_classes, seed))
    values["global_step"] = np.array(0, dtype=np.int64)
    slim.write(values, Path(prefix))
    return Path(prefix)
