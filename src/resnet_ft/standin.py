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

from resnet_ft.architectures import SLIM, build_resnet
from resnet_ft.checkpoints import slim


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
    model = build_resnet(SLIM, depth, include_top=num_classes > 0, num_classes=num_classes)
    scope = SLIM.model_name(depth)
    shapes: dict[str, tuple[int, ...]] = {}
    for layer in model.layers:
        for variable in layer.weights:
            shape = tuple(variable.shape)
            if layer.name == "logits" and variable.name == "kernel":
                shape = (1, 1, *shape)  # slim's logits are a 1x1 convolution
            shapes[slim.slim_key(scope, layer.name, variable.name)] = shape
    return shapes


def write_standin_checkpoint(
    prefix: str | Path, depth: int = 101, *, seed: int = 0, num_classes: int = 1000
) -> Path:
    """Write a random-weight ``resnet_v1_<depth>`` checkpoint at ``prefix`` (V2 format)."""
    values = random_weights(slim_variable_shapes(depth, num_classes), seed)
    values["global_step"] = np.array(0, dtype=np.int64)
    slim.write(values, Path(prefix))
    return Path(prefix)
