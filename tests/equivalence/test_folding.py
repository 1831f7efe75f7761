"""The BN-folded copy used for extraction computes what the backbone computes.

Tolerance: folding reorders float32 arithmetic (kernel * scale instead of
BN after the conv), so features agree to float32 round-off: max |difference|
<= 1e-5 x max |features| (measured 6.7e-7 on the slim ResNet-101 stand-in).
"""

from __future__ import annotations

import numpy as np
import pytest

from resnet_ft.errors import InputError
from resnet_ft.models.architectures import build_resnet
from resnet_ft.models.families import FAMILIES
from resnet_ft.models.folding import fold, folded_copy


def _randomise(model, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        shape = tuple(variable.shape)
        if variable.name == "moving_variance":
            value = rng.uniform(0.5, 2.0, shape)
        elif variable.name == "gamma":
            value = rng.uniform(0.5, 1.5, shape) * 0.3
        elif variable.name in ("beta", "moving_mean", "bias"):
            value = rng.normal(0, 0.2, shape)
        else:
            value = rng.normal(0, np.sqrt(1.0 / np.prod(shape[:-1])), shape)
        variable.assign(value.astype(np.float32))


@pytest.mark.parametrize("family", ["slim", "keras", "torchvision"])
def test_folded_copy_matches(family):
    model = build_resnet(FAMILIES[family], 50)
    _randomise(model, 1)
    folded = folded_copy(model, {"family": family, "depth": 50})
    assert not [layer for layer in folded.layers if "BatchNorm" in layer.name]
    pixels = np.random.default_rng(2).uniform(0, 255, (2, 67, 67, 3)).astype(np.float32)
    ours, reference = np.asarray(folded(pixels)), np.asarray(model(pixels, training=False))
    assert np.abs(ours - reference).max() <= 1e-5 * np.abs(reference).max()


def test_fold_formula_against_batchnorm_by_hand():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 3))  # conv outputs already summed over the kernel: a 1x1 conv
    kernel, bias = rng.normal(size=(1, 1, 3, 4)), rng.normal(size=4)
    gamma, beta = rng.uniform(0.5, 2, 4), rng.normal(size=4)
    mean, variance, eps = rng.normal(size=4), rng.uniform(0.1, 3, 4), 1e-3
    conv = x @ kernel[0, 0] + bias
    expected = gamma * (conv - mean) / np.sqrt(variance + eps) + beta
    new_kernel, new_bias = fold([kernel, bias], [gamma, beta, mean, variance], eps)
    np.testing.assert_allclose(x @ new_kernel[0, 0] + new_bias, expected, rtol=1e-5, atol=1e-5)
    # a conv without bias folds as if its bias were zero
    no_bias = fold([kernel], [gamma, beta, mean, variance], eps)
    np.testing.assert_allclose(x @ no_bias[0][0, 0] + no_bias[1],
                               gamma * (x @ kernel[0, 0] - mean) / np.sqrt(variance + eps) + beta,
                               rtol=1e-5, atol=1e-5)


def test_a_backbone_that_does_not_say_its_topology_is_refused():
    """Folding rebuilds the network from family and depth: without them, one line, no guess."""
    model = build_resnet(FAMILIES["slim"], 50)
    with pytest.raises(InputError, match="does not say its family and depth"):
        folded_copy(model, {"family": "slim"})
