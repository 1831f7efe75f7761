"""predict and evaluate on a trained run: same preprocessing as training, per-file errors."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from support.cli import SMALL, assert_one_line_error

from resnet_ft.cli.render import console
from resnet_ft.data.preprocessing import Preprocessing, image_dataset
from resnet_ft.features.extract import extract
from resnet_ft.features.store import FeatureCache
from resnet_ft.runs.run import load_classifier
from resnet_ft.util.hashing import sha256_file


def _val_files(run):
    rows = csv.DictReader((run / "split.csv").open())
    return [r for r in rows if r["subset"] == "val"]


def test_predict_equals_training_evaluation_pipeline(trained, cli, backbone50):
    run, cache_dir = trained
    row = _val_files(run)[0]
    result = cli("predict", run, row["file"], "--json", "--top-k", 5)
    assert result.code == 0, result.err
    [entry] = json.loads(result.out)
    ours = {t["label"]: t["probability"] for t in entry["top_k"]}
    # Training's evaluation: cached pooled features of view 0 through the trained head.
    model, labels = load_classifier(run)
    backbone = model.get_layer(index=1)
    spec = Preprocessing(48, "crop")
    cache = FeatureCache(cache_dir, sha256_file(backbone50), spec)
    table = extract([Path(row["file"])], backbone, spec, views=2, cache=cache, console=console())
    assert table.extracted == 0  # served from the cache written by training
    head = model.get_layer("head")
    logits = np.asarray(head(np.asarray(table.values)[:, 0], training=False), np.float64)[0]
    reference = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    for index, label in enumerate(labels):
        assert abs(ours[label] - float(reference[index])) <= 1e-5


def test_predict_outputs_and_bad_files(trained, cli, flowers, tmp_path):
    run, _ = trained
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    good = sorted((flowers / "roses").glob("*.jpg"))[:2]
    result = cli("predict", run, *good, bad, "--json", "--top-k", 2)
    assert result.code == 1
    entries = json.loads(result.out)
    assert [e["file"] for e in entries] == [str(p) for p in (*good, bad)]
    assert set(entries[0]) == {"file", "label", "probability", "top_k", "ood_score"}
    assert len(entries[0]["top_k"]) == 2
    assert entries[0]["probability"] == entries[0]["top_k"][0]["probability"]
    assert entries[2] == {"file": str(bad), "error": entries[2]["error"]}
    assert f"error: {bad}:" in result.err

    as_csv = cli("predict", run, good[0], "--csv")
    assert as_csv.code == 0
    rows = list(csv.reader(io.StringIO(as_csv.out)))
    assert rows[0] == ["file", "label", "probability", "top_k", "error"]
    assert rows[1][0] == str(good[0]) and rows[1][4] == ""

    table = cli("predict", run, flowers / "daisy")
    assert table.code == 0 and "probability" in table.out and "error" not in table.out


def test_predict_refuses_two_output_formats(trained, cli, flowers):
    """--json and --csv both write stdout: mixing them would break either parser."""
    run, _ = trained
    image = next((flowers / "roses").glob("*.jpg"))
    assert_one_line_error(cli("predict", run, image, "--json", "--csv"),
                          "choose one of --json and --csv")


def test_predict_globs(trained, cli, flowers):
    run, _ = trained
    result = cli("predict", run, str(flowers / "tulips" / "*_000[0-2].jpg"), "--json")
    assert len(json.loads(result.out)) == 3


@pytest.mark.parametrize("missing", ["run", "model"])
def test_predict_missing_run_or_model(cli, tmp_path, flowers, missing):
    run = tmp_path / "run"
    if missing == "model":
        run.mkdir()
    result = cli("predict", run, flowers / "daisy")
    assert_one_line_error(result, "not found" if missing == "run" else "no trained model")


def test_evaluate_matches_predict(trained, cli, flowers, tmp_path):
    run, _ = trained
    predicted = json.loads(cli("predict", run, flowers, "--json").out)
    expected = np.mean([Path(e["file"]).parent.name == e["label"] for e in predicted])
    result = cli("evaluate", run, flowers, "--json", "-o", tmp_path / "report")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["n"] == 40
    assert report["accuracy"] == pytest.approx(expected)
    # 5 classes, default k = 5: top-5 accuracy would be 1.0 by construction, so it is absent
    assert set(report) >= {"accuracy", "per_class", "confusion_matrix", "labels", "n"}
    assert "top_k" not in report and "top_k_accuracy" not in report
    rows = list(csv.reader((tmp_path / "report" / "misclassified.csv").open()))
    assert rows[0] == ["file", "true", "predicted", "probability"]
    assert len(rows) - 1 == round((1 - expected) * 40)
    assert (tmp_path / "report" / "confusion.png").read_bytes()[:4] == b"\x89PNG"


def test_top_k_accuracy_only_when_k_is_below_the_class_count(trained, cli, flowers, tmp_path):
    run, _ = trained
    predicted = json.loads(cli("predict", run, flowers, "--json", "--top-k", 2).out)
    expected = np.mean([Path(e["file"]).parent.name in [t["label"] for t in e["top_k"]]
                        for e in predicted])
    report = json.loads(cli("evaluate", run, flowers, "--json", "--top-k", 2, "-o",
                            tmp_path / "k2").out)
    assert report["top_k"] == 2
    assert report["top_k_accuracy"] == pytest.approx(expected)
    table = cli("evaluate", run, flowers, "--top-k", 7, "-o", tmp_path / "k7")
    assert table.code == 0 and "top-" not in table.out


def test_evaluate_class_mismatch(trained, cli, tmp_path):
    from resnet_ft.data.standin import write_standin_images

    run, _ = trained
    write_standin_images(tmp_path / "other", classes=("daisy", "cacti"), per_class=1, min_size=32)
    result = cli("evaluate", run, tmp_path / "other")
    assert_one_line_error(result, "differ", "cacti")


def test_imagenet_classifier_of_include_top_backbone(backbone101, cli, flowers, tmp_path):
    from resnet_ft.data.preprocessing import decode_or_error, resize
    from resnet_ft.models.files import load_imagenet_classifier

    labels = tmp_path / "imagenet.txt"
    labels.write_text("\n".join(f"class_{i}" for i in range(1000)) + "\n")
    image = sorted((flowers / "roses").glob("*.jpg"))[0]
    result = cli("predict", backbone101, image, "--labels", labels, "--json", "--top-k", 3)
    assert result.code == 0, result.err
    [entry] = json.loads(result.out)
    pixels, _ = decode_or_error(str(image).encode())
    logits = np.asarray(load_imagenet_classifier(backbone101)(
        resize(pixels, Preprocessing(224, "crop"))[None]))[0]
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    best = int(np.argmax(probs))
    assert entry["label"] == f"class_{best}"
    assert entry["probability"] == pytest.approx(float(probs[best]), abs=1e-5)

    short = tmp_path / "short.txt"
    short.write_text("a\nb\n")
    assert_one_line_error(cli("predict", backbone101, image, "--labels", short), "has 2 names")
    assert_one_line_error(cli("predict", backbone101, image), "--labels")


def test_a_run_trained_in_this_process_is_served_from_memory_as_its_file_computes(
        flowers, backbone50, tmp_path, cli, monkeypatch):
    """Predictors after train use the classifier train wrote, not a second read of the file;
    it computes exactly what the file does, and a file written again is read again."""
    from resnet_ft.inference.loaders import load_predictor
    from resnet_ft.models import files

    run = tmp_path / "run"
    trained = cli("train", flowers, "--backbone", backbone50, "-o", run, "--epochs", 2,
                  "--val-split", 0.25, "--cache-dir", tmp_path / "cache", *SMALL)
    assert trained.code == 0, trained.err
    from_file = files.load_model(run / "model.keras")
    paths = sorted(flowers.rglob("*.jpg"))[:6]

    def refuse(path):
        raise AssertionError(f"read {path} again")

    monkeypatch.setattr(files, "load_model", refuse)
    kept = load_predictor(run)
    assert kept.model.name == "classifier"
    pixels = np.stack([p.numpy() for p, _ in
                       image_dataset([str(p) for p in paths], kept.preprocessing)])
    np.testing.assert_array_equal(np.asarray(kept.model(pixels, training=False)),
                                  np.asarray(from_file(pixels, training=False)))
    copy = tmp_path / "copy.keras"
    copy.write_bytes((run / "model.keras").read_bytes())
    copy.replace(run / "model.keras")  # the same bytes, another file
    with pytest.raises(AssertionError, match=r"read .*model\.keras again"):
        load_predictor(run)
