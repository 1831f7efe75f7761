"""``--precision int8``: OpenVINO quantised on the run's own images, checked, cached, trusted.

One data set of generated images and the ResNet-50 stand-in serve every test: int8 runs are
calibrated once (module fixture) and the quantised model is found again by later runs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from resnet_ft.data.standin import write_standin_images

COMMON = ("--image-size", 96, "--batch-size", 8, "--val-split", 0.2, "--seed", 1,
          "--calibration-images", 100, "--epochs", 20)


@pytest.fixture(scope="module")
def data(module_tmp) -> Path:
    return write_standin_images(module_tmp("int8") / "data", per_class=40,
                                min_size=80, max_size=200)


@pytest.fixture(scope="module")
def runs(data, backbone50, module_tmp):
    """An int8 run and a float32 run on the same data (and store root), and their outputs."""
    from resnet_ft.cli import main

    root = module_tmp("int8runs")
    for precision in ("int8", "float32"):
        code = main([str(a) for a in ("train", data, "--backbone", backbone50, "-o",
                                      root / precision, "--precision", precision,
                                      "--cache-dir", root / "cache", *COMMON)])
        assert code == 0
    return root


def _predicted(run: Path, cli) -> dict[str, str]:
    val = [line.split(",")[0] for line in (run / "split.csv").read_text().splitlines()[1:]
           if line.endswith(",val")]
    result = cli("predict", run, *val, "--json")
    assert result.code == 0, result.err
    return {entry["file"]: entry["label"] for entry in json.loads(result.out)}


def test_int8_is_checked_recorded_and_agrees_with_float32(runs, cli):
    metrics = json.loads((runs / "int8" / "metrics.json").read_text())
    check = metrics["int8"]
    assert "refused" not in check, check
    assert check["images"] == 60 and check["median"] >= 0.98 and check["worst"] >= 0.90
    assert yaml.safe_load((runs / "int8" / "config.yaml").read_text())["precision"] == "int8"
    int8, float32 = _predicted(runs / "int8", cli), _predicted(runs / "float32", cli)
    agreement = np.mean([int8[f] == float32[f] for f in float32])
    assert agreement >= 0.95, agreement  # heads trained on int8 and on float32 features


def test_the_quantised_model_is_cached_and_features_stored_under_its_own_key(runs, data,
                                                                              backbone50,
                                                                              tmp_path, cli):
    models = sorted((runs / "cache" / "int8").iterdir())
    assert len(models) == 1 and {p.name for p in models[0].iterdir()} == {
        "model.xml", "model.bin", "check.json"}
    again = cli("train", data, "--backbone", backbone50, "-o", tmp_path / "again",
                "--precision", "int8", "--cache-dir", runs / "cache", *COMMON)
    assert again.code == 0, again.err
    assert "calibrating" not in again.out and "extracting" not in again.out  # all found
    other = cli("train", data, "--backbone", backbone50, "-o", tmp_path / "other",
                "--precision", "int8", "--cache-dir", runs / "cache", *COMMON[:-4],
                "--calibration-images", 60, "--epochs", 1)
    assert other.code == 0, other.err
    assert "calibrating int8 on 60 training images" in other.out  # another sample: a miss
    assert len(list((runs / "cache" / "int8").iterdir())) == 2


def test_a_failed_check_falls_back_in_one_line(runs, data, backbone50, tmp_path, cli,
                                              monkeypatch):
    import resnet_ft.features.engines.openvino as engine

    monkeypatch.setattr(engine, "MIN_MEDIAN", 1.01)  # no quantised model can pass
    cache = tmp_path / "cache"
    shutil.copytree(runs / "cache" / "int8", cache / "int8")  # calibrated: the check is read
    result = cli("train", data, "--backbone", backbone50, "-o", tmp_path / "run", "--precision",
                 "int8", "--cache-dir", cache, *COMMON[:-2], "--epochs", 1)
    assert result.code == 0, result.err
    lines = [line for line in result.out.splitlines() if line.startswith("int8 refused")]
    assert len(lines) == 1 and "needed 1.01 and 0.9" in lines[0]
    fallback = lines[0].rsplit("computing in ", 1)[1].removesuffix(" instead")
    assert fallback in ("mixed_bfloat16", "float32")
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["precision"] == \
        fallback  # a rerun from config.yaml computes what this run computed
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["int8"]["fallback"] == \
        fallback


def test_bulk_predict_in_int8_uses_the_runs_own_calibration(runs, cli):
    """The run's training images calibrate it, so the quantised model training made serves."""
    val = [line.split(",")[0] for line in (runs / "int8" / "split.csv").read_text()
           .splitlines()[1:] if line.endswith(",val")][:4]
    result = cli("predict", runs / "int8", *val, "--json", "--precision", "int8")
    assert result.code == 0, result.err
    assert "precision int8: as asked" in result.err and "calibrating" not in result.err
    assert len(json.loads(result.out)) == 4
    assert len(list((runs / "cache" / "int8").iterdir())) >= 1
