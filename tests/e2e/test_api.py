"""The Python API: every public name is callable and does its job, also after the CLI is imported.

Runs in a fresh interpreter: the bug this guards against (``resnet_ft.convert``
turning into a module once a submodule of that name is imported) depends on
import order, which the test session's earlier imports would hide.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import resnet_ft
    import resnet_ft.cli  # imports every command module
    import resnet_ft.conversion.converter, resnet_ft.exports  # and the implementing modules

    ckpt, data, work = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    out = {}
    first = resnet_ft.convert(ckpt, work / "a.keras")
    second = resnet_ft.convert(ckpt, work / "b.keras")  # the second call is the one that broke
    out["convert"] = [first.depth, second.depth, first.family]
    backbone = resnet_ft.load_backbone(work / "a.keras")
    out["backbone_output"] = list(backbone.output.shape[1:])
    config = resnet_ft.TrainConfig(data_dir=str(data), backbone=str(work / "a.keras"), epochs=1,
                                   image_size=48, batch_size=8, cache_dir=str(work / "cache"))
    result = resnet_ft.train(config, work / "run")
    out["train_epochs"] = len(result.history)
    as_dict = resnet_ft.train({"data_dir": str(data), "backbone": str(work / "a.keras"),
                               "epochs": 1, "image_size": 48, "batch_size": 8,
                               "cache_dir": str(work / "cache")}, work / "run2")
    out["train_dict_same_history"] = as_dict.history[0]["loss"] == result.history[0]["loss"]
    files = sorted(str(p) for p in data.rglob("*.jpg"))[:3]
    predictions = resnet_ft.predict(work / "run", files, top_k=2)
    out["predict"] = [(p["file"], p["label"], len(p["top_k"])) for p in predictions]
    model, labels = resnet_ft.load_classifier(work / "run")
    out["classifier"] = [list(model.output.shape[1:]), labels]
    evaluation = resnet_ft.evaluate(work / "run", data)
    out["evaluate"] = [evaluation.report["n"], sorted(p.name for p in evaluation.folder.iterdir())]
    report = resnet_ft.export(work / "run", work / "model.tflite", "tflite")
    out["export"] = [report.format, report.compared_images, report.top1_agreement]
    exported = resnet_ft.load_exported(work / "model.tflite")
    out["load_exported"] = exported.labels
    summary = resnet_ft.summarize(work / "run")
    out["summarize"] = [summary.trainable, summary.non_trainable]
    out["convert_is_function"] = callable(resnet_ft.convert) and not isinstance(
        resnet_ft.convert, type(sys))
    out["presets"] = [row["name"] for row in resnet_ft.list_presets()][:2]
    print(json.dumps(out))
""")


def test_public_api_in_a_fresh_interpreter(tmp_path, backbone50, flowers):
    """ResNet-50 (the session's stand-in checkpoint): nothing here depends on the depth."""
    work = tmp_path / "work"
    work.mkdir()
    checkpoint = backbone50.with_suffix(".ckpt")
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(checkpoint), str(flowers),
                           str(work)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["convert"] == [50, 50, "slim"]
    assert out["backbone_output"] == [None, None, 2048]
    assert out["train_epochs"] == 1
    assert out["train_dict_same_history"] is True
    labels = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
    for file, label, k in out["predict"]:
        assert file.endswith(".jpg") and label in labels and k == 2
    assert out["classifier"] == [[5], labels]
    assert out["evaluate"] == [40, ["confusion.png", "metrics.json", "misclassified.csv"]]
    assert out["export"][:2] == ["tflite", 5]  # --val-split 0.1 of 8 images: 1 per class
    assert out["load_exported"] == labels
    # the head trains; the whole ResNet-50 backbone is frozen: torchvision's published
    # 25,557,032 parameters less its 2048 x 1000 + 1000 classifier (slim has no conv biases
    # either), plus each BatchNorm's moving mean and variance (buffers, not torch parameters):
    # the stem's 64 channels, and per unit 6 x width (+ 4 x width for a projection)
    bn_channels = 64 + sum(units * 6 * width + 4 * width
                           for units, width in zip((3, 4, 6, 3), (64, 128, 256, 512), strict=True))
    assert out["summarize"] == [2048 * 1024 + 1024 + 1024 * 5 + 5,
                                25_557_032 - 2_049_000 + 2 * bn_channels]
    assert out["convert_is_function"] is True
    assert out["presets"] == ["slim/resnet_v1_50", "slim/resnet_v1_101"]
