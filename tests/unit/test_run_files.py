"""Run directories, model files, the cache's default home and progress output, without training.

Every reader of a run directory must fail the same way on the same broken
directory: one line that names the file. Model files are built here from tiny
Keras models (a few hundred weights) and hand-written zip archives.
"""

from __future__ import annotations

import io
import json
import types
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from resnet_ft.errors import InputError
from resnet_ft.features.identity import backbone_identity, default_cache_dir
from resnet_ft.models import files
from resnet_ft.models.files import (
    METADATA_ENTRY,
    backbone_metadata,
    load_backbone,
    load_imagenet_classifier,
    load_model,
    read_metadata,
    save_model,
)
from resnet_ft.runs import run as run_dir
from resnet_ft.runs.run import Run, load_classifier
from resnet_ft.runs.run import model_file as model_path
from resnet_ft.util import progress
from resnet_ft.util.progress import track

LABELS = ["cat", "dog", "fox"]


def require_run(path):
    return Run.finished(path).path


def read_labels(path):
    return Run(path).labels


def split_files(path, subset):
    return Run(path).split(subset)


def _one_line_input_error(call: Callable[[], object], *fragments: str) -> str:
    """Run ``call``; it must raise a one-line InputError containing every fragment."""
    with pytest.raises(InputError) as error:
        call()
    message = str(error.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


def _classifier(outputs: int = 1):
    """A tiny pixels -> softmax model; with ``outputs=2`` a second (logits) head as well."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(1)
    pixels = keras.Input((8, 8, 3), name="pixels")
    pooled = layers.GlobalAveragePooling2D()(layers.Rescaling(1 / 255)(pixels))
    features = layers.Dense(4, name="features")(pooled)
    if outputs == 1:
        return keras.Model(pixels, layers.Dense(3, activation="softmax")(features))
    logits = layers.Dense(5, name="logits")(features)
    return keras.Model(pixels, [features, logits], name="two_heads")


def _run(tmp_path: Path, labels: object = LABELS) -> Path:
    """A run directory with a tiny model, ``labels`` and a three-row split."""
    run = tmp_path / "run"
    run.mkdir()
    save_model(_classifier(), run / "model.keras", {"kind": "classifier"})
    (run / "labels.json").write_text(json.dumps(labels))
    (run / "split.csv").write_text(
        "file,label,subset\n/d/cat/1.jpg,cat,train\n/d/dog/2.jpg,dog,val\n"
        "/d/fox/3.jpg,fox,train\n/d/cat/4.jpg,cat,val\n")
    return run


# run_dir ------------------------------------------------------------------------------------


def test_model_path_is_the_file_or_the_runs_model(tmp_path: Path) -> None:
    """A run directory must resolve to RUN/model.keras and a model file to itself."""
    assert model_path(tmp_path) == tmp_path / "model.keras"
    assert model_path(str(tmp_path / "other.keras")) == tmp_path / "other.keras"


def test_require_run_names_a_missing_directory_and_a_missing_model(tmp_path: Path) -> None:
    """A missing run or one without model.keras must be a one-line error, not a Keras trace."""
    missing = tmp_path / "nope"
    assert _one_line_input_error(lambda: require_run(missing)) == \
        f"run directory not found: {missing}"
    a_file = tmp_path / "model.keras"
    a_file.write_bytes(b"")
    _one_line_input_error(lambda: require_run(a_file), "run directory not found")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _one_line_input_error(lambda: require_run(empty)) == \
        f"no trained model in {empty} (missing model.keras)"
    (empty / "model.keras").mkdir()  # a folder of that name is no model either
    _one_line_input_error(lambda: require_run(empty), "missing model.keras")
    run = _run(tmp_path)
    assert require_run(str(run)) == run


def test_load_classifier_returns_the_model_and_labels_in_order(tmp_path: Path) -> None:
    """load_classifier must give the saved network (same outputs) and labels.json's order."""
    run = _run(tmp_path, ["zebra", "ant", "moth"])
    model, labels = load_classifier(run)
    assert labels == ["zebra", "ant", "moth"]
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    original = load_model(run / "model.keras")
    np.testing.assert_array_equal(np.asarray(model(pixels)), np.asarray(original(pixels)))
    assert model.output_shape == (None, 3)


@pytest.mark.parametrize(("content", "fragment"), [
    (None, "cannot read"),
    ("[\"cat\", ", "cannot read"),
    (json.dumps({"0": "cat"}), "must be a JSON list of class names"),
    (json.dumps(["cat", 1]), "must be a JSON list of class names"),
    (json.dumps("cat"), "must be a JSON list of class names"),
])
def test_bad_labels_file_is_one_line_naming_it(tmp_path: Path, content: str | None,
                                               fragment: str) -> None:
    """A missing, torn or wrongly shaped labels.json must name the file, in one line."""
    run = _run(tmp_path)
    labels = run / "labels.json"
    if content is None:
        labels.unlink()
    else:
        labels.write_text(content)
    message = _one_line_input_error(lambda: read_labels(run), str(labels), fragment)
    assert message.startswith(f"cannot read {labels}: ") or message.startswith(str(labels))
    _one_line_input_error(lambda: load_classifier(run), str(labels), fragment)


def test_split_files_lists_one_subset_in_file_order(tmp_path: Path) -> None:
    """split_files must keep the subset's rows only, in split.csv's order, as paths."""
    run = _run(tmp_path)
    assert split_files(run, "val") == [Path("/d/dog/2.jpg"), Path("/d/cat/4.jpg")]
    assert split_files(run, "train") == [Path("/d/cat/1.jpg"), Path("/d/fox/3.jpg")]
    assert split_files(run, "test") == []


def test_split_files_missing_or_without_file_column(tmp_path: Path) -> None:
    """A missing split.csv, or one without the file column, must be one line naming it."""
    run = _run(tmp_path)
    split = run / "split.csv"
    split.write_text("path,label,subset\n/d/cat/1.jpg,cat,val\n")
    assert _one_line_input_error(lambda: split_files(run, "val")) == \
        f"cannot read {split}: 'file'"
    split.unlink()
    _one_line_input_error(lambda: split_files(run, "val"), f"cannot read {split}: ",
                          "No such file")


# files --------------------------------------------------------------------------------------


def test_metadata_round_trips_and_foreign_archives_have_none(tmp_path: Path) -> None:
    """Embedded metadata must read back as written; a foreign .keras file has none ({})."""
    import keras

    meta = {"kind": "backbone", "backbone": {"family": "resnet_v1", "depth": 50}}
    path = tmp_path / "ours.keras"
    save_model(_classifier(), path, meta)
    assert read_metadata(path) == meta
    assert backbone_metadata(path) == {"family": "resnet_v1", "depth": 50}
    with zipfile.ZipFile(path) as archive:
        assert json.loads(archive.read(METADATA_ENTRY)) == meta
    assert [p.name for p in tmp_path.iterdir()] == ["ours.keras"]  # no temporary left
    foreign = tmp_path / "plain.keras"
    _classifier().save(foreign)  # Keras' own save: no resnet_ft.json entry
    assert isinstance(keras.saving.load_model(foreign), keras.Model)
    assert read_metadata(foreign) == {}
    assert backbone_metadata(foreign) == {}
    save_model(_classifier(), tmp_path / "clf.keras", {"kind": "classifier"})
    assert backbone_metadata(tmp_path / "clf.keras") == {}


def test_read_metadata_of_a_non_zip_a_missing_file_or_bad_json(tmp_path: Path) -> None:
    """Unreadable metadata must be a one-line 'not a Keras model file' naming the file."""
    text = tmp_path / "notes.keras"
    text.write_text("just text")
    _one_line_input_error(lambda: read_metadata(text), f"not a Keras model file: {text} (")
    missing = tmp_path / "missing.keras"
    _one_line_input_error(lambda: read_metadata(missing), f"not a Keras model file: {missing}")
    torn = tmp_path / "torn.keras"
    with zipfile.ZipFile(torn, "w") as archive:
        archive.writestr(METADATA_ENTRY, "{\"kind\": ")
    _one_line_input_error(lambda: backbone_metadata(torn), f"not a Keras model file: {torn}")


def test_load_model_failures_are_one_line(tmp_path: Path) -> None:
    """A missing file, a non-zip and a zip that is no Keras model must each be one line."""
    missing = tmp_path / "missing.keras"
    assert _one_line_input_error(lambda: load_model(missing)) == \
        f"model file not found: {missing}"
    _one_line_input_error(lambda: load_model(tmp_path), "model file not found")  # a folder
    text = tmp_path / "text.keras"
    text.write_text("not a zip")
    assert _one_line_input_error(lambda: load_model(text)) == \
        f"not a Keras model file (.keras zip archive): {text}"
    other = tmp_path / "other.keras"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("readme.txt", "a zip, but no model inside")
    _one_line_input_error(lambda: load_model(other), f"cannot load model {other}: ",
                          "config.json")


def test_load_model_refuses_code_in_safe_mode(tmp_path: Path) -> None:
    """A .keras file with a Python lambda must not be deserialised (safe_mode=True)."""
    import keras

    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    path = tmp_path / "lambda.keras"
    save_model(model, path, {"kind": "classifier"})
    _one_line_input_error(lambda: load_model(path), f"cannot load model {path}: ", "lambda")


def test_load_backbone_keeps_the_feature_output(tmp_path: Path) -> None:
    """A backbone with the ImageNet top must load as its feature output alone."""
    two = _classifier(outputs=2)
    path = tmp_path / "with_top.keras"
    save_model(two, path, {"kind": "backbone"})
    backbone = load_backbone(path)
    assert len(backbone.outputs) == 1 and backbone.output_shape == (None, 4)
    assert backbone.name == "two_heads"
    pixels = np.random.default_rng(2).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    features, logits = (np.asarray(x) for x in two(pixels))
    np.testing.assert_allclose(np.asarray(backbone(pixels)), features, rtol=1e-6)
    classifier = load_imagenet_classifier(path)
    assert classifier.name == "two_heads_logits" and classifier.output_shape == (None, 5)
    np.testing.assert_allclose(np.asarray(classifier(pixels)), logits, rtol=1e-6)
    one = tmp_path / "no_top.keras"
    save_model(_classifier(), one, {"kind": "backbone"})
    single = load_backbone(one)
    assert single.output_shape == (None, 3)  # a one-output model is returned as it is


def test_imagenet_classifier_needs_include_top(tmp_path: Path) -> None:
    """A backbone without --include-top must say how to get the ImageNet classifier."""
    path = tmp_path / "no_top.keras"
    save_model(_classifier(), path, {"kind": "backbone"})
    assert _one_line_input_error(lambda: load_imagenet_classifier(path)) == (
        f"{path} has no ImageNet classifier; convert the checkpoint with --include-top")


def test_modules_keep_their_file_names() -> None:
    """Renaming a run file breaks every run already written: the names are the contract."""
    assert (run_dir.MODEL_FILE, run_dir.LABELS_FILE, run_dir.SPLIT_FILE) == (
        "model.keras", "labels.json", "split.csv")
    assert files.METADATA_ENTRY == "resnet_ft.json"


# identity -----------------------------------------------------------------------------------


def test_default_cache_dir_follows_xdg_cache_home(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """$XDG_CACHE_HOME must be honoured; unset or empty, ~/.cache is the base."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "resnet-ft" / "features"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", "")  # set but empty: the spec says use the default
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "resnet-ft" / "features"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "resnet-ft" / "features"


def test_backbone_identity_is_salted_by_precision(tmp_path: Path) -> None:
    """float32 keeps the bare file hash (old caches stay valid); other precisions get new keys."""
    import hashlib

    path = tmp_path / "backbone.keras"
    path.write_bytes(b"weights" * 1000)
    digest = hashlib.sha256(b"weights" * 1000).hexdigest()
    assert backbone_identity(path, "float32") == digest
    bf16 = backbone_identity(str(path), "mixed_bfloat16")
    assert bf16 == hashlib.sha256(f"{digest}:mixed_bfloat16".encode()).hexdigest()
    assert len({digest, bf16, backbone_identity(path, "mixed_float16")}) == 3


# progress -----------------------------------------------------------------------------------


class _Clock:
    """A perf_counter the test moves by hand, so rates are exact."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    clock = _Clock()
    monkeypatch.setattr(progress, "time", types.SimpleNamespace(perf_counter=clock))
    return clock


def _console(buffer: io.StringIO, *, terminal: bool) -> Console:
    return Console(file=buffer, force_terminal=terminal, color_system=None, highlight=False,
                   width=120)


def test_plain_progress_prints_quarter_lines_and_a_summary(clock: _Clock) -> None:
    """Off a terminal: one line per quarter (none at 100 %), then the total and the rate."""
    buffer = io.StringIO()
    with track(_console(buffer, terminal=False), "hashing", 8, "file") as tracker:
        clock.now += 2.0
        for _ in range(8):
            tracker.advance(1)
        assert tracker.done == 8 and tracker.rate == 4.0
    assert buffer.getvalue().splitlines() == [
        "hashing: 2/8 (1.0 file/s)",
        "hashing: 4/8 (2.0 file/s)",
        "hashing: 6/8 (3.0 file/s)",
        "hashing: 8/8 in 2.0 s (4.0 file/s)",
    ]


def test_plain_progress_jumps_report_each_quarter_once(clock: _Clock) -> None:
    """A big step crossing several quarters must print one line, and later quarters still show."""
    buffer = io.StringIO()
    with track(_console(buffer, terminal=False), "scoring", 8) as tracker:
        clock.now += 1.0
        tracker.advance(5)  # past 1/4 and 1/2 at once
        tracker.advance(1)  # 6/8 >= 1/2, the next mark
        tracker.advance(1)  # 7/8 >= 3/4
        tracker.advance(1)
    assert buffer.getvalue().splitlines() == [
        "scoring: 5/8 (5.0 img/s)",
        "scoring: 6/8 (6.0 img/s)",
        "scoring: 7/8 (7.0 img/s)",
        "scoring: 8/8 in 1.0 s (8.0 img/s)",
    ]


def test_plain_false_is_silent_off_a_terminal(clock: _Clock) -> None:
    """plain=False loops (training epochs) must print nothing at all when piped."""
    buffer = io.StringIO()
    with track(_console(buffer, terminal=False), "epoch 1", 8, plain=False) as tracker:
        clock.now += 1.0
        for _ in range(8):
            tracker.advance(1)
    assert tracker.done == 8
    assert buffer.getvalue() == ""


def test_empty_loop_prints_no_summary(clock: _Clock) -> None:
    """A loop over nothing must neither divide by zero nor print a '0/0' line."""
    buffer = io.StringIO()
    with track(_console(buffer, terminal=False), "checking images", 0) as tracker:
        tracker.advance(0)
    assert buffer.getvalue() == ""


def test_terminal_progress_draws_a_bar_not_lines(clock: _Clock) -> None:
    """On a terminal: a rich bar counts to the total with the rate; no quarter lines."""
    buffer = io.StringIO()
    with track(_console(buffer, terminal=True), "scoring", 4, "img") as tracker:
        clock.now += 2.0
        for _ in range(4):
            tracker.advance(1)
        task = tracker._bar.tasks[0]
        assert (task.completed, task.total, task.fields["rate"]) == (4, 4, 2.0)
    out = buffer.getvalue()
    assert "4/4 2.0 img/s" in out  # the bar's last frame: M of N and the rate column
    assert "ETA" in out
    assert "scoring: 1/4" not in out and "scoring: 2/4" not in out
    assert out.rstrip("\n").endswith("scoring: 4/4 in 2.0 s (2.0 img/s)")


def test_terminal_progress_with_plain_false_has_no_summary(clock: _Clock) -> None:
    """plain=False on a terminal: the transient bar only, no summary line after it."""
    buffer = io.StringIO()
    with track(_console(buffer, terminal=True), "epoch 2", 3, plain=False) as tracker:
        clock.now += 1.0
        tracker.advance(3)
    out = buffer.getvalue()
    assert "3/3 3.0 img/s" in out
    assert "epoch 2: 3/3 in" not in out
