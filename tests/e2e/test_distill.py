"""``resnet-ft distill``: a ResNet-101 teacher run taught to a ResNet-50 student.

Data: three classes of generated blobs whose colours (white, yellow, crimson)
are far apart, so both random-weight stand-in backbones separate them.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import keras
import numpy as np
import pytest
from support.cli import assert_one_line_error

from resnet_ft.data.standin import write_standin_images
from resnet_ft.inference.predict import predict
from resnet_ft.runs.run import Run, load_classifier

CLASSES = ("daisy", "dandelion", "roses")
#: 28 per class, 25 % validation: 7 per class, 21 validation images (one miss is 95.2 %).
OPTIONS = ("--image-size", 48, "--batch-size", 8, "--val-split", 0.25, "--lr", 1e-3,
           "--dropout", 0.2, "--head-units", 256, "--epochs", 15)
HEAD = 2048 * 256 + 256 + 256 * 3 + 3


@pytest.fixture(scope="module")
def work(module_tmp):
    """Separable data and a feature cache shared by the module's runs."""
    root = module_tmp("distill")
    data = write_standin_images(root / "data", classes=CLASSES, per_class=28, min_size=40,
                                max_size=64)
    return root, data, root / "cache"


@pytest.fixture(scope="module")
def teacher(work, backbone101):
    """The ResNet-101 teacher run, trained on the separable data."""
    from resnet_ft.cli import main

    root, data, cache = work
    args = ["train", data, "--backbone", backbone101, "-o", root / "teacher", "--cache-dir",
            cache, *OPTIONS]
    assert main([str(a) for a in args]) == 0
    return root / "teacher"


@pytest.fixture(scope="module")
def distilled(work, teacher, backbone50):
    """The default distillation (alpha 0.1, T 4) with --baseline: (run dir, console text)."""
    import contextlib
    import io

    from resnet_ft.cli import main

    root, data, cache = work
    out = io.StringIO()
    args = ["distill", teacher, data, "--student", backbone50, "-o", root / "student",
            "--cache-dir", cache, "--baseline", *OPTIONS]
    with contextlib.redirect_stdout(out):
        assert main([str(a) for a in args]) == 0
    return root / "student", out.getvalue()


def _val_files(run):
    with open(run / "split.csv", newline="") as handle:
        return [row["file"] for row in csv.DictReader(handle) if row["subset"] == "val"]


def _labels_of(run, files):
    return [entry["label"] for entry in predict(run, files)]


def test_student_agrees_with_the_teacher_on_95_percent(distilled, teacher):
    run, _ = distilled
    files = _val_files(run)
    assert len(files) == 21
    assert _val_files(teacher) == files  # the same seeded split
    student, taught = _labels_of(run, files), _labels_of(teacher, files)
    agreement = np.mean([a == b for a, b in zip(student, taught, strict=True)])
    assert agreement >= 0.95
    report = json.loads((run / "metrics.json").read_text())["distillation"]
    assert report["agreement"] == pytest.approx(agreement, abs=1e-9)


def test_report_has_student_teacher_agreement_and_baseline(distilled, teacher):
    run, console = distilled
    metrics = json.loads((run / "metrics.json").read_text())
    report = metrics["distillation"]
    assert report["alpha"] == 0.1 and report["temperature"] == 4.0
    assert report["unlabeled"] == 0 and report["teacher_trained_on_val"] == 0
    assert report["student_accuracy"] == metrics["accuracy"]
    assert report["teacher_accuracy"] == json.loads((teacher / "metrics.json").read_text())[
        "accuracy"]
    baseline = json.loads((run / "baseline" / "metrics.json").read_text())
    assert report["baseline_accuracy"] == baseline["accuracy"]
    line = console.strip().splitlines()[-1]
    assert line == (f"student val_accuracy {report['student_accuracy']:.4f}, teacher "
                    f"{report['teacher_accuracy']:.4f}, top-1 agreement "
                    f"{report['agreement']:.4f}, baseline (labels only) "
                    f"{report['baseline_accuracy']:.4f} (alpha 0.1, T 4)")
    # the baseline is an ordinary train run of the same student: its config says so
    config = (run / "baseline" / "config.yaml").read_text()
    assert "teacher:" not in config and "alpha:" not in config
    assert (run / "config.yaml").read_text().count("teacher: ") == 1


def test_teacher_features_are_those_its_training_cached(distilled):
    """The teacher's backbone is unchanged: its features are read under its training's key,
    so distilling costs the student's extraction pass alone."""
    _, console = distilled
    assert "keyed by its unchanged backbone file" in console
    assert not re.search(r"teacher features: \d+/\d+", console)  # no teacher image extracted


def test_distilled_run_is_an_ordinary_run_directory(distilled, work, backbone50, cli):
    run, _ = distilled
    _, data, _ = work
    result = cli("summary", run, "--json")
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert summary["trainable"] == HEAD
    assert summary["total"] == keras.saving.load_model(backbone50).count_params() + HEAD
    result = cli("evaluate", run, data, "--json", "-o", run / "eval")
    assert result.code == 0, result.err
    assert json.loads(result.out)["n"] == 84
    # distill fits the reject score as train does
    assert json.loads(result.out)["risk_coverage"]["table"][0]["coverage"] == 1.0
    scorer = Run(run).require_scorer()
    assert scorer.rate == 0.05 and scorer.centres.shape == (3, 2048)
    model, labels = load_classifier(run)
    assert labels == list(CLASSES) and model.input_shape == (None, 48, 48, 3)


def _history(run):
    with open(run / "history.csv", newline="") as handle:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]


def _stored_rows(cache):
    """Every stored row of a feature cache by (directory, entry key), read with numpy alone:
    a shard is four ``np.save`` arrays back to back (keys, error keys, reasons, rows)."""
    rows = {}
    for shard in cache.rglob("*.shard"):
        with open(shard, "rb") as source:
            keys, _, _, values = (np.load(source) for _ in range(4))
        place = str(shard.parent.relative_to(cache))
        rows.update({(place, key): row for key, row in zip(keys.tolist(), values, strict=True)})
    return rows


def test_teacher_pass_stores_what_training_would(work, teacher, backbone50, cli):
    """Into an empty cache, the teacher's pass extracts as training does: BN-folded, in the
    teacher's precision, under its training's key. Its rows equal those the teacher's training
    stored bit for bit, except where bfloat16 convolutions sum in another order because the
    batches are made up differently (measured: 1 row in 64 for a batch of 64 against 21 + 43);
    an unfolded or float32 pass, or another key, matches none of them."""
    root, data, cache = work
    fresh = root / "fresh-cache"
    result = cli("distill", teacher, data, "--student", backbone50, "-o", root / "fresh",
                 "--cache-dir", fresh, *OPTIONS[:-2], "--epochs", 1)
    assert result.code == 0, result.err
    assert re.search(r"teacher features: 63/63", result.out)  # extracted, not reused
    trained, passed = _stored_rows(cache), _stored_rows(fresh)
    common = sorted(set(trained) & set(passed))
    assert len(common) >= 63  # every training image's original view, under the same key
    same = sum(np.array_equal(trained[k], passed[k]) for k in common)
    assert same >= 0.9 * len(common), (same, len(common))
    for key in common:
        a, b = (np.asarray(rows[key], np.float64) for rows in (trained, passed))
        assert a @ b / np.linalg.norm(a) / np.linalg.norm(b) > 0.9999


def test_alpha_one_gives_exactly_the_label_only_student(work, teacher, backbone50, cli):
    root, data, cache = work
    common = ("--cache-dir", cache, *OPTIONS[:-2], "--epochs", 3)
    assert cli("train", data, "--backbone", backbone50, "-o", root / "labels", *common).code == 0
    result = cli("distill", teacher, data, "--student", backbone50, "-o", root / "alpha1",
                 "--alpha", 1, *common)
    assert result.code == 0, result.err
    assert _history(root / "alpha1") == _history(root / "labels")
    first, second = (load_classifier(root / name)[0].get_layer("head").get_weights()
                     for name in ("labels", "alpha1"))
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


def test_soft_targets_alone_teach_the_student(work, teacher, backbone50, cli):
    """alpha 0: the labels do not enter the loss, so all the student knows is the teacher's."""
    root, data, cache = work
    result = cli("distill", teacher, data, "--student", backbone50, "-o", root / "soft_only",
                 "--cache-dir", cache, "--alpha", 0, *OPTIONS)
    assert result.code == 0, result.err
    report = json.loads((root / "soft_only" / "metrics.json").read_text())["distillation"]
    assert report["alpha"] == 0 and report["agreement"] >= 0.95


def test_unlabeled_images_pruning_and_resume(work, teacher, backbone50, cli, monkeypatch):
    from resnet_ft.inference.loaders import shared_model

    root, data, cache = work
    # the teacher's model is read once for the two passes below, not once per pass
    shared_model.kept.values.clear()
    real, read = keras.saving.load_model, []
    monkeypatch.setattr(keras.saving, "load_model",
                        lambda path, **kw: read.append(path) or real(path, **kw))
    extra = write_standin_images(root / "extra", classes=CLASSES, per_class=4, min_size=40,
                                 max_size=64, seed=5)
    labelled = next((data / "roses").glob("*.jpg"))
    (extra / "roses" / "also_labelled.jpg").symlink_to(labelled)
    run = root / "unlabeled"
    result = cli("distill", teacher, data, "--student", backbone50, "-o", run, "--cache-dir",
                 cache, "--unlabeled", extra, "--prune-head", 0.5, "--prune-rounds", 2,
                 "--prune-epochs", 1, *OPTIONS[:-2], "--epochs", 1)
    assert result.code == 0, result.err
    # resuming reads the run's config.yaml (a distill config) and prunes the resumed model
    result = cli("distill", "-o", run, "--resume", "--epochs", 2)
    assert result.code == 0, result.err
    assert "resuming after epoch 1" in result.out
    assert [Path(path).resolve() for path in read].count((teacher / "model.keras").resolve()) == 1
    assert "ignoring 1 file(s) that the data directory labels" in result.out
    assert "63 training (+ 12 unlabelled) and 21 validation images" in result.out
    with open(run / "history.csv", newline="") as handle:
        assert [row["epoch"] for row in csv.DictReader(handle)] == ["1", "2"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["distillation"]["unlabeled"] == 12
    assert result.out.strip().splitlines()[-1].endswith("(alpha 0.1, T 4, 12 unlabelled images)")
    assert metrics["distillation"]["teacher"] == str(teacher)
    assert [r["units"] for r in metrics["pruning"]["rounds"]] == [192, 128]
    head = load_classifier(run)[0].get_layer("head")
    assert head.get_layer("head.dense").kernel.shape == (2048, 128)
    # unlabelled images (label -1) stay out of the reject score's class means
    assert Run(run).require_scorer().centres.shape == (3, 2048)
    assert head.get_layer("head.logits").kernel.shape == (128, 3)
    # the report describes the saved (pruned) model
    files = _val_files(run)
    student, taught = _labels_of(run, files), _labels_of(teacher, files)
    agreement = np.mean([a == b for a, b in zip(student, taught, strict=True)])
    assert metrics["distillation"]["agreement"] == pytest.approx(agreement, abs=1e-9)


def test_teacher_of_other_classes_is_refused(trained, work, backbone50, cli, tmp_path):
    _, data, _ = work
    run, _ = trained  # five flower classes
    result = cli("distill", run, data, "--student", backbone50, "-o", tmp_path / "out")
    assert_one_line_error(result, "was trained on classes", "daisy")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("--alpha", 1, "--unlabeled", "."), ("unlabeled images need alpha < 1",)),
        (("--alpha", 1.5), ("alpha must be a number in [0, 1]",)),
        (("--temperature", 0), ("temperature must be a number > 0",)),
        (("--unlabeled", "/nonexistent"), ("--unlabeled: directory not found",)),
    ],
)
def test_bad_distill_options(teacher, work, backbone50, cli, tmp_path, args, fragments):
    _, data, _ = work
    result = cli("distill", teacher, data, "--student", backbone50, "-o", tmp_path / "o", *args)
    assert_one_line_error(result, *fragments)


def test_teacher_trained_on_validation_images_is_counted(work, teacher, backbone50, cli):
    """Another seed splits the data otherwise: the validation images the teacher was trained
    on (its split.csv says which) are counted and reported, since its accuracy there is
    optimistic. Counted here from the two split files alone."""
    root, data, cache = work
    run = root / "other-seed"
    result = cli("distill", teacher, data, "--student", backbone50, "-o", run, "--cache-dir",
                 cache, "--seed", 7, *OPTIONS[:-2], "--epochs", 1)
    assert result.code == 0, result.err
    with open(teacher / "split.csv", newline="") as handle:
        taught = {r["file"] for r in csv.DictReader(handle) if r["subset"] == "train"}
    seen = sum(f in taught for f in _val_files(run))
    assert 0 < seen < len(_val_files(run))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["distillation"]["teacher_trained_on_val"] == seen
    assert f"the teacher was trained on {seen} of the 21 validation images" in result.out


def test_unreadable_teacher_model_is_one_line(work, teacher, backbone50, cli, tmp_path):
    """A teacher whose model.keras is a zip but no model: one line naming the teacher's file,
    raised before any student output exists."""
    import shutil
    import zipfile

    _, data, cache = work
    broken = tmp_path / "teacher"
    shutil.copytree(teacher, broken)
    (broken / "model.keras").unlink()
    with zipfile.ZipFile(broken / "model.keras", "w") as archive:
        archive.writestr("readme.txt", "not a model")
    result = cli("distill", broken, data, "--student", backbone50, "-o", tmp_path / "out",
                 "--cache-dir", cache, *OPTIONS)
    assert_one_line_error(result, f"teacher {broken / 'model.keras'}: cannot load model")


def test_api_needs_a_teacher_and_unlabeled_needs_images(work, teacher, backbone50, tmp_path):
    """The Python API checks what the CLI's arguments guarantee."""
    from resnet_ft import distill
    from resnet_ft.errors import InputError

    _, data, _ = work
    with pytest.raises(InputError, match=r"^no teacher given \(TEACHER_RUN"):
        distill({"data_dir": str(data), "backbone": str(backbone50)}, tmp_path / "o")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"^--unlabeled: no images in "):
        distill({"data_dir": str(data), "backbone": str(backbone50), "alpha": 0.5,
                 "teacher": str(teacher), "unlabeled": str(tmp_path / "empty")},
                tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_missing_teacher_or_student(work, backbone50, cli, tmp_path):
    _, data, _ = work
    assert_one_line_error(cli("distill", tmp_path / "none", data, "--student", backbone50, "-o",
                              tmp_path / "o"), "run directory not found")
    assert_one_line_error(cli("distill", tmp_path, data, "-o", tmp_path / "o"),
                          "no student backbone given (--student")
