"""Edges of ``report``'s run reader and of the SavedModel export and its fidelity check.

What a report reads from a run directory comes from the session's trained run
(``trained``; read only, or copied before anything is damaged). The export edges
use ``tiny``: a small CNN saved as a run over the stand-in flowers, which exports
in seconds where the ResNet-101 run takes a minute.
"""

from __future__ import annotations

import csv
import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from support.cli import assert_one_line_error
from support.tiny_run import write_tiny_run

import resnet_ft.exports.formats.saved_model as saved_model_module
from resnet_ft.errors import InputError, OutputError
from resnet_ft.evaluation.report.gather import (
    read_run,
    validation_samples,
    versions,
)
from resnet_ft.exports import export_saved_model
from resnet_ft.exports.fidelity import saved_model_agreement
from resnet_ft.exports.formats.saved_model import save_module
from resnet_ft.inference.loaders import load_predictor
from resnet_ft.runs.run import Run

#: The run files a report reads besides the model (copied; model.keras is not needed).
TEXT_FILES = ("labels.json", "split.csv", "config.yaml", "history.csv", "metrics.json")


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes: equal snapshots mean untouched."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _write_split(run: Path, rows: list[tuple[object, str, str]]) -> None:
    with (run / "split.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "label", "subset"])
        writer.writerows(rows)


def _val_rows(run: Path) -> list[tuple[str, str, str]]:
    with (run / "split.csv").open(newline="") as handle:
        return [(r["file"], r["label"], r["subset"]) for r in csv.DictReader(handle)]


@pytest.fixture
def text_run(trained, tmp_path: Path) -> Path:
    """A copy of the trained run's text files only (the model is not needed to damage them)."""
    run = tmp_path / "run"
    run.mkdir()
    for name in TEXT_FILES:
        shutil.copy(trained[0] / name, run / name)
    return run


@pytest.fixture(scope="module")
def tiny(flowers, module_tmp) -> Path:
    """A small CNN saved as a run; every fourth flowers image is in its validation split."""
    return write_tiny_run(flowers, module_tmp("edges") / "tiny", widths=(8,))


@pytest.fixture
def tiny_copy(tiny, tmp_path: Path) -> Path:
    """A private copy of ``tiny`` that a test may damage."""
    return shutil.copytree(tiny, tmp_path / "tiny")


# gather: what the run directory says ---------------------------------------------------------


def test_read_run_of_a_trained_run(trained) -> None:
    """read_run must return the run's own files, head-only rates and the model's save record."""
    import keras

    run = trained[0]
    info = read_run(run)
    assert info.path == run
    assert info.labels == json.loads((run / "labels.json").read_text())
    assert info.config == yaml.safe_load((run / "config.yaml").read_text())
    assert info.metrics == json.loads((run / "metrics.json").read_text())
    with (run / "history.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["epoch"] for row in info.history] == [1.0, 2.0, 3.0]
    assert info.history == [{k: float(v) for k, v in row.items()} for row in rows]
    # head-only: a constant rate, the config's lr, for every history row
    assert info.learning_rates == [info.config["lr"]] * 3
    assert info.versions["model saved with Keras"] == keras.__version__
    with zipfile.ZipFile(run / "model.keras") as archive:
        saved = json.loads(archive.read("metadata.json"))
    assert info.versions["model saved on"] == saved["date_saved"]
    assert info.versions["Keras"] == keras.__version__


def test_unreadable_run_files_give_empty_values(text_run: Path) -> None:
    """Torn config, metrics and history must read as empty, not crash the report."""
    (text_run / "config.yaml").write_text("lr: [0.001\n")  # YAML error
    (text_run / "metrics.json").write_text("{\"accuracy\": 0.")
    (text_run / "history.csv").write_text("epoch,phase,loss\n1,1,0.5\n2,1,not-a-number\n")
    info = read_run(text_run)
    assert (info.config, info.metrics, info.history, info.learning_rates) == ({}, {}, [], [])
    assert info.versions["model saved with Keras"] == \
        "unknown (model.keras has no save record)"  # no model.keras at all
    # well-formed files of the wrong shape are as good as unreadable
    (text_run / "config.yaml").write_text("- lr\n- 0.001\n")
    (text_run / "metrics.json").write_text("[0.5]")
    (text_run / "history.csv").write_text("epoch,phase,loss\n1,1\n")  # a short row
    info = read_run(text_run)
    assert (info.config, info.metrics, info.history) == ({}, {}, [])
    (text_run / "history.csv").unlink()
    (text_run / "metrics.json").unlink()
    assert (read_run(text_run).history, read_run(text_run).metrics) == ([], {})


@pytest.mark.parametrize("content", [b"not a zip at all", None])
def test_model_file_without_a_save_record(tmp_path: Path, content: bytes | None) -> None:
    """A model file that is not Keras' zip, or lacks metadata.json, must say it has no record."""
    run = tmp_path / "run"
    run.mkdir()
    if content is None:
        with zipfile.ZipFile(run / "model.keras", "w") as archive:
            archive.writestr("config.json", "{}")  # a zip, but no metadata.json in it
    else:
        (run / "model.keras").write_bytes(content)
    found = versions(run)
    assert found["model saved with Keras"] == "unknown (model.keras has no save record)"
    assert "model saved on" not in found
    with zipfile.ZipFile(run / "record.keras", "w") as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.0.1"}))
    record = versions(run / "record.keras")  # a model file given directly
    assert record["model saved with Keras"] == "3.0.1" and record["model saved on"] == "?"


def test_learning_rates_are_the_ones_training_recorded(text_run: Path) -> None:
    """The report plots history.csv's lr column (what the optimizer used), never a recomputation."""
    rates = [1e-3, 1.3e-4, 4e-5, 0.0]
    (text_run / "history.csv").write_text("epoch,phase,loss,lr\n" + "".join(
        f"{e},{1 if e == 1 else 2},0.5,{r}\n" for e, r in enumerate(rates, start=1)))
    assert read_run(text_run).learning_rates == rates


def test_learning_rates_give_up_rather_than_guess(text_run: Path) -> None:
    """A history without the lr column (older runs), or with gaps in it: no rates at all."""
    (text_run / "history.csv").write_text("epoch,phase,loss\n1,1,0.5\n2,1,0.4\n")
    assert read_run(text_run).learning_rates == []
    (text_run / "history.csv").write_text("epoch,phase,loss,lr\n1,1,0.5,0.001\n2,1,0.4,\n")
    assert read_run(text_run).learning_rates == []


def test_validation_samples_in_split_order(text_run: Path) -> None:
    """The val rows of split.csv, in its order, labelled by their index in the run's labels."""
    labels = json.loads((text_run / "labels.json").read_text())
    val = [row for row in _val_rows(text_run) if row[2] == "val"]
    samples = validation_samples(text_run, labels)
    assert [(s.path, s.label) for s in samples] == [
        (Path(f), labels.index(label)) for f, label, _ in val]
    assert len(samples) == 10


def test_validation_split_missing_empty_or_with_an_unknown_label(text_run: Path) -> None:
    """Each broken split must be a one-line error naming split.csv, never a traceback."""
    labels = json.loads((text_run / "labels.json").read_text())
    split = text_run / "split.csv"
    rows = _val_rows(text_run)
    _write_split(text_run, [r for r in rows if r[2] == "train"])
    with pytest.raises(InputError) as error:
        validation_samples(text_run, labels)
    assert str(error.value) == \
        f"{split} lists no validation images; give a DATA_DIR to evaluate on"
    _write_split(text_run, [*rows, ("/images/bear.jpg", "bears", "val")])
    with pytest.raises(InputError, match="'bears' is not in list") as error:
        validation_samples(text_run, labels)
    assert str(error.value).startswith(f"cannot read the validation split from {split}: ")
    split.write_text("path,label,subset\n/images/a.jpg,daisy,val\n")
    with pytest.raises(InputError, match=r"from .*split\.csv: 'file'$"):
        validation_samples(text_run, labels)
    split.unlink()
    with pytest.raises(InputError, match="cannot read the validation split from") as error:
        validation_samples(text_run, labels)
    assert "\n" not in str(error.value)


def test_report_without_validation_images_fails_in_one_line(tiny_copy: Path, cli) -> None:
    """``report RUN`` on a run with no val rows must say to give DATA_DIR, and write nothing."""
    _write_split(tiny_copy, [r for r in _val_rows(tiny_copy) if r[2] == "train"])
    before = _snapshot(tiny_copy)
    assert_one_line_error(cli("report", tiny_copy), "lists no validation images",
                          "give a DATA_DIR")
    assert _snapshot(tiny_copy) == before and not (tiny_copy / "report").exists()


# saved_model: what -o may replace ------------------------------------------------------------


def test_saved_model_refuses_a_file_and_a_foreign_folder(tiny, tmp_path: Path, cli) -> None:
    """-o naming a file or a non-SavedModel folder must be refused, leaving them byte-identical."""
    a_file = tmp_path / "model.bin"
    a_file.write_bytes(b"\x00precious bytes\xff")
    with pytest.raises(OutputError) as error:
        export_saved_model(tiny, a_file)
    assert str(error.value) == f"{a_file} exists and is not a SavedModel; refusing to replace it"
    assert a_file.read_bytes() == b"\x00precious bytes\xff"
    folder = tmp_path / "photos"
    (folder / "2024").mkdir(parents=True)
    (folder / "2024" / "a.jpg").write_bytes(b"\xff\xd8 jpeg")
    (folder / "notes.txt").write_text("keep me")
    before = _snapshot(folder)
    result = cli("export", tiny, "-o", folder)
    assert_one_line_error(result, str(folder), "not a SavedModel; refusing", code=1)
    assert _snapshot(folder) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bin", "photos"]  # no temp


def test_saved_model_fills_an_empty_folder(tiny, tmp_path: Path) -> None:
    """An existing empty folder is a fine -o: it must receive the SavedModel."""
    out = tmp_path / "empty"
    out.mkdir()
    report = export_saved_model(tiny, out)
    assert (out / "saved_model.pb").is_file() and report.path == out
    assert report.ops == ["serving_default", "serving_pixels"]
    assert report.compared_images == 10 and report.top1_agreement == 1.0


def test_save_module_failure_is_one_output_error(tmp_path: Path) -> None:
    """A SavedModel TensorFlow cannot write must be one OutputError line naming the folder."""
    import tensorflow as tf

    scale = tf.Variable(2.0)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def double(x: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"y": x * scale}

    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "variables").write_text("a file where the variables folder goes")
    with pytest.raises(OutputError) as error:
        save_module({"serving_default": double}, blocked)
    assert str(error.value).startswith(f"cannot write SavedModel {blocked}: ")
    assert "\n" not in str(error.value)
    written = tmp_path / "written"
    written.mkdir()
    save_module({"serving_default": double}, written)  # and the same function saves fine
    served = tf.saved_model.load(str(written)).signatures["serving_default"]
    np.testing.assert_array_equal(served(x=tf.constant([1.5]))["y"].numpy(), [3.0])


def test_serving_functions_run_eagerly_serve_what_the_saved_model_serves(
        tiny, flowers, tmp_path: Path) -> None:
    """The signatures' Python bodies must decode and rank as the saved graph and Pillow do.

    Saving traces them through autograph; run eagerly here, the very code that
    was traced (the JPEG / other-format decoder choice, resize, top-k) is checked
    line by line against the SavedModel and against ``predict``'s Pillow pixels.
    """
    import tensorflow as tf
    from PIL import Image

    from resnet_ft.data.preprocessing import image_dataset

    predictor = load_predictor(tiny)
    functions = saved_model_module._serving_functions(predictor)
    assert sorted(functions) == ["serving_default", "serving_pixels"]
    export_saved_model(tiny, tmp_path / "sm")
    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    jpegs = sorted(flowers.rglob("*.jpg"))[:2]
    png = tmp_path / "flower.png"
    Image.open(jpegs[0]).save(png)
    files = [*jpegs, png]
    images = tf.constant([p.read_bytes() for p in files])
    eager = {k: v.numpy() for k, v in
             functions["serving_default"].python_function(images).items()}
    saved = {k: v.numpy() for k, v in loaded.signatures["serving_default"](images=images).items()}
    np.testing.assert_allclose(eager["probabilities"], saved["probabilities"], atol=1e-6)
    np.testing.assert_array_equal(eager["top_k_labels"], saved["top_k_labels"])
    np.testing.assert_allclose(eager["top_k_scores"], saved["top_k_scores"], atol=1e-6)
    pillow = np.stack([probs for _, probs, _ in predictor.probabilities(files)])
    np.testing.assert_allclose(eager["probabilities"], pillow, atol=1e-5)
    order = np.argsort(-pillow, axis=1, kind="stable")
    assert [[x.decode() for x in row] for row in eager["top_k_labels"]] == [
        [predictor.labels[i] for i in row] for row in order]
    pixels = np.stack([p.numpy() for p, _ in image_dataset([str(f) for f in files],
                                                            predictor.preprocessing)])
    served = functions["serving_pixels"].python_function(tf.constant(pixels))
    np.testing.assert_allclose(served["probabilities"].numpy(),
                               np.asarray(predictor.model(pixels, training=False)), atol=1e-6)


# fidelity: the agreement check on the validation split -----------------------------------------


def _recording(serve: Any, calls: list[int], refuse: bytes | None = None) -> Any:
    """``serve`` that records each call's batch size; fails a batch holding ``refuse``."""
    import tensorflow as tf

    def run(images: tf.Tensor) -> dict[str, tf.Tensor]:
        calls.append(int(images.shape[0]))
        if refuse is not None and refuse in list(images.numpy()):
            raise tf.errors.InvalidArgumentError(None, None, "refused by the test")
        return serve(images=images)

    return run


def test_undecodable_validation_images_are_skipped(tiny_copy: Path, tmp_path: Path) -> None:
    """A bad file fails its batch; retried one by one, only the readable files are compared."""
    import tensorflow as tf

    rows = _val_rows(tiny_copy)
    torn = tmp_path / "torn.jpg"
    torn.write_bytes(b"\xff\xd8\xff\xe0 a truncated JPEG")
    gone = tmp_path / "gone.jpg"
    _write_split(tiny_copy, [*rows[:9], (torn, "daisy", "val"), *rows[9:],
                             (gone, "roses", "val")])
    report = export_saved_model(tiny_copy, tmp_path / "sm")
    assert report.compared_images == 10  # 12 val rows, 2 unreadable
    assert report.top1_agreement == 1.0 and report.max_prob_diff <= 1e-5
    predictor = load_predictor(tiny_copy)
    serve = tf.saved_model.load(str(tmp_path / "sm")).signatures["serving_default"]
    calls: list[int] = []
    top1, diff, compared = saved_model_agreement(predictor, Run(tiny_copy).split("val"),
                                                 _recording(serve, calls))
    assert (top1, compared) == (1.0, 10) and diff == pytest.approx(report.max_prob_diff, abs=1e-7)
    assert calls == [1] * 11  # the missing file fails the batch's reading: no batch call
    # the torn file alone: the batch of 11 is served, fails, and each file is served alone
    _write_split(tiny_copy, [*rows[:9], (torn, "daisy", "val"), *rows[9:]])
    calls.clear()
    top1, diff, compared = saved_model_agreement(predictor, Run(tiny_copy).split("val"),
                                                 _recording(serve, calls))
    assert (top1, compared) == (1.0, 10) and diff == pytest.approx(report.max_prob_diff, abs=1e-7)
    assert calls == [11] + [1] * 11


def test_an_image_only_the_export_cannot_read_is_skipped(tiny, tmp_path: Path) -> None:
    """An image the float model reads but the export refuses must be left out, not crash."""
    import tensorflow as tf

    export_saved_model(tiny, tmp_path / "sm")
    serve = tf.saved_model.load(str(tmp_path / "sm")).signatures["serving_default"]
    first = Path(_val_rows(tiny)[0][0])
    calls: list[int] = []
    top1, diff, compared = saved_model_agreement(
        load_predictor(tiny), Run(tiny).split("val"),
        _recording(serve, calls, refuse=first.read_bytes()))
    assert (top1, compared) == (1.0, 9) and diff is not None and diff <= 1e-5
    assert calls == [10] + [1] * 10


def test_no_readable_validation_image_gives_no_agreement(tiny_copy: Path, tmp_path: Path,
                                                         cli) -> None:
    """A split whose val images are all unreadable: (None, None, 0), said as such by the CLI."""
    torn = tmp_path / "torn.png"
    torn.write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    rows = [r for r in _val_rows(tiny_copy) if r[2] == "train"]
    _write_split(tiny_copy, [*rows, (torn, "daisy", "val"), (tmp_path / "gone.jpg", "tulips",
                                                             "val")])
    result = cli("export", tiny_copy, "-o", tmp_path / "sm", "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert (report["top1_agreement"], report["max_prob_diff"], report["compared_images"]) == (
        None, None, 0)
    _write_split(tiny_copy, rows)  # no val rows at all: the same answer, in words
    result = cli("export", tiny_copy, "-o", tmp_path / "sm")
    assert result.code == 0, result.err
    assert "agreement: no validation image to compare with the float model" in result.out
    assert "agreement with the float model on" not in result.out
