"""torchvision/timm conversion is exact: our backbone reproduces the PyTorch network.

The reference is torchvision's ResNet written out in plain torch (see
``torch_reference``), saved as ``.pth`` (``torch.save``) and ``.safetensors``.
Tolerance: max |ours - ref| <= 1e-4 * max |ref| on the ``layer4`` feature map
(NCHW -> NHWC) and on the logits, at 224 and at an odd size (161: the padding
of the strided 3x3 convs and of the max-pool differ with parity).
"""

from __future__ import annotations

import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from safetensors.numpy import save_file
from support.cli import assert_convert_fails, train_predict_summary
from support.numeric import relative_error
from support.torch_reference import make_reference

from resnet_ft.cli import main
from resnet_ft.conversion.formats import FORMATS_HELP, detect_format
from resnet_ft.models.files import load_model, read_metadata

TOLERANCE = 1e-4
SIZES = (224, 161)
#: torchvision.models.resnet50() has 25,557,032 parameters (BN running statistics are
#: buffers, not parameters); fc holds 2048 * 1000 + 1000 of them.
TORCHVISION_RESNET50_BACKBONE_PARAMS = 25_557_032 - (2048 * 1000 + 1000)


@pytest.fixture(scope="module")
def ref50(module_tmp):
    return make_reference(module_tmp("torch50"), 50, SIZES)


@pytest.fixture(scope="module")
def ref101(module_tmp):
    return make_reference(module_tmp("torch101"), 101, SIZES)


@pytest.fixture(
    scope="module", params=[(50, "pth"), (50, "safetensors"), (101, "safetensors")],
    ids=["resnet50-pth", "resnet50-safetensors", "resnet101-safetensors"],
)
def converted(request, module_tmp):
    """(reference, loaded backbone): one state dict converted once through the CLI."""
    depth, kind = request.param
    reference = request.getfixturevalue(f"ref{depth}")
    out = module_tmp("converted") / "backbone.keras"
    assert main(["convert", str(reference.files[kind]), "-o", str(out), "--include-top"]) == 0
    return reference, load_model(out)




@pytest.mark.parametrize("size", SIZES)
def test_features_and_logits_match_torch(converted, size):
    reference, model = converted
    features, logits = (np.asarray(t) for t in model(reference.images[size]))
    assert features.shape == reference.features[size].shape
    assert relative_error(features, reference.features[size]) <= TOLERANCE
    assert logits.shape == (2, 1000)
    assert relative_error(logits, reference.logits[size]) <= TOLERANCE


def test_spec_records_family_and_normalisation(ref50, tmp_path, cli):
    out = tmp_path / "features.keras"
    result = cli("convert", ref50.files["pth"], "-o", out)
    assert result.code == 0, result.err
    assert "ResNet-50, torchvision family" in result.out
    spec = read_metadata(out)["backbone"]
    assert (spec["family"], spec["depth"], spec["include_top"]) == ("torchvision", 50, False)
    std = np.array([0.229, 0.224, 0.225])
    assert spec["normalization"]["scale"] == pytest.approx(1 / (255 * std))
    assert spec["normalization"]["offset"] == pytest.approx(-np.array([0.485, 0.456, 0.406]) / std)


def test_pth_without_torch(ref50, cli, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    src = ref50.files["pth"]
    assert_convert_fails(
        cli, tmp_path, src,
        f"reading {src} needs PyTorch, which is not installed: pip install torch, "
        "or save the state dict as .safetensors (read without torch)",
    )


class _Payload:
    """Unpickling this calls ``os.system``: what a malicious checkpoint does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_pth_whose_pickle_would_run_code_is_refused(cli, tmp_path):
    """``weights_only`` unpickling: the payload is refused and never runs."""
    marker = tmp_path / "pwned"
    src = tmp_path / "evil.pth"
    torch.save({"conv1.weight": torch.zeros(1), "payload": _Payload(marker)}, src)
    assert_convert_fails(cli, tmp_path, src, f"cannot read checkpoint {src}:")
    assert not marker.exists()


def test_pth_holding_a_training_checkpoint(ref50, cli, tmp_path):
    src = tmp_path / "checkpoint.pth"
    torch.save({"epoch": torch.tensor(3), "state_dict": {"fc.bias": torch.zeros(2)}}, src)
    assert_convert_fails(
        cli, tmp_path, src,
        f"not a state dict: {src} holds a dict with keys epoch, state_dict instead of "
        "names -> tensors (save model.state_dict() itself)",
    )


def test_corrupt_pth(cli, tmp_path):
    src = tmp_path / "resnet50.pth"
    src.write_bytes(np.random.default_rng(0).bytes(2048))
    assert_convert_fails(cli, tmp_path, src, f"cannot read checkpoint {src}: ")


def test_missing_mismatched_and_unexpected_in_one_line(ref50, cli, tmp_path):
    state = {k: v for k, v in ref50.state.items() if k != "layer2.1.bn2.running_var"}
    state["layer2.0.conv2.weight"] = np.zeros((128, 64, 3, 3), np.float32)
    state["layer4.0.extra.weight"] = np.zeros(3, np.float32)
    src = tmp_path / "broken.safetensors"
    save_file(state, str(src))
    assert_convert_fails(
        cli, tmp_path, src,
        f"checkpoint {src} does not match resnet50_torchvision: "
        "1 missing (layer2.1.bn2.running_var); "
        "1 shape mismatch (layer2.0.conv2.weight: expected (3, 3, 128, 128), "
        "found (3, 3, 64, 128) (stored as (128, 64, 3, 3))); 1 unexpected (layer4.0.extra.weight)",
    )


def test_depth_mismatch(ref50, cli, tmp_path):
    src = ref50.files["safetensors"]
    assert_convert_fails(
        cli, tmp_path, src, f"depth mismatch: --depth 152 but {src} holds a ResNet-50",
        extra=("--depth", 152),
    )


def test_state_dict_of_another_model(cli, tmp_path):
    src = tmp_path / "vgg16.safetensors"
    save_file({"features.0.weight": np.zeros((64, 3, 3, 3), np.float32)}, str(src))
    assert_convert_fails(
        cli, tmp_path, src,
        f"not a torchvision/timm ResNet state dict: {src} has no layer3.* keys "
        "(keys: features.0.weight)",
    )


def test_basic_block_resnet(cli, tmp_path):
    src = tmp_path / "resnet34.safetensors"
    save_file({f"layer3.{i}.conv{k}.weight": np.zeros((1, 1, 3, 3), np.float32)
               for i in range(6) for k in (1, 2)}, str(src))
    assert_convert_fails(
        cli, tmp_path, src,
        f"{src} is a basic-block ResNet (no layer*.conv3, as in ResNet-18/34); "
        "only the bottleneck ResNet-50/101/152 are supported",
    )


def test_stage3_length_of_no_resnet_depth(cli, tmp_path):
    src = tmp_path / "resnet_odd.safetensors"
    save_file({f"layer3.{i}.conv3.weight": np.zeros((1, 1, 1, 1), np.float32)
               for i in range(10)}, str(src))
    assert_convert_fails(
        cli, tmp_path, src,
        f"checkpoint {src} has 10 layer3 blocks, which is no ResNet v1 depth "
        "(6: ResNet-50, 23: ResNet-101, 36: ResNet-152)",
    )


def test_unknown_format_lists_accepted_formats(cli, tmp_path):
    src = tmp_path / "weights.bin"
    src.write_bytes(b"not a checkpoint" * 64)
    assert_convert_fails(
        cli, tmp_path, src,
        f"unrecognised checkpoint format: {src} is neither a TF-slim checkpoint nor an HDF5, "
        f"safetensors, PyTorch or numpy .npz file; expected {FORMATS_HELP}",
    )


def test_formats_are_detected_by_content_whatever_the_name(tmp_path):
    tensors = tmp_path / "model.bin"
    save_file({"fc.bias": np.zeros(2, np.float32)}, str(tensors))
    pickle = tmp_path / "pytorch_model.bin"
    torch.save({"fc.bias": torch.zeros(2)}, pickle)
    hdf5 = tmp_path / "weights.data"
    with h5py.File(hdf5, "w") as handle:
        handle["x"] = np.zeros(2)
    assert [detect_format(p) for p in (tensors, pickle, hdf5)] == [
        "safetensors", "torch", "keras"]


def test_train_predict_summary_on_torchvision_backbone(ref50, cli, tmp_path):
    """A torchvision-family backbone goes through train, predict and summary like a slim one."""
    backbone = tmp_path / "backbone.keras"
    assert cli("convert", ref50.files["safetensors"], "-o", backbone).code == 0
    summary = train_predict_summary(cli, tmp_path, backbone)
    frozen_parameters = summary["non_trainable"] - summary["bn_statistics"]
    assert frozen_parameters == TORCHVISION_RESNET50_BACKBONE_PARAMS
