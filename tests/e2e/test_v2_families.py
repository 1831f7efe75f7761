"""A BiT backbone (ResNet v2, GroupNorm, weight standardisation) through the whole workflow.

The counts come from the architecture, written out here: no norm statistics
(GroupNorm has none), a gamma and beta per channel of every GroupNorm, no
convolution biases.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from support.cli import SMALL
from support.http_server import server_fixture  # noqa: F401 - the `server` fixture

WIDTHS, UNITS50 = (64, 128, 256, 512), (3, 4, 6, 3)


def bit50_stages() -> dict[str, int]:
    """Parameters per stage of BiT-R50x1 without its head (``postnorm`` belongs to block4)."""
    stages, channels = {"stem": 7 * 7 * 3 * 64}, 64
    for index, (units, width) in enumerate(zip(UNITS50, WIDTHS, strict=True)):
        total = 0
        for unit in range(units):
            total += 2 * channels  # the pre-activation GroupNorm
            if unit == 0:
                total += channels * 4 * width  # the projection
            total += channels * width + 2 * width + 9 * width * width + 2 * width
            total += width * 4 * width
            channels = 4 * width
        stages[f"block{index + 1}"] = total
    stages["block4"] += 2 * 2048  # postnorm
    return stages


@pytest.fixture(scope="module")
def bit50(module_tmp):
    """A random BiT-R50x1 in timm's layout, converted (no top)."""
    from support.bit_reference import make_reference

    from resnet_ft.cli import main

    folder = module_tmp("bit-e2e")
    reference, _ = make_reference(folder, 50, (64,), num_classes=10)
    out = folder / "bit50.keras"
    assert main(["convert", str(reference.files["safetensors"]), "-o", str(out)]) == 0
    return out, reference


def test_summary_counts_every_groupnorm_affine_and_no_statistics(bit50):
    import resnet_ft

    summary = resnet_ft.summarize(bit50[0])
    assert {s.name: s.total for s in summary.stages} == bit50_stages()
    assert sum(s.bn_statistics for s in summary.stages) == 0
    # timm lists resnetv2_50x1_bit with 25,549,352 parameters; its 1000-way head is 2,049,000
    assert summary.total == 25_549_352 - 2_049_000


@pytest.fixture(scope="module")
def bit_run(bit50, flowers, module_tmp):
    """The BiT backbone fine-tuned from block4 on the generated flowers (one head epoch)."""
    from resnet_ft.cli import main

    run = module_tmp("bit-run") / "run"
    args = ["train", flowers, "--backbone", bit50[0], "-o", run, "--head-epochs", 1,
            "--epochs", 2, "--trainable", "block4", "--cache-dir", module_tmp("bit-cache"),
            *SMALL]
    assert main([str(a) for a in args]) == 0
    return run


def test_block4_fine_tuning_trains_its_groupnorms_and_a_fresh_process_predicts(
        cli, bit_run, flowers):
    summary = json.loads(cli("summary", bit_run, "--json").out)
    stages = {s["name"]: s for s in summary["stages"]}
    head = 2048 * 1024 + 1024 + 1024 * 5 + 5
    assert stages["block4"]["trainable"] == bit50_stages()["block4"]  # GroupNorms included
    assert stages["block3"]["trainable"] == 0
    assert summary["trainable"] == head + bit50_stages()["block4"]
    image = next(flowers.glob("*/*.jpg"))
    done = subprocess.run([sys.executable, "-m", "resnet_ft", "predict", str(bit_run),
                           str(image), "--json"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)[0]["label"] in {p.name for p in flowers.iterdir()}


def test_the_onnx_export_of_a_bit_run_equals_keras(bit_run, flowers, tmp_path):
    """Weight standardisation and GroupNorm survive tf2onnx: the export's probabilities equal
    the Keras model's on every image (the run's own agreement check, and again here)."""
    import numpy as np

    from resnet_ft.exports import export, load_exported
    from resnet_ft.inference.loaders import load_predictor

    out = tmp_path / "bit.onnx"
    report = export(bit_run, out, "onnx", "none")
    assert report.top1_agreement == 1.0 and report.max_prob_diff <= 1e-4
    paths = sorted(flowers.rglob("*.jpg"))

    def probabilities(predictor) -> np.ndarray:
        return np.stack([p for _, p, _ in predictor.probabilities(paths, batch_size=16)])

    expected = probabilities(load_predictor(bit_run))
    assert np.abs(probabilities(load_exported(out)) - expected).max() <= 1e-4


def test_grad_cam_explains_a_bit_run(bit_run, flowers, cli, tmp_path):
    from PIL import Image

    images = sorted((flowers / "daisy").glob("*.jpg"))[:2]
    result = cli("predict", bit_run, *images, "--explain", tmp_path / "heat", "--json")
    assert result.code == 0, result.err
    maps = [json.loads(result.out)[i]["heatmap"] for i in range(2)]
    assert sorted(maps) == sorted(str(p) for p in (tmp_path / "heat").iterdir())
    for path in maps:
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size == (224, 224)


def test_a_bit_preset_from_a_mirror_is_the_npz_converted(bit50, server, monkeypatch, tmp_path):
    """(The npz's conversion itself is checked against the reference in tests/equivalence.)"""
    import numpy as np

    from resnet_ft.conversion.converter import convert
    from resnet_ft.models.files import backbone_metadata, load_backbone
    from resnet_ft.presets.cache import resolve_backbone

    reference = bit50[1]
    server.state.files["bit/BiT-M-R50x1/BiT-M-R50x1.npz"] = reference.files["npz"].read_bytes()
    monkeypatch.setenv("RESNET_FT_MIRROR", server.base_url)
    path = resolve_backbone("bit/BiT-M-R50x1", tmp_path)
    assert backbone_metadata(path)["family"] == "bit_google"
    convert(reference.files["npz"], tmp_path / "direct.keras")
    for ours, direct in zip(load_backbone(path).get_weights(),
                            load_backbone(tmp_path / "direct.keras").get_weights(), strict=True):
        np.testing.assert_array_equal(ours, direct)
    assert server.state.hits == 1
