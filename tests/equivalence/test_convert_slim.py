"""TF-slim conversion is exact: our Keras model reproduces tf-slim's own graph.

Tolerance: max |ours - slim| <= 1e-4 * max |slim| on the block4 feature map
and the logits, at 224 and at an odd input size (the padding traps differ
with parity: slim's conv2d_same vs "SAME" max-pool).
"""

from __future__ import annotations

import numpy as np
import pytest
from support.numeric import relative_error
from support.slim_reference import make_reference

from resnet_ft.models.files import load_backbone, load_imagenet_classifier, read_metadata

TOLERANCE = 1e-4
SIZES = (224, 161)


@pytest.fixture(scope="session", params=[50, 101], ids=["resnet50", "resnet101"])
def reference(request, tmp_path_factory):
    return make_reference(tmp_path_factory.mktemp(f"slim{request.param}"), request.param, SIZES)


@pytest.fixture(scope="session")
def converted(reference, tmp_path_factory):
    """The reference checkpoint converted once with --include-top through the CLI entry point."""
    from resnet_ft.cli import main

    out = tmp_path_factory.mktemp("converted") / "backbone.keras"
    assert main(["convert", str(reference.prefix), "-o", str(out), "--include-top"]) == 0
    return out


@pytest.fixture(scope="session")
def loaded(converted):
    """The converted file's feature extractor and ImageNet classifier, each loaded once."""
    return load_backbone(converted), load_imagenet_classifier(converted)


@pytest.mark.parametrize("size", SIZES)
def test_block4_features_match_slim(reference, loaded, size):
    backbone, _ = loaded
    ours = np.asarray(backbone(reference.images[size]))
    assert ours.shape == reference.block4[size].shape
    assert relative_error(ours, reference.block4[size]) <= TOLERANCE


@pytest.mark.parametrize("size", SIZES)
def test_logits_match_slim(reference, loaded, size):
    _, classifier = loaded
    ours = np.asarray(classifier(reference.images[size]))
    assert ours.shape == (2, 1000)
    assert relative_error(ours, reference.logits[size]) <= TOLERANCE


def test_features_only_conversion_matches(reference, tmp_path, cli):
    out = tmp_path / "features.keras"
    result = cli("convert", reference.prefix.with_suffix(".ckpt.index"), "-o", out)
    assert result.code == 0, result.err
    backbone = load_backbone(out)
    assert len(backbone.outputs) == 1
    ours = np.asarray(backbone(reference.images[224]))
    assert relative_error(ours, reference.block4[224]) <= TOLERANCE
    spec = read_metadata(out)
    assert spec["backbone"]["family"] == "slim"
    assert spec["backbone"]["include_top"] is False


def test_directory_source_and_depth_detection(reference, tmp_path, cli):
    out = tmp_path / "from_dir.keras"
    result = cli("convert", reference.prefix.parent, "-o", out)
    assert result.code == 0, result.err
    depth = int(reference.prefix.name.split("_")[-1].split(".")[0])
    assert f"ResNet-{depth}" in result.out
    assert read_metadata(out)["backbone"]["depth"] == depth


def test_layer_names_mirror_slim_scopes(loaded):
    names = {layer.name for layer in loaded[0].layers}
    assert {"conv1", "conv1.BatchNorm", "pool1", "block4.unit_3.bottleneck_v1.conv3"} <= names
    assert "block1.unit_1.bottleneck_v1.shortcut.BatchNorm" in names


def test_resnet152_at_an_odd_size(tmp_path, cli):
    """Depth 152: the block counts (3, 8, 36, 3) are exactly what a shared table would hide."""
    reference = make_reference(tmp_path, 152, (97,))
    out = tmp_path / "r152.keras"
    result = cli("convert", reference.prefix, "-o", out)
    assert result.code == 0, result.err
    assert "ResNet-152" in result.out
    ours = np.asarray(load_backbone(out)(reference.images[97]))
    assert ours.shape == reference.block4[97].shape == (2, 4, 4, 2048)
    assert relative_error(ours, reference.block4[97]) <= TOLERANCE


def test_v1_single_file_checkpoint(tmp_path, cli):
    """The 2016 release's format: one ``resnet_v1_50.ckpt`` file, no ``.index``."""
    reference = make_reference(tmp_path, 50, (161,), v1_format=True)
    assert reference.prefix.is_file()
    assert not reference.prefix.with_name(reference.prefix.name + ".index").exists()
    out = tmp_path / "v1.keras"
    result = cli("convert", reference.prefix, "-o", out, "--include-top")
    assert result.code == 0, result.err
    assert relative_error(np.asarray(load_backbone(out)(reference.images[161])),
                          reference.block4[161]) <= TOLERANCE
    assert relative_error(np.asarray(load_imagenet_classifier(out)(reference.images[161])),
                          reference.logits[161]) <= TOLERANCE
