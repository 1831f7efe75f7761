"""The ONNX conversion's setting of tf2onnx, and the scoped environment it uses.

The files it writes are checked against Keras in tests/e2e/test_export_onnx_openvino.py.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import keras
import pytest

from resnet_ft.errors import OutputError
from resnet_ft.exports.formats import onnx as onnx_format
from resnet_ft.util.native import environment

SWITCH = "TF2ONNX_CATCH_ERRORS"


def _tiny_predictor() -> SimpleNamespace:
    inputs = keras.Input((8, 8, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(pooled))
    return SimpleNamespace(model=model, preprocessing=SimpleNamespace(image_size=8))


def test_tf2onnx_optimises_without_copying_the_graph_per_pass(monkeypatch, tmp_path):
    from tf2onnx import optimizer

    monkeypatch.delenv(SWITCH, raising=False)
    real, asked = optimizer.optimize_graph, []

    def spy(graph, catch_errors=True, optimizers=None):
        asked.append(catch_errors)
        return real(graph, catch_errors, optimizers)

    monkeypatch.setattr(optimizer, "optimize_graph", spy)
    onnx_format._convert(_tiny_predictor(), tmp_path / "m.onnx")
    assert asked == [False]  # True deep-copies the graph, weights included, before each pass
    assert (tmp_path / "m.onnx").stat().st_size > 0
    assert SWITCH not in os.environ


def test_a_failing_conversion_is_one_error_and_leaves_the_environment(monkeypatch, tmp_path):
    from tf2onnx import convert

    monkeypatch.setenv(SWITCH, "before")

    def fail(*_, **__):
        assert os.environ[SWITCH] == "FALSE"
        raise ValueError("pass failed\nsecond line")

    monkeypatch.setattr(convert, "from_function", fail)
    with pytest.raises(OutputError, match=r"^ONNX conversion failed: pass failed") as caught:
        onnx_format._convert(_tiny_predictor(), tmp_path / "m.onnx")
    assert "\n" not in str(caught.value)
    assert os.environ[SWITCH] == "before"


def test_environment_sets_for_the_block_and_restores_absent_and_present(monkeypatch):
    monkeypatch.setenv("RESNET_FT_T1", "kept")
    monkeypatch.delenv("RESNET_FT_T2", raising=False)
    with pytest.raises(RuntimeError), environment({"RESNET_FT_T1": "a", "RESNET_FT_T2": "b"}):
        assert (os.environ["RESNET_FT_T1"], os.environ["RESNET_FT_T2"]) == ("a", "b")
        raise RuntimeError
    assert os.environ["RESNET_FT_T1"] == "kept" and "RESNET_FT_T2" not in os.environ
