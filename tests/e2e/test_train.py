"""Training on generated class-per-folder data with the ResNet-50 stand-in, whose depth
nothing here depends on (the ResNet-101 paths: test_finetune, test_convert_slim)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import yaml
from PIL import Image
from support.cli import SMALL, assert_one_line_error

from resnet_ft.data.folders import make_split
from resnet_ft.data.standin import write_standin_images
from resnet_ft.models.params import summarize
from resnet_ft.runs.run import load_classifier


def _history(run):
    with open(run / "history.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_run_directory_contents(trained):
    run, _ = trained
    names = {p.name for p in run.iterdir()}
    assert {"model.keras", "labels.json", "history.csv", "metrics.json", "config.yaml",
            "split.csv", "logs", "curves.png", "confusion.png", "state"} <= names
    assert json.loads((run / "labels.json").read_text()) == [
        "daisy", "dandelion", "roses", "sunflowers", "tulips"]
    rows = _history(run)
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert list(rows[0]) == ["epoch", "phase", "loss", "accuracy", "val_loss", "val_accuracy",
                             "seconds", "lr"]
    assert [float(r["lr"]) for r in rows] == [2e-4] * 3  # the default Adam rate, constant
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n"] == 10 and len(metrics["confusion_matrix"]) == 5
    assert set(metrics["per_class"]["roses"]) == {"precision", "recall", "f1", "support"}
    assert any(p.name.startswith("events.out.tfevents") for p in (run / "logs").iterdir())
    assert (run / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_best_epoch_is_the_lowest_val_loss(trained):
    run, _ = trained
    rows = _history(run)
    best = min(rows, key=lambda r: float(r["val_loss"]))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["best_epoch"] == int(best["epoch"])
    assert metrics["val_loss"] == pytest.approx(float(best["val_loss"]), rel=1e-4)


def test_saved_model_maps_images_to_probabilities(trained):
    run, _ = trained
    model, labels = load_classifier(run)
    assert model.input_shape == (None, 48, 48, 3)
    probs = np.asarray(model(np.random.default_rng(0).uniform(0, 255, (3, 48, 48, 3))))
    assert probs.shape == (3, len(labels))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_summary_counts_of_trained_model(trained):
    run, _ = trained
    model, _ = load_classifier(run)
    summary = summarize(model)
    assert summary.trainable == 2_103_301
    assert summary.non_trainable == 23_561_152  # the slim ResNet-50, BN statistics included
    head = next(s for s in summary.stages if s.name == "head")
    assert head.trainable == 2048 * 1024 + 1024 + 1024 * 5 + 5


def test_config_yaml_reproduces_the_run(trained, tmp_path, cli):
    """Rerunning from config.yaml alone gives the same history and the same weights."""
    run, cache = trained
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["epochs"] == 3 and config["image_size"] == 48 and config["augment"] == ["flip"]
    assert config["cache_dir"] == str(cache)
    again = tmp_path / "again"
    assert cli("train", "--config", run / "config.yaml", "-o", again).code == 0
    first, second = _history(run), _history(again)
    assert [r["epoch"] for r in second] == ["1", "2", "3"]
    for a, b in zip(first, second, strict=True):  # same seed, same cached features: same run
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-6, abs=1e-7), key
    ours, _ = load_classifier(run)
    theirs, _ = load_classifier(again)
    for x, y in zip(ours.weights, theirs.weights, strict=True):
        np.testing.assert_allclose(np.array(x), np.array(y), rtol=1e-5, atol=1e-7)


def test_second_run_hits_the_cache(trained, backbone50, tmp_path, cli):
    from resnet_ft.models.files import shared_backbone

    run, _ = trained
    shared = shared_backbone(backbone50)
    result = cli("train", "--config", run / "config.yaml", "-o", tmp_path / "again",
                 "--head-units", 64, "--epochs", 1)
    assert result.code == 0, result.err
    assert "extracting features" not in result.out + result.err
    # the run assembled its classifier on the process's shared backbone, through a model of
    # its own: nothing of the run (its head) stays reachable from the shared copy
    assert shared_backbone(backbone50) is shared and shared._inbound_nodes == []


def test_nonempty_run_dir_is_refused(trained, cli):
    run, _ = trained
    result = cli("train", "--config", run / "config.yaml", "-o", run)
    assert_one_line_error(result, "not empty", "--resume", "--overwrite")


def test_overwrite_replaces_the_run_files_and_keeps_the_rest(trained, cli, tmp_path):
    """--overwrite removes what train writes (an old history would mix two runs) and only
    that: a file of the user's in the directory stays."""
    import shutil

    run, _ = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "notes.txt").write_text("mine")
    result = cli("train", "--config", run / "config.yaml", "-o", copy, "--overwrite",
                 "--epochs", 1)
    assert result.code == 0, result.err
    assert (copy / "notes.txt").read_text() == "mine"
    with open(copy / "history.csv", newline="") as handle:
        assert [row["epoch"] for row in csv.DictReader(handle)] == ["1"]


def test_resume_without_training_state_is_refused(trained, cli, tmp_path):
    run, _ = trained
    (tmp_path / "empty").mkdir()
    result = cli("train", "--config", run / "config.yaml", "-o", tmp_path / "empty", "--resume")
    assert_one_line_error(result, "holds no resumable training state")
    # nothing written but the run lock's file (an flock needs a file; it is empty)
    assert [p.name for p in (tmp_path / "empty").iterdir()] == [".lock"]


def test_resume_continues_without_duplicating_history(flowers, backbone50, tmp_path, cli):
    run = tmp_path / "run"
    base = ("--backbone", backbone50, "--cache-dir", tmp_path / "cache", "--val-split", 0.25,
            *SMALL)
    assert cli("train", flowers, "-o", run, "--epochs", 2, *base).code == 0
    result = cli("train", "-o", run, "--resume", "--epochs", 4)
    assert result.code == 0, result.err
    assert "resuming after epoch 2" in result.out
    assert [r["epoch"] for r in _history(run)] == ["1", "2", "3", "4"]
    state = json.loads((run / "state" / "state.json").read_text())
    assert state["epoch"] == 4 and len(state["history"]) == 4


def test_cache_and_online_paths_train_the_same_model(flowers, backbone50, tmp_path, cli):
    common = (flowers, "--backbone", backbone50, "--epochs", 1, "--no-augment", "--seed", 3,
              "--val-split", 0.25, *SMALL)
    cached = cli("train", *common, "-o", tmp_path / "cached", "--cache-dir", tmp_path / "c")
    online = cli("train", *common, "-o", tmp_path / "online", "--no-cache")
    assert cached.code == 0 and online.code == 0, cached.err + online.err
    a, b = _history(tmp_path / "cached")[0], _history(tmp_path / "online")[0]
    assert abs(float(a["loss"]) - float(b["loss"])) <= 1e-3
    assert abs(float(a["val_loss"]) - float(b["val_loss"])) <= 1e-3


def test_cached_views_match_online_flips(flowers, backbone50, tmp_path, cli):
    """With flips on, the cached run draws one of two views per image per epoch exactly as the
    online run flips: same seed, same losses, epoch after epoch."""
    common = (flowers, "--backbone", backbone50, "--epochs", 2, "--seed", 4,
              "--val-split", 0.25, *SMALL)
    cached = cli("train", *common, "-o", tmp_path / "cached", "--cache-dir", tmp_path / "c")
    online = cli("train", *common, "-o", tmp_path / "online", "--no-cache")
    assert cached.code == 0 and online.code == 0, cached.err + online.err
    for a, b in zip(_history(tmp_path / "cached"), _history(tmp_path / "online"), strict=True):
        assert abs(float(a["loss"]) - float(b["loss"])) <= 1e-3
    unflipped = cli("train", *common, "-o", tmp_path / "plain", "--cache-dir", tmp_path / "c",
                    "--no-augment")
    assert unflipped.code == 0
    # the comparison can tell: training on unflipped views gives other losses
    assert abs(float(_history(tmp_path / "plain")[1]["loss"])
               - float(_history(tmp_path / "online")[1]["loss"])) > 1e-3


def test_split_is_seeded_and_stratified(flowers):
    first = make_split(flowers, val_dir=None, val_split=0.25, seed=7)
    again = make_split(flowers, val_dir=None, val_split=0.25, seed=7)
    other = make_split(flowers, val_dir=None, val_split=0.25, seed=8)
    assert first.to_csv() == again.to_csv()
    assert first.to_csv() != other.to_csv()
    for label in range(5):
        assert sum(s.label == label for s in first.val) == 2
        assert sum(s.label == label for s in first.train) == 6
    assert not {s.path for s in first.train} & {s.path for s in first.val}


def test_train_and_val_folders(tmp_path):
    for subset, count in (("train", 4), ("validation", 2)):
        write_standin_images(tmp_path / subset, classes=("a", "b"), per_class=count,
                             min_size=32, max_size=40)
    split = make_split(tmp_path, val_dir=None, val_split=0.5, seed=0)
    assert split.source == "folders" and split.labels == ["a", "b"]
    assert len(split.train) == 8 and len(split.val) == 4
    assert all("validation" in str(s.path) for s in split.val)


def test_val_dir_with_other_classes_is_an_error(tmp_path, cli, backbone50):
    write_standin_images(tmp_path / "train", classes=("a", "b"), per_class=2, min_size=32)
    write_standin_images(tmp_path / "other", classes=("a", "c"), per_class=2, min_size=32)
    result = cli("train", tmp_path / "train", "--val-dir", tmp_path / "other",
                 "--backbone", backbone50, "-o", tmp_path / "run")
    assert_one_line_error(result, "missing ['b']", "unexpected ['c']")


def _odd_formats(folder):
    """One class folder with every supported format and mode, plus junk to skip."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(folder / "a.png")
    Image.fromarray(rgb).save(folder / "b.bmp")
    Image.fromarray(rgb).save(folder / "c.webp")
    Image.fromarray(rgb).save(folder / "d.gif")
    Image.fromarray(rgb[..., 0]).save(folder / "e.jpg")
    Image.fromarray(rgb).convert("CMYK").save(folder / "f.jpg")
    Image.fromarray(np.dstack([rgb, rgb[..., :1]])).save(folder / "g.png")
    (folder / "broken.jpg").write_bytes(b"not an image at all")
    (folder / "notes.txt").write_text("ignored")
    (folder / ".DS_Store").write_bytes(b"\0\0")


def test_odd_formats_train_and_bad_files_are_reported(tmp_path, cli, backbone50):
    write_standin_images(tmp_path / "data", classes=("plain",), per_class=7, min_size=32)
    _odd_formats(tmp_path / "data" / "odd")
    base = (tmp_path / "data", "--backbone", backbone50, "--epochs", 1, "--val-split", 0.3,
            "--cache-dir", tmp_path / "cache", *SMALL)
    result = cli("train", *base, "-o", tmp_path / "run")
    assert result.code == 0, result.err
    assert "skipped 1 file(s)" in result.out
    assert "broken.jpg: not an image file" in result.out
    rows = list(csv.reader((tmp_path / "run" / "skipped.csv").open()))
    assert rows[0] == ["file", "reason"] and rows[1][0].endswith("broken.jpg")
    split = list(csv.DictReader((tmp_path / "run" / "split.csv").open()))
    assert len(split) == 15  # 7 plain + 7 odd-format images + the broken one

    strict = cli("train", *base, "-o", tmp_path / "strict", "--strict")
    assert_one_line_error(strict, "--strict", "1 file(s) cannot be decoded", "broken.jpg")


def test_class_without_usable_images_is_an_error(tmp_path, cli, backbone50):
    write_standin_images(tmp_path / "data", classes=("a", "b"), per_class=3, min_size=32)
    (tmp_path / "data" / "c").mkdir()
    (tmp_path / "data" / "c" / "x.jpg").write_bytes(b"junk")
    result = cli("train", tmp_path / "data", "--backbone", backbone50, "-o", tmp_path / "r",
                 "--cache-dir", tmp_path / "cache", *SMALL)
    assert_one_line_error(result, "no usable image", "c")


def test_single_class_is_an_error(tmp_path, cli, backbone50):
    write_standin_images(tmp_path / "data", classes=("only",), per_class=3, min_size=32)
    result = cli("train", tmp_path / "data", "--backbone", backbone50, "-o", tmp_path / "r")
    assert_one_line_error(result, "at least 2 class folders")


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"epoch": 3}, "unknown key 'epoch'"),
        ({"epochs": 0}, "epochs must be an integer >= 1"),
        ({"batch_size": "big"}, "batch_size must be an integer"),
        ({"lr": 0}, "lr must be a number > 0"),
        ({"val_split": 1.5}, "val_split must be a number in (0, 1)"),
        ({"image_size": 16}, "image_size must be an integer in [32, 4096]"),
        ({"augment": "yes"}, "augment must list names among flip, crop"),
        ({"augment": 3}, "augment must be true, false or a list"),
        ({"trainable": "block5"}, "trainable must be one of head, block4"),
        ({"optimizer": "lamb"}, "optimizer must be one of adam, sgd, adamw"),
        ({"label_smoothing": 1.0}, "label_smoothing must be a number in [0, 1)"),
    ],
)
def test_bad_config_is_one_line_error(tmp_path, cli, config, fragment):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    assert_one_line_error(cli("train", "--config", path, "-o", tmp_path / "run"), fragment)
    assert not (tmp_path / "run").exists()


def test_cli_wins_over_config(tmp_path, flowers, backbone50, cli):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"data_dir": str(flowers), "backbone": str(backbone50),
                                    "epochs": 7, "image_size": 48, "batch_size": 8,
                                    "cache_dir": str(tmp_path / "cache")}))
    assert cli("train", "--config", path, "-o", tmp_path / "run", "--epochs", 1).code == 0
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["epochs"] == 1


def test_train_on_a_split_file(flowers, backbone50, tmp_path, cli):
    """``--split FILE`` (e.g. doctor --fix-split's): exactly those files, on those sides."""
    files = sorted(flowers.rglob("*.jpg"))
    rows = [(str(f), f.parent.name, "val" if i % 5 == 0 else "train")
            for i, f in enumerate(files) if i % 2 == 0]
    split = tmp_path / "split.csv"
    split.write_text("file,label,subset\n" + "".join(f"{a},{b},{c}\n" for a, b, c in rows))
    result = cli("train", flowers, "--backbone", backbone50, "-o", tmp_path / "run", "--split",
                 split, "--epochs", 1, "--cache-dir", tmp_path / "cache", *SMALL)
    assert result.code == 0, result.err
    assert "(split file)" in result.out
    written = list(csv.reader((tmp_path / "run" / "split.csv").open()))[1:]
    assert sorted(map(tuple, written)) == sorted(rows)
    bad = tmp_path / "bad.csv"
    bad.write_text(f"file,label,subset\n{files[0]},cacti,train\n")
    refused = cli("train", flowers, "--backbone", backbone50, "-o", tmp_path / "r2", "--split",
                  bad, *SMALL)
    assert_one_line_error(refused, f"split file {bad}, line 2: unknown class 'cacti'")


def test_linear_head_trains_and_cannot_be_pruned(flowers, backbone50, tmp_path, cli):
    """``--head linear``: GAP -> Dense N, the only trainable weights; pruning has nothing to cut."""
    run = tmp_path / "run"
    result = cli("train", flowers, "--backbone", backbone50, "-o", run, "--head", "linear",
                 "--epochs", 2, "--val-split", 0.25, "--cache-dir", tmp_path / "cache", *SMALL)
    assert result.code == 0, result.err
    summary = json.loads(cli("summary", run, "--json").out)
    assert summary["trainable"] == 2048 * 5 + 5
    model, _ = load_classifier(run)
    dense = [layer.name for layer in model.get_layer("head").layers if hasattr(layer, "units")]
    assert dense == ["head.logits"]
    assert yaml.safe_load((run / "config.yaml").read_text())["head"] == "linear"
    assert_one_line_error(cli("train", flowers, "--backbone", backbone50, "-o", tmp_path / "p",
                              "--head", "linear", "--prune-head", 0.5), "the linear head has none")
