"""The head spec: what each kind builds, logits out and softmax once, legacy heads, pruning."""

from __future__ import annotations

import numpy as np
import pytest

from resnet_ft.errors import InputError
from resnet_ft.models.head import (
    HEADS,
    HeadSpec,
    assemble,
    keep_units,
    logits,
    probabilities,
    spec_of,
)

RNG = np.random.default_rng(3)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize(("kind", "widths", "dense"), [
    ("mlp", (16, 3), ["head.dense", "head.logits"]),
    ("linear", (3,), ["head.logits"]),
])
def test_each_kind_builds_its_dense_layers_and_outputs_logits(kind, widths, dense):
    spec = HeadSpec(3, kind, units=16, dropout=0.25)
    head = spec.build(channels=8)
    assert spec.widths == widths
    assert [layer.name for layer in head.layers if hasattr(layer, "units")] == dense
    assert all(layer.rate == 0.25 for layer in head.layers if hasattr(layer, "rate"))
    x = RNG.normal(size=(4, 8)).astype(np.float32)
    out = np.asarray(head(x, training=False), np.float64)
    kernels = [layer.get_weights() for layer in head.layers if hasattr(layer, "units")]
    expected = x.astype(np.float64)
    for index, (kernel, bias) in enumerate(kernels):
        expected = expected @ kernel + bias
        if index < len(kernels) - 1:
            expected = np.maximum(expected, 0)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)  # logits: no softmax
    assert spec_of(head) == HeadSpec(3, kind, units=16 if kind == "mlp" else 1, dropout=0.25)


def test_every_registered_kind_ends_in_the_classes():
    for kind in HEADS:
        assert HeadSpec(7, kind, units=5).widths[-1] == 7


def test_the_classifier_applies_the_softmax_once():
    import keras

    inputs = keras.Input((None, None, 3))
    backbone = keras.Model(inputs, keras.layers.Conv2D(8, 1, name="conv1")(inputs),
                           name="tiny")
    head = HeadSpec(3, "mlp", units=4, dropout=0.0).build(channels=8)
    classifier = assemble(backbone, head, 6)
    pixels = RNG.uniform(0, 255, (2, 6, 6, 3)).astype(np.float32)
    pooled = np.asarray(backbone(pixels)).mean(axis=(1, 2))
    probs = np.asarray(classifier(pixels))
    np.testing.assert_allclose(probs, _softmax(np.asarray(head(pooled), np.float64)),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(probabilities(head, pooled), probs, rtol=1e-5, atol=1e-6)


def test_a_legacy_head_with_its_softmax_inside_gives_the_same_logits():
    """Runs saved before the softmax moved out end in ``head.probs``: read, never re-softmaxed."""
    import keras

    modern = HeadSpec(3, "mlp", units=4, dropout=0.0).build(channels=8)
    legacy = keras.Sequential([keras.Input((8,)), keras.layers.Dropout(0.0),
                               keras.layers.Dense(4, activation="relu", name="head.dense"),
                               keras.layers.Dropout(0.0),
                               keras.layers.Dense(3, activation="softmax", name="head.probs")],
                              name="head")
    legacy.set_weights(modern.get_weights())
    x = RNG.normal(size=(5, 8)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(logits(legacy, x)), np.asarray(modern(x)), atol=1e-5)
    np.testing.assert_allclose(probabilities(legacy, x), np.asarray(legacy(x)), atol=1e-6)
    inputs = keras.Input((None, None, 3))
    backbone = keras.Model(inputs, keras.layers.Conv2D(8, 1, name="conv1")(inputs))
    assert not any(layer.name == "probs" for layer in assemble(backbone, legacy, 6).layers)
    assert spec_of(legacy) == HeadSpec(3, "mlp", units=4, dropout=0.0)


def test_pruning_needs_a_hidden_layer():
    with pytest.raises(InputError, match="a linear head has none"):
        keep_units(HeadSpec(3, "linear").build(channels=8), np.arange(2))
