"""``predict``/``evaluate --precision``: float32 by default, exactly the saved model; bfloat16 for
bulk jobs, with the same top-1 and, for a run trained in bfloat16, training's own numbers.

References are Keras itself on the saved ``model.keras`` and the run's own ``metrics.json``.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml
from support.cli import assert_one_line_error

from resnet_ft.cli import main
from resnet_ft.data.preprocessing import Preprocessing, image_dataset

#: bfloat16 keeps 8 mantissa bits (pooled features move by about 1 %): on these generated images
#: and the random-weight stand-in backbone the probabilities stay within this of float32's
#: (measured: max 0.005 on the confident run below, 0.020 on a barely trained 5-class run,
#: where near-ties can flip the top-1; the confident run's smallest top-1 margin is 0.8).
PROB_TOLERANCE = 0.05


def _probabilities(out: str, labels: list[str]) -> np.ndarray:
    """(N, classes) from ``predict --json --top-k <classes>``, in label order."""
    rows = [{t["label"]: t["probability"] for t in entry["top_k"]} for entry in json.loads(out)]
    return np.array([[row[label] for label in labels] for row in rows])


def _precision_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("precision ")]


@pytest.fixture(scope="module")
def images(flowers) -> list[str]:
    """Every generated image (40), in a fixed order: one predict batch."""
    return sorted(str(p) for p in flowers.rglob("*.jpg"))


def test_default_is_float32_and_exactly_the_saved_model(trained, images, cli):
    run, _ = trained
    labels = json.loads((run / "labels.json").read_text())
    result = cli("predict", run, *images, "--json", "--top-k", len(labels))
    assert result.code == 0, result.err
    assert _precision_lines(result.err) == []  # the default says nothing
    ours = _probabilities(result.out, labels)
    pixels = np.stack([p.numpy() for p, _ in image_dataset(images, Preprocessing(48, "crop"))])
    model = keras.saving.load_model(run / "model.keras", compile=False)
    reference = np.concatenate([np.asarray(model(pixels[i : i + 32], training=False), np.float64)
                                for i in (0, 32)])  # predict's batches (32 by default)
    np.testing.assert_array_equal(ours, reference)  # bit for bit: the output before --precision
    explicit = cli("predict", run, *images, "--json", "--top-k", len(labels), "--precision",
                   "float32")
    assert explicit.out == result.out


@pytest.fixture(scope="module")
def mixed(backbone50, module_tmp):
    """A confident head-only run trained in bfloat16 on separable generated images (white,
    yellow and crimson blobs), its data, and its 12 validation images as a class-per-folder set
    of links (the same files for the cache: identities resolve links)."""
    from resnet_ft.data.standin import write_standin_images

    root = module_tmp("precision")
    data = write_standin_images(root / "data", classes=("daisy", "dandelion", "roses"),
                                per_class=16, min_size=40, max_size=64)
    run = root / "run"
    assert main([str(a) for a in (
        "train", data, "--backbone", backbone50, "-o", run, "--val-split", 0.25, "--cache-dir",
        root / "cache", "--image-size", 48, "--batch-size", 8, "--lr", 1e-3, "--dropout", 0.2,
        "--head-units", 256, "--epochs", 15, "--precision", "mixed_bfloat16")]) == 0
    val = root / "val"
    with (run / "split.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["subset"] == "val":
                (val / row["label"]).mkdir(parents=True, exist_ok=True)
                (val / row["label"] / Path(row["file"]).name).symlink_to(row["file"])
    return run, data, val


def test_bfloat16_has_float32s_top1_and_says_so_once(mixed, cli):
    run, data, _ = mixed
    images = sorted(str(p) for p in data.rglob("*.jpg"))
    labels = json.loads((run / "labels.json").read_text())
    f32 = _probabilities(cli("predict", run, *images, "--json", "--top-k", 3).out, labels)
    result = cli("predict", run, *images, "--json", "--top-k", 3, "--precision",
                 "mixed_bfloat16", "--batch-size", 8)
    assert result.code == 0, result.err
    assert _precision_lines(result.err) == ["precision mixed_bfloat16: as asked"]
    bf16 = _probabilities(result.out, labels)
    assert np.abs(bf16 - f32).max() <= PROB_TOLERANCE
    assert np.array_equal(bf16.argmax(axis=1), f32.argmax(axis=1))  # all 48 images
    auto = cli("predict", run, images[0], "--precision", "auto")
    assert auto.code == 0, auto.err
    [line] = _precision_lines(auto.err)
    assert line.startswith(("precision mixed_bfloat16: ", "precision float32: ",
                            "precision mixed_float16: "))


def test_evaluate_in_bfloat16_matches_float32(mixed, cli, tmp_path):
    run, data, _ = mixed
    f32 = cli("evaluate", run, data, "--json", "-o", tmp_path / "f32")
    bf16 = cli("evaluate", run, data, "--json", "-o", tmp_path / "bf16", "--precision",
               "mixed_bfloat16")
    assert f32.code == 0 and bf16.code == 0, bf16.err
    assert _precision_lines(f32.err) == []
    assert _precision_lines(bf16.err) == ["precision mixed_bfloat16: as asked"]
    f32, bf16 = json.loads(f32.out), json.loads(bf16.out)
    assert bf16["n"] == f32["n"] == 48
    assert bf16["confusion_matrix"] == f32["confusion_matrix"]


def _same_as_training(report: dict, run: Path) -> None:
    training = json.loads((run / "metrics.json").read_text())
    assert report["n"] == sum(map(sum, training["confusion_matrix"]))
    assert report["confusion_matrix"] == training["confusion_matrix"]
    assert report["accuracy"] == training["accuracy"]
    assert report["calibration"]["ece"] == pytest.approx(training["calibration"]["ece"], abs=1e-6)


def test_a_bfloat16_run_in_its_precision_is_read_from_the_cache(mixed, cli, tmp_path):
    run, _, val = mixed
    result = cli("evaluate", run, val, "--json", "--precision", "mixed_bfloat16", "-o",
                 tmp_path / "bf16")
    assert result.code == 0, result.err
    _same_as_training(json.loads(result.out), run)
    flips = cli("evaluate", run, val, "--tta", "--precision", "mixed_bfloat16", "-o",
                tmp_path / "tta")
    assert "mirrored views of 12 of 12 images from the feature cache" in flips.out
    # float32 (the default) is another key: computed, not served bfloat16 features
    plain = cli("evaluate", run, val, "--tta", "-o", tmp_path / "f32")
    assert plain.code == 0, plain.err
    assert "mirrored views computed" in plain.out


def test_evaluate_extracts_what_training_would_have_cached(mixed, cli, tmp_path):
    """A fresh cache: evaluate's own extraction (the BN-folded extractor, as training's)
    computes the features training computed, so the metrics are training's again."""
    run, _, val = mixed
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    config = yaml.safe_load((copy / "config.yaml").read_text())
    config["cache_dir"] = str(tmp_path / "fresh")
    (copy / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    result = cli("evaluate", copy, val, "--json", "--precision", "mixed_bfloat16", "-o",
                 tmp_path / "out")
    assert result.code == 0, result.err
    _same_as_training(json.loads(result.out), run)
    assert any((tmp_path / "fresh").rglob("*"))  # and they went into the store


@pytest.mark.parametrize(("args", "fragments"), [
    (("--precision", "bfloat16"), ("precision must be one of", "mixed_bfloat16")),
])
def test_bad_precision(trained, images, cli, args, fragments):
    run, _ = trained
    assert_one_line_error(cli("predict", run, images[0], *args), *fragments)


def test_exported_model_and_imagenet_backbone_compute_only_as_they_are(
        trained, flowers, backbone101, cli, tmp_path):
    run, _ = trained
    assert_one_line_error(cli("evaluate", run, flowers, "--model", tmp_path / "m.tflite",
                              "--precision", "mixed_bfloat16"), "exported --model")
    labels = tmp_path / "imagenet.txt"
    labels.write_text("".join(f"c{i}\n" for i in range(1000)))
    assert_one_line_error(cli("predict", backbone101, sorted(flowers.rglob("*.jpg"))[0],
                              "--labels", labels, "--precision", "mixed_bfloat16"),
                          "ImageNet backbone predicts in float32 only")
