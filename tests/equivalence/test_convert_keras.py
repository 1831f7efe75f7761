"""keras.applications conversion is exact: our backbone reproduces Keras' own ResNet.

The reference is ``keras.applications.ResNet{50,101}`` itself (see
``keras_reference``), saved in the Keras 2 HDF5 layout of the published files
and in the Keras 3 ``.weights.h5`` layout. Tolerance: max |ours - ref| <=
1e-4 * max |ref| on ``conv5_block3_out`` and on the logits (the pre-softmax
output of Keras' ``predictions``), at 224 and at an odd size (161; features
only there, since Keras' classifier model is fixed to 224).
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from support.cli import assert_convert_fails, train_predict_summary
from support.keras_reference import make_reference, strip_layer_names
from support.numeric import relative_error

from resnet_ft.cli import main
from resnet_ft.conversion.formats.keras_h5 import keras3_layer_order
from resnet_ft.models.files import load_model, read_metadata

TOLERANCE = 1e-4
SIZES = (224, 161)
#: keras.applications.ResNet50(include_top=False).count_params(), as Keras reports it.
KERAS_RESNET50_NOTOP_PARAMS = 23_587_712


@pytest.fixture(scope="module")
def ref50(module_tmp):
    return make_reference(module_tmp("keras50"), 50, SIZES)


@pytest.fixture(scope="module")
def ref101(module_tmp):
    return make_reference(module_tmp("keras101"), 101, SIZES)


@pytest.fixture(scope="module", params=[50, 101], ids=["resnet50", "resnet101"])
def reference(request):
    return request.getfixturevalue(f"ref{request.param}")


@pytest.fixture(
    scope="module", params=[(50, "legacy"), (50, "keras3"), (101, "legacy")],
    ids=["resnet50-legacy", "resnet50-keras3", "resnet101-legacy"],
)
def converted(request, module_tmp):
    """(reference, loaded backbone): one full file converted once through the CLI."""
    depth, layout = request.param
    reference = request.getfixturevalue(f"ref{depth}")
    out = module_tmp("converted") / "backbone.keras"
    assert main(["convert", str(reference.files[layout]), "-o", str(out), "--include-top"]) == 0
    return reference, load_model(out)



def _softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)



def test_reference_legacy_file_is_what_keras_loads(reference):
    """Keras' legacy loader read our Keras 2 file into the notop model: same features."""
    assert relative_error(reference.features[224], reference.features_full) <= 1e-6


def test_keras3_layer_order_is_keras_order(reference):
    assert keras3_layer_order(reference.depth, "conv") == reference.conv_order
    assert keras3_layer_order(reference.depth, "bn") == reference.bn_order


@pytest.mark.parametrize("size", SIZES)
def test_features_match_keras(converted, size):
    reference, model = converted
    features, _ = model(reference.images[size])
    assert features.shape == reference.features[size].shape
    assert relative_error(np.asarray(features), reference.features[size]) <= TOLERANCE


def test_logits_match_keras(converted):
    reference, model = converted
    _, logits = model(reference.images[224])
    logits = np.asarray(logits)
    assert logits.shape == (2, 1000)
    assert relative_error(logits, reference.logits) <= TOLERANCE
    assert relative_error(_softmax(logits), reference.probabilities) <= TOLERANCE


@pytest.mark.parametrize("layout", ["legacy_notop", "keras3_notop", "keras3_unnamed"])
def test_other_layouts_convert_exactly(ref50, layout, tmp_path, cli):
    out = tmp_path / "backbone.keras"
    result = cli("convert", ref50.files[layout], "-o", out)
    assert result.code == 0, result.err
    assert "ResNet-50, keras family" in result.out
    model = load_model(out)
    assert len(model.outputs) == 1
    assert relative_error(np.asarray(model(ref50.images[161])), ref50.features[161]) <= TOLERANCE
    spec = read_metadata(out)["backbone"]
    assert (spec["family"], spec["depth"], spec["include_top"]) == ("keras", 50, False)
    assert spec["normalization"]["offset"] == pytest.approx([-123.68, -116.779, -103.939])


def test_include_top_needs_a_top(ref50, cli, tmp_path):
    assert_convert_fails(
        cli, tmp_path, ref50.files["legacy_notop"], "--include-top", "no classifier",
        extra=("--include-top",),
    )


def test_depth_mismatch(ref50, cli, tmp_path):
    src = ref50.files["legacy"]
    assert_convert_fails(
        cli, tmp_path, src, f"depth mismatch: --depth 101 but {src} holds a ResNet-50",
        extra=("--depth", 101),
    )


def test_h5_of_another_model(cli, tmp_path):
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="dense"),
                              keras.layers.Dense(2, name="dense_1")])  # not order-dependent
    src = tmp_path / "small.weights.h5"
    model.save_weights(src)
    assert_convert_fails(
        cli, tmp_path, src,
        f"not a keras.applications ResNet: {src} has no conv4_block* layers "
        "(layers with weights: dense, dense_1)",
    )


def test_unnamed_keras3_file_of_another_model(cli, tmp_path):
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.save_weights(tmp_path / "small.weights.h5")
    src = strip_layer_names(tmp_path / "small.weights.h5", tmp_path / "old.weights.h5")
    assert_convert_fails(
        cli, tmp_path, src,
        f"not a keras.applications ResNet: {src} records no layer names (Keras < 3.10) "
        "and its 0 Conv2D layers fit no ResNet depth",
    )


def test_hdf5_that_is_no_keras_file(cli, tmp_path):
    src = tmp_path / "data.h5"
    with h5py.File(src, "w") as handle:
        handle["pixels"] = np.zeros(3)
    assert_convert_fails(
        cli, tmp_path, src,
        f"not a Keras weights file: {src} is HDF5 but has neither a Keras 2 'layer_names' list "
        "nor a Keras 3 'layers' group (top-level entries: pixels)",
    )


def test_truncated_h5(ref50, cli, tmp_path):
    src = tmp_path / "resnet50_notop.h5"
    with ref50.files["legacy_notop"].open("rb") as handle:
        src.write_bytes(handle.read(1 << 20))
    assert_convert_fails(cli, tmp_path, src, f"cannot read checkpoint {src}: ")


def test_missing_weight_is_reported_by_keras_name(ref50, cli, tmp_path):
    """A Keras 2 file whose conv3_block2_2_conv lost its bias: one 'missing' line, Keras names."""
    src = tmp_path / "resnet50_notop.h5"
    src.write_bytes(ref50.files["legacy_notop"].read_bytes())
    with h5py.File(src, "r+") as handle:
        group = handle["conv3_block2_2_conv"]
        group.attrs["weight_names"] = [b"conv3_block2_2_conv/kernel:0"]
        del group["conv3_block2_2_conv/bias:0"]
    assert_convert_fails(
        cli, tmp_path, src,
        f"checkpoint {src} does not match resnet50_keras: 1 missing (conv3_block2_2_conv/bias)",
    )


def test_train_predict_summary_on_keras_backbone(ref50, cli, tmp_path):
    """A keras-family backbone goes through train, predict and summary like a slim one."""
    backbone = tmp_path / "backbone.keras"
    assert cli("convert", ref50.files["keras3_notop"], "-o", backbone).code == 0
    summary = train_predict_summary(cli, tmp_path, backbone)
    assert summary["non_trainable"] == KERAS_RESNET50_NOTOP_PARAMS
