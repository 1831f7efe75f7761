"""ResNet v2 and BiT conversions equal their reference implementations.

References (tests/support): tf-slim's own ``resnet_v2_<depth>`` graph in a TF1
session, keras.applications' own ``ResNet<depth>V2`` (saved in both HDF5 layouts),
and a plain-PyTorch BiT written from the paper and timm's layout,
whose outputs are computed in float64. Random weights and statistics; features
(after the final norm + ReLU) and logits at 224 and at an odd size (193, where
TF's SAME pool pads differently); max |ours - ref| <= 1e-4 x max |ref|.
"""

from __future__ import annotations

import numpy as np
import pytest
from support.numeric import relative_error

from resnet_ft.models.files import load_backbone, load_imagenet_classifier

TOLERANCE = 1e-4
SIZES = (224, 193)


@pytest.fixture(scope="module")
def slim50(module_tmp):
    from support.slim_v2_reference import make_reference

    return make_reference(module_tmp("slimv2") / "ckpt", 50, SIZES)


@pytest.fixture(scope="module")
def bit50(module_tmp):
    from support.bit_reference import GOOGLE_WS_EPS, make_reference

    folder = module_tmp("bit")
    timm_ref, _ = make_reference(folder / "timm", 50, SIZES, num_classes=10)
    google_ref, _ = make_reference(folder / "google", 50, SIZES, num_classes=10,
                                   ws_eps=GOOGLE_WS_EPS)
    return {"safetensors": timm_ref, "npz": google_ref}


@pytest.fixture(scope="module")
def keras50(module_tmp):
    from support.keras_reference import make_reference

    return make_reference(module_tmp("kerasv2"), 50, SIZES, v2=True)


@pytest.fixture(scope="module")
def sources(slim50, bit50, keras50):
    """``kind -> (reference, the file to convert)``."""
    return {"slim": (slim50, slim50.prefix),
            "keras": (keras50, keras50.files["legacy"]),
            **{kind: (ref, ref.files[kind]) for kind, ref in bit50.items()}}


@pytest.fixture(scope="module")
def converted(sources, module_tmp):
    """``converted(kind) -> (reference, outputs by size, file)``: each converted once (CLI)."""
    from resnet_ft.cli import main

    folder, made = module_tmp("v2-converted"), {}

    def get(kind: str):
        if kind not in made:
            reference, source = sources[kind]
            out = folder / f"{kind}.keras"
            assert main(["convert", str(source), "-o", str(out), "--include-top"]) == 0
            backbone, classifier = load_backbone(out), load_imagenet_classifier(out)
            made[kind] = reference, {size: (np.asarray(backbone(reference.images[size])),
                                            np.asarray(classifier(reference.images[size])))
                                     for size in SIZES}, out
        return made[kind]

    return get


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("kind", ["slim", "keras", "safetensors", "npz"])
def test_features_and_logits_match_the_reference(converted, kind, size):
    reference, outputs, _ = converted(kind)
    features, logits = outputs[size]
    assert features.shape == reference.features[size].shape
    assert features.shape[-1] == 2048 and features.shape[1] == -(-size // 32)
    assert relative_error(features, reference.features[size]) <= TOLERANCE
    if kind == "keras":  # keras.applications' classifier takes 224 px only
        if size == 224:
            assert relative_error(logits, reference.logits) <= TOLERANCE
            assert relative_error(features, reference.features_full) <= TOLERANCE
    else:
        assert relative_error(logits, reference.logits[size]) <= TOLERANCE


def test_families_and_heads_are_told_from_the_files(cli, sources, tmp_path):
    expected = {"slim": ("slim_v2", 1001), "keras": ("keras_v2", 1000),
                "safetensors": ("bit", 10), "npz": ("bit_google", 10)}
    for kind, (family, classes) in expected.items():
        source = sources[kind][1]
        result = cli("convert", source, "-o", tmp_path / f"{kind}.keras", "--include-top")
        assert result.code == 0, result.err
        assert result.out == (f"wrote {tmp_path / f'{kind}.keras'} (ResNet-50, {family} family, "
                              f"with {classes}-way classifier)\n")


def test_the_epsilon_of_each_bit_layout_is_its_codes(bit50, converted):
    """Both references hold the same weights and differ only in the standardisation
    epsilon (timm 1e-8, Google 1e-10): on these kernels that is visible, so a layout read
    with the other code's epsilon would fail the test above."""
    timm_features = converted("safetensors")[1][224][0]
    assert relative_error(timm_features, bit50["npz"].features[224]) > 10 * TOLERANCE
    assert relative_error(bit50["safetensors"].features[224], bit50["npz"].features[224]) \
        > 10 * TOLERANCE


@pytest.mark.parametrize("kind", ["slim", "keras", "safetensors"])
def test_the_folded_extraction_copy_computes_the_same(converted, kind):
    """BN folded where a convolution precedes it, kernels standardised once (BiT)."""
    from resnet_ft.models.files import backbone_metadata
    from resnet_ft.models.folding import folded_copy

    reference, outputs, path = converted(kind)
    backbone = load_backbone(path)
    folded = folded_copy(backbone, backbone_metadata(path))
    assert not any(type(layer).__name__ == "StdConv2D" for layer in folded.layers)
    ours = np.asarray(folded(reference.images[193]))
    assert relative_error(ours, outputs[193][0]) <= TOLERANCE
    assert relative_error(ours, reference.features[193]) <= TOLERANCE


@pytest.mark.parametrize("layout", ["legacy_notop", "keras3", "keras3_unnamed"])
def test_every_keras_v2_layout_converts_exactly(keras50, layout, cli, tmp_path):
    """Keras 2 without classifier, Keras 3 with names, and Keras < 3.10's unnamed file (told
    from v1 by its count of norms, named by its layer order)."""
    out = tmp_path / "backbone.keras"
    result = cli("convert", keras50.files[layout], "-o", out)
    assert result.code == 0, result.err
    assert "(ResNet-50, keras_v2 family" in result.out
    features = np.asarray(load_backbone(out)(keras50.images[193]))
    assert relative_error(features, keras50.features[193]) <= TOLERANCE


def test_keras_v2_layer_order_is_keras_order(keras50):
    from resnet_ft.conversion.formats.keras_h5 import keras3_layer_order

    assert keras3_layer_order(50, "conv", v2=True) == keras50.conv_order
    assert keras3_layer_order(50, "bn", v2=True) == keras50.bn_order


def test_a_keras_resnet101_v2_converts_exactly(cli, module_tmp, tmp_path):
    """Depth 101 (23 units in block3): the unit plan and the name map beyond ResNet-50."""
    from support.keras_reference import make_reference

    reference = make_reference(module_tmp("kerasv2-101"), 101, SIZES, v2=True)
    out = tmp_path / "backbone.keras"
    result = cli("convert", reference.files["legacy_notop"], "-o", out)
    assert result.code == 0, result.err
    assert "(ResNet-101, keras_v2 family" in result.out
    features = np.asarray(load_backbone(out)(reference.images[193]))
    assert relative_error(features, reference.features[193]) <= TOLERANCE
