"""The seams: one loader registry for every kind of model, and configs made of sections."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from resnet_ft.config import DistillConfig, TrainConfig, make_config
from resnet_ft.config.fields import section_of
from resnet_ft.errors import InputError
from resnet_ft.inference import loaders
from resnet_ft.inference.options import InferenceOptions, inference_options
from resnet_ft.inference.predictor import Predictor
from resnet_ft.util.recent import LastUsed


def test_every_export_format_is_a_registered_loader():
    """Importing resnet_ft registers the formats, so load_predictor opens their files."""
    from resnet_ft.exports.formats import FORMATS

    names = [loader.name for loader in loaders.LOADERS]
    assert set(FORMATS) <= set(names)
    assert names[-1] == "run"  # the catch-all for directories is asked last


def test_a_registered_loader_is_asked_in_its_turn(tmp_path: Path, monkeypatch):
    made = []

    def load(path: Path, request: loaders.Request) -> Predictor:
        made.append((path, request.precision))
        return Predictor(None, ["a", "b"], None)

    monkeypatch.setattr(loaders, "LOADERS", list(loaders.LOADERS))
    loaders.register(loaders.Loader("toy", lambda p: p.suffix == ".toy", load))
    model = tmp_path / "m.toy"
    model.write_text("")
    assert loaders.load_predictor(model).labels == ["a", "b"]
    assert made == [(model, "float32")]
    with pytest.raises(InputError, match="computes as it was saved"):
        loaders.load_predictor(model, precision="mixed_bfloat16")
    other = tmp_path / "m.txt"
    other.write_text("")
    with pytest.raises(InputError, match=r"no model resnet-ft can load \(known kinds: "):
        loaders.load_predictor(other)


def test_every_field_belongs_to_exactly_one_section():
    for kind in (TrainConfig, DistillConfig):
        declared = [f.name for section in kind.SECTIONS for f in dataclasses.fields(section)]
        assert sorted(declared) == sorted(f.name for f in dataclasses.fields(kind))
        assert len(declared) == len(set(declared))
        assert all(section_of(kind, f.name) for f in dataclasses.fields(kind))
    assert section_of(TrainConfig, "head_units") == "Head"
    assert section_of(TrainConfig, "precision") == "Runtime"


def test_config_yaml_stays_flat_and_old_files_load(tmp_path: Path):
    config = make_config({"data_dir": "d", "backbone": "b", "head": "linear"})
    data = yaml.safe_load(config.to_yaml())
    assert all(not isinstance(value, dict) for value in data.values())
    assert list(data)[:3] == ["data_dir", "backbone", "val_dir"]
    assert make_config(data) == config
    older = {k: v for k, v in data.items() if k != "head"}  # written before heads had kinds
    assert make_config(older).head == "mlp"
    assert config.head_spec(5).widths == (5,)


def test_pruning_a_head_without_hidden_units_is_refused():
    with pytest.raises(InputError, match="the linear head has none"):
        make_config({"head": "linear", "prune_head": 0.5})


def test_inference_options_keep_their_defaults_in_one_place():
    options = inference_options()
    assert (options.top_k, options.batch_size, options.precision, options.tta) == \
        (5, 32, "float32", False)
    assert inference_options(options, top_k=3).top_k == 3
    with pytest.raises(InputError, match="top_k must be an integer >= 1"):
        inference_options(top_k=0)
    with pytest.raises(InputError, match="exported --model computes as it was exported"):
        inference_options(model="m.tflite", precision="auto")
    assert InferenceOptions.SECTIONS[0].TITLE == "Inference"


def test_a_run_model_is_loaded_once_while_its_file_stays_the_same(tmp_path: Path, monkeypatch):
    import shutil

    from support.tiny_run import write_tiny_run

    import resnet_ft.models.files as files
    from resnet_ft.data.standin import write_standin_images

    images = write_standin_images(tmp_path / "images", per_class=2, min_size=24, max_size=32)
    run = write_tiny_run(images, tmp_path / "run", widths=(4,))
    loads: list[Path] = []
    monkeypatch.setattr(files, "load_model",
                        lambda path, _load=files.load_model: loads.append(path) or _load(path))
    monkeypatch.setattr(loaders.shared_model, "kept", LastUsed(loaders.RECENT_MODELS))
    first = loaders.load_predictor(run)
    assert loaders.load_predictor(run).model is first.model
    assert len(loads) == 1
    model = run / "model.keras"
    shutil.copy(model, tmp_path / "copy.keras")  # the same bytes in a new file, as a run
    (tmp_path / "copy.keras").replace(model)     # trained again is written (atomically)
    assert loaders.load_predictor(run).model is not first.model
    assert len(loads) == 2
    for other in ("a", "b"):  # two more runs push the first one out
        write_tiny_run(images, tmp_path / other, widths=(4,))
        loaders.load_predictor(tmp_path / other)
    loaders.load_predictor(run)
    assert len(loads) == 5
