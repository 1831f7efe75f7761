"""``resnet-ft report`` files and numbers, ``top_losses.png``, and test-time flips."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from support.cli import assert_one_line_error
from support.report_case import MISSING

from resnet_ft.cli import main
from resnet_ft.data.preprocessing import Preprocessing, image_dataset
from resnet_ft.runs.run import load_classifier


@pytest.fixture(scope="module")
def classifier(case):
    """The run's Keras model and labels, loaded once for the flip references."""
    return load_classifier(case.run)


@pytest.fixture(scope="module")
def mixed_run(flowers, backbone50, module_tmp):
    """A head-only run computed in bfloat16: its report must still reproduce its metrics."""
    root = module_tmp("mixed")
    assert main([str(a) for a in (
        "train", flowers, "--backbone", backbone50, "-o", root / "run", "--epochs", 2,
        "--val-split", 0.25, "--cache-dir", root / "cache", "--image-size", 48, "--batch-size",
        8, "--precision", "mixed_bfloat16")]) == 0
    return root / "run"


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_report_folder_holds_page_data_thumbnails_and_heat_maps(case):
    folder = case.report
    for name in ("index.html", "report.css", "report.js", "curves.png", "reliability.png",
                 "metrics.json", "misclassified.csv", "predictions.csv"):
        assert (folder / name).stat().st_size > 0, name
    html = (folder / "index.html").read_text()
    assert "http://" not in html and "https://" not in html  # nothing fetched from the network
    images = {Path(p["file"]) for p in case.predictions}
    doctor_only = {Path(r[c]) for kind in ("exact_duplicates", "near_duplicates")
                   for r in _rows(case.doctor / f"{kind}.csv") for c in ("file_a", "file_b")}
    thumbs = sorted((folder / "thumbs").iterdir())
    assert len(thumbs) == len(images | doctor_only)  # one per image; the missing file has none
    for thumb in thumbs:
        with Image.open(thumb) as image:
            assert image.format == "JPEG" and max(image.size) <= 160
    heat = sorted((folder / "heat").iterdir())
    assert len(heat) == 12  # --top default
    with Image.open(heat[0]) as image:
        assert image.format == "JPEG" and image.size == (224, 224)


def test_report_numbers_equal_evaluate_and_predict(case):
    ours = json.loads((case.report / "metrics.json").read_text())
    reference = case.metrics
    assert ours["n"] == reference["n"] == len(case.predictions)
    assert ours["accuracy"] == reference["accuracy"]
    assert ours["confusion_matrix"] == reference["confusion_matrix"]
    key = lambda r: (r["file"], r["true"], r["predicted"])  # noqa: E731
    assert sorted(map(key, _rows(case.report / "misclassified.csv"))) == \
        sorted(map(key, case.misclassified()))
    predicted = {p["file"]: p for p in case.predictions}
    rows = _rows(case.report / "predictions.csv")
    assert len(rows) == len(predicted)
    for row in rows:
        entry = predicted[row["file"]]
        assert row["predicted"] == entry["label"]
        p_true = next(t["probability"] for t in entry["top_k"] if t["label"] == row["true"])
        assert float(row["p_true"]) == pytest.approx(p_true, abs=1e-5)
        assert float(row["loss"]) == pytest.approx(-np.log(max(p_true, 1e-7)), abs=1e-4)


def test_top_losses_are_the_largest_losses_in_order(case):
    losses = {p["file"]: -np.log(max(next(t["probability"] for t in p["top_k"]
                                          if t["label"] == Path(p["file"]).parent.name), 1e-7))
              for p in case.predictions}
    expected = sorted(losses, key=lambda f: -losses[f])[:12]
    html = (case.report / "index.html").read_text()
    section = html[html.index('id="top-losses"'):html.index('id="per-class"')]
    shown = [part.split('"', 1)[0] for part in section.split('data-file="')[1:]]
    assert [losses[f] for f in shown] == pytest.approx([losses[f] for f in expected], abs=1e-4)
    assert set(shown) == set(expected)


def _validation_report_matches_training(cli, run: Path, out: Path) -> str:
    """Build the report of ``run``'s validation split; its numbers are training's, exactly."""
    result = cli("report", run, "-o", out)
    assert result.code == 0, result.err
    assert f"report written to {out / 'index.html'}" in result.out
    ours = json.loads((out / "metrics.json").read_text())
    training = json.loads((run / "metrics.json").read_text())
    val = [r["file"] for r in _rows(run / "split.csv") if r["subset"] == "val"]
    assert ours["n"] == len(val) == sum(map(sum, training["confusion_matrix"]))
    assert ours["confusion_matrix"] == training["confusion_matrix"]
    assert ours["accuracy"] == training["accuracy"]
    assert ours["calibration"]["ece"] == pytest.approx(training["calibration"]["ece"], abs=1e-6)
    html = (out / "index.html").read_text()
    assert f'data-metric="accuracy" data-value="{training["accuracy"]!r}"' in html
    return html


def test_validation_report_reproduces_training_metrics(case, cli, tmp_path, monkeypatch):
    out = tmp_path / "val-report"
    out.mkdir()
    (out / "resnet-ft-report.json").write_text("{}")  # an earlier report: replaced
    (out / "stale.txt").write_text("from the earlier report")
    opened = []
    monkeypatch.setattr("webbrowser.open", lambda uri: opened.append(uri) or True)
    html = _validation_report_matches_training(
        lambda *args: cli(*args, "--open"), case.run, out)
    assert opened == [(out / "index.html").resolve().as_uri()]
    assert not (out / "stale.txt").exists()
    assert "Data findings" not in html  # no --doctor


def test_validation_report_of_a_mixed_precision_run(mixed_run, cli, tmp_path):
    assert yaml.safe_load((mixed_run / "config.yaml").read_text())["precision"] == \
        "mixed_bfloat16"
    _validation_report_matches_training(cli, mixed_run, tmp_path / "report")


def test_top_losses_png_in_the_run(case):
    with Image.open(case.run / "top_losses.png") as image:
        assert image.format == "PNG" and image.size[0] > 800 and image.size[1] > 600


def test_report_refuses_bad_destinations_and_inputs(case, cli, tmp_path):
    run = case.run
    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "todo.txt").write_text("keep me")
    assert_one_line_error(cli("report", run, "-o", precious), "not a resnet-ft report")
    assert [p.name for p in precious.iterdir()] == ["todo.txt"]
    assert_one_line_error(cli("report", tmp_path / "nothing"), "run directory not found")
    assert_one_line_error(cli("report", run, "-o", tmp_path / "r", "--doctor", tmp_path / "no"),
                          "--doctor", "not found")
    empty = tmp_path / "findings"
    empty.mkdir()
    (empty / "notes.csv").write_text("note\nhello\n")
    assert_one_line_error(cli("report", run, "-o", tmp_path / "r", "--doctor", empty),
                          "no findings")
    assert not (tmp_path / "r").exists()


def test_findings_are_listed_with_their_columns(case):
    html = (case.report / "index.html").read_text()
    section = html[html.index('id="findings"'):html.index('id="config"')]
    assert section.count('<tr><td class="files">') == 3 + 2 + 12  # exact, labels, near
    assert "identical bytes" in section and "looks like roses" in section
    assert f'data-file="{MISSING}"' in section
    assert 'data-kind="outliers"' in section and "None found." in section


def _model_pixels(files: list[str]) -> np.ndarray:
    spec = Preprocessing(48, "crop")
    return np.stack([p.numpy() for p, _ in image_dataset(files, spec)])


def test_predict_tta_is_the_mean_of_image_and_mirror(case, classifier, cli, flowers):
    run = case.run
    files = [str(p) for p in sorted((flowers / "tulips").glob("*.jpg"))[:3]]
    result = cli("predict", run, *files, "--tta", "--json")
    assert result.code == 0, result.err
    model, labels = classifier
    pixels = _model_pixels(files)
    reference = (np.asarray(model(pixels)) + np.asarray(model(pixels[:, :, ::-1]))) / 2
    for entry, row in zip(json.loads(result.out), reference, strict=True):
        for top in entry["top_k"]:
            assert top["probability"] == pytest.approx(float(row[labels.index(top["label"])]),
                                                       abs=1e-5)


def test_evaluate_tta_reports_with_and_without(case, classifier, cli, flowers, tmp_path):
    run = case.run
    result = cli("evaluate", run, flowers, "--tta", "-o", tmp_path / "tta")
    assert result.code == 0, result.err
    report = json.loads((tmp_path / "tta" / "metrics.json").read_text())
    files = [str(p) for p in sorted(flowers.rglob("*.jpg"))]
    model, labels = classifier
    pixels = _model_pixels(files)
    plain = np.asarray(model(pixels))
    flipped = (plain + np.asarray(model(pixels[:, :, ::-1]))) / 2
    truth = np.array([labels.index(Path(f).parent.name) for f in files])
    assert report["tta"] == "flip" and report["n"] == 40
    assert report["accuracy"] == pytest.approx(float((flipped.argmax(1) == truth).mean()))
    assert report["without_tta"]["accuracy"] == pytest.approx(
        float((plain.argmax(1) == truth).mean()))
    wrong = _rows(tmp_path / "tta" / "misclassified.csv")
    assert len(wrong) == int((flipped.argmax(1) != truth).sum())
    for row in wrong:  # the cached mirror view is the online mirror, probability by probability
        expected = flipped[files.index(row["file"]), labels.index(row["predicted"])]
        assert float(row["probability"]) == pytest.approx(float(expected), abs=1e-5)
    # every flowers image and its mirror were cached by training: no backbone pass
    assert "mirrored views of 40 of 40 images from the feature cache" in result.out
    assert f"with test-time flips {report['accuracy']:.4f}" in result.out
    assert f"without {report['without_tta']['accuracy']:.4f}" in result.out


def test_predict_explain_writes_one_heat_map_per_image(case, cli, flowers, tmp_path):
    run = case.run
    daisy = sorted((flowers / "daisy").glob("*.jpg"))[:2]
    same_name = tmp_path / "elsewhere" / daisy[0].name
    same_name.parent.mkdir()
    shutil.copy(daisy[0], same_name)
    heat = tmp_path / "heat"
    result = cli("predict", run, *daisy, flowers / "roses", same_name, "--explain", heat,
                 "--json")
    assert result.code == 0, result.err
    entries = json.loads(result.out)
    assert len(entries) == 2 + 8 + 1
    written = sorted(heat.iterdir())
    assert sorted(Path(e["heatmap"]) for e in entries) == written
    names = [Path(e["heatmap"]).name for e in entries]
    assert names[:-1] == [Path(e["file"]).stem + ".png" for e in entries[:-1]]
    assert names[-1] == f"{daisy[0].stem}-2.png"  # same name, other folder: not overwritten
    for entry in entries:
        with Image.open(entry["heatmap"]) as image:
            assert image.format == "PNG" and image.size == (224, 224)
