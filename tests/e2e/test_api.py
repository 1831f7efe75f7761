"""The Python API: every public name is callable and does its job, also after the CLI is imported.

Import order is checked in a fresh interpreter: the bug it guards against
(``resnet_ft.convert`` turning into a module once a submodule of that name is
imported) depends on which modules were imported before, which the test
session's earlier imports would hide. What each function computes does not, and
is checked in this process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from types import ModuleType

import resnet_ft

SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from types import ModuleType
    import resnet_ft
    import resnet_ft.cli  # imports every command module
    import resnet_ft.conversion.converter, resnet_ft.exports  # and the implementing modules

    ckpt, work = Path(sys.argv[1]), Path(sys.argv[2])
    out = {}
    first = resnet_ft.convert(ckpt, work / "a.keras")
    second = resnet_ft.convert(ckpt, work / "b.keras")  # the second call is the one that broke
    out["convert"] = [first.depth, second.depth, first.family]
    out["modules"] = [name for name in resnet_ft.__all__
                      if isinstance(getattr(resnet_ft, name), ModuleType)]
    out["convert_is_function"] = callable(resnet_ft.convert)
    print(json.dumps(out))
""")
LABELS = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]


def test_public_names_stay_functions_in_a_fresh_interpreter(tmp_path, backbone50):
    """ResNet-50 (the session's stand-in checkpoint): nothing here depends on the depth."""
    checkpoint = backbone50.with_suffix(".ckpt")
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(checkpoint), str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["convert"] == [50, 50, "slim"]
    assert out["modules"] == []
    assert out["convert_is_function"] is True


def test_public_api_does_its_job(tmp_path, backbone50, flowers):
    assert not [name for name in resnet_ft.__all__
                if isinstance(getattr(resnet_ft, name), ModuleType)]
    backbone = resnet_ft.load_backbone(backbone50)
    assert list(backbone.output.shape[1:]) == [None, None, 2048]
    common = {"data_dir": str(flowers), "backbone": str(backbone50), "epochs": 1,
              "image_size": 48, "batch_size": 8, "cache_dir": str(tmp_path / "cache")}
    result = resnet_ft.train(resnet_ft.TrainConfig(**common), tmp_path / "run")
    assert len(result.history) == 1
    as_dict = resnet_ft.train(dict(common), tmp_path / "run2")
    assert as_dict.history[0]["loss"] == result.history[0]["loss"]
    run = tmp_path / "run"
    files = sorted(str(p) for p in flowers.rglob("*.jpg"))[:3]
    predictions = resnet_ft.predict(run, files, top_k=2)
    assert len(predictions) == 3
    for prediction in predictions:
        assert prediction["file"].endswith(".jpg") and prediction["label"] in LABELS
        assert len(prediction["top_k"]) == 2
    model, labels = resnet_ft.load_classifier(run)
    assert [list(model.output.shape[1:]), labels] == [[5], LABELS]
    evaluation = resnet_ft.evaluate(run, flowers)
    assert evaluation.report["n"] == 40
    assert sorted(p.name for p in evaluation.folder.iterdir()) == [
        "confusion.png", "metrics.json", "misclassified.csv"]
    report = resnet_ft.export(run, tmp_path / "model.tflite", "tflite")
    assert [report.format, report.compared_images] == ["tflite", 5]  # --val-split 0.1: 1 a class
    assert resnet_ft.load_exported(tmp_path / "model.tflite").labels == LABELS
    summary = resnet_ft.summarize(run)
    # the head trains; the whole ResNet-50 backbone is frozen: torchvision's published
    # 25,557,032 parameters less its 2048 x 1000 + 1000 classifier (slim has no conv biases
    # either), plus each BatchNorm's moving mean and variance (buffers, not torch parameters):
    # the stem's 64 channels, and per unit 6 x width (+ 4 x width for a projection)
    bn_channels = 64 + sum(units * 6 * width + 4 * width
                           for units, width in zip((3, 4, 6, 3), (64, 128, 256, 512), strict=True))
    assert [summary.trainable, summary.non_trainable] == [
        2048 * 1024 + 1024 + 1024 * 5 + 5, 25_557_032 - 2_049_000 + 2 * bn_channels]
    assert [row["name"] for row in resnet_ft.list_presets()][:2] == [
        "slim/resnet_v1_50", "slim/resnet_v1_101"]
