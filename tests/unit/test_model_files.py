"""Saving and loading a model file costs the model's own layers, and no more."""

from __future__ import annotations

import threading

import numpy as np


def _in_a_new_thread(work):
    """Run ``work()`` where Keras's thread-local state is fresh, as in a new process."""
    result: list = []
    thread = threading.Thread(target=lambda: result.append(work()))
    thread.start()
    thread.join()
    return result[0]


def test_save_and_load_build_no_throw_away_layers(tmp_path, monkeypatch):
    """Keras's saving walk lists each layer's attributes against a reference ``Layer``;
    unless the skip-set it computes is found again, it builds one per layer visited
    (181 per ResNet-50 save or load). Saving builds none per layer, loading the model's own."""
    import keras
    from keras.src.layers.layer import Layer

    from resnet_ft.models.files import load_model, save_model

    inputs = keras.Input((8,))
    outputs = inputs
    for width in (16, 16, 16, 16, 4):
        outputs = keras.layers.Dense(width, activation="relu")(outputs)
    model = keras.Model(inputs, outputs)
    built = []
    original = Layer.__init__

    def counted(self, *args, **kwargs):
        built.append(type(self).__name__)
        original(self, *args, **kwargs)

    monkeypatch.setattr(Layer, "__init__", counted)

    def save_and_load():
        save_model(model, tmp_path / "m.keras", {"note": 1})
        saved = list(built)
        return saved, load_model(tmp_path / "m.keras")

    saved, loaded = _in_a_new_thread(save_and_load)
    # the reference layers: a few per thread (one per kind of object walked), not per layer
    assert saved == ["Layer"] * saved.count("Layer") and saved.count("Layer") <= 3
    assert sorted(built[len(saved):]) == ["Dense"] * 5 + ["Functional", "InputLayer"]
    x = np.random.default_rng(0).normal(size=(3, 8)).astype("float32")
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(model(x)))
