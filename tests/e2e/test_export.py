"""export: a SavedModel that decodes like training, and TFLite (float32, float16, dynamic, int8).

The exports that check fidelity use the session's stand-in ResNet-50 run (``trained``)
and, for int8, a longer-trained run on the same cached features (``confident``): the
3-epoch run is not confident on enough images for a top-1 agreement test to mean
anything. Each ResNet TFLite conversion takes ~10 s on 2 cores, so the mechanics
that do not depend on the network (float16 / dynamic sizes and ops, calibration count,
atomicity, re-export) use ``tiny``: a small CNN saved as a resnet-ft run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support.cli import SMALL
from support.tiny_run import write_tiny_run

import resnet_ft.exports.fidelity as export_module
from resnet_ft.data.preprocessing import image_dataset
from resnet_ft.errors import InputError, OutputError
from resnet_ft.evaluation.evaluate import evaluate_dir
from resnet_ft.exports import export, export_saved_model, export_tflite, load_exported
from resnet_ft.inference.loaders import load_predictor
from resnet_ft.inference.predict import predict_files

WORKER = Path(__file__).parents[1] / "support" / "export_worker.py"


def _files(folder: Path, pattern: str = "*.jpg") -> list[Path]:
    return sorted(folder.rglob(pattern))


def _probabilities(predictor, paths: list[Path]) -> np.ndarray:
    return np.stack([probs for _, probs, _ in predictor.probabilities(paths)])


@pytest.fixture(scope="module")
def pngs(flowers, module_tmp) -> list[Path]:
    """The 40 stand-in JPEGs re-saved as PNG: lossless, so every decoder sees the same pixels."""
    folder = module_tmp("png")
    out = []
    for path in _files(flowers):
        target = folder / f"{path.stem}.png"
        Image.open(path).save(target)
        out.append(target)
    return out


@pytest.fixture(scope="module")
def float_model(trained):
    """The trained run's Keras model as ``predict`` loads it (loaded once: a whole ResNet)."""
    return load_predictor(trained[0])


@pytest.fixture(scope="module")
def saved_model(trained, module_tmp):
    run, _ = trained
    out = module_tmp("export") / "saved_model"
    return out, export_saved_model(run, out)


@pytest.fixture(scope="module")
def serve(saved_model):
    """``serving_default`` of the exported SavedModel: file paths -> numpy outputs."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(saved_model[0]))

    def run(paths: list[Path]) -> dict[str, np.ndarray]:
        outputs = loaded.signatures["serving_default"](
            images=tf.constant([p.read_bytes() for p in paths])
        )
        return {name: value.numpy() for name, value in outputs.items()}

    return run


@pytest.fixture(scope="module")
def tflite_float(trained, module_tmp):
    run, _ = trained
    out = module_tmp("export") / "model.tflite"
    return out, export_tflite(run, out)


@pytest.fixture(scope="module")
def confident(trained, flowers, backbone50, module_tmp) -> Path:
    """40 epochs at lr 1e-3 on the features ``trained`` cached: confident on most images."""
    from resnet_ft.cli import main

    _, cache = trained
    run = module_tmp("runs") / "confident"
    args = ["train", flowers, "--backbone", backbone50, "-o", run, "--epochs", 40, "--lr", 1e-3,
            "--val-split", 0.25, "--cache-dir", cache, *SMALL]
    assert main([str(a) for a in args]) == 0
    return run


@pytest.fixture(scope="module")
def tiny(flowers, module_tmp) -> Path:
    """A small CNN (about 20k weights) fitted on the flowers and saved as a run, with them as
    its split (fitted: quantised exports of an undecided model fail their agreement floor)."""
    return write_tiny_run(flowers, module_tmp("runs") / "tiny", widths=(32, 64),
                          epochs=40)


def test_saved_model_equals_predict_on_png(serve, float_model, trained, pngs):
    run, _ = trained
    served = serve(pngs)
    labels = json.loads((run / "labels.json").read_text())
    expected = predict_files(float_model, pngs, top_k=5)
    for row, entry in enumerate(expected):
        for item in entry["top_k"]:
            probability = served["probabilities"][row][labels.index(item["label"])]
            assert abs(probability - item["probability"]) <= 1e-5
        assert [s.decode() for s in served["top_k_labels"][row]] == [
            item["label"] for item in entry["top_k"]]
        np.testing.assert_allclose(served["top_k_scores"][row],
                                   [item["probability"] for item in entry["top_k"]], atol=1e-5)


def test_saved_model_jpeg_decoding_matches_pillow(saved_model, serve, float_model, flowers):
    """With the accurate IDCT, TF's JPEG pixels are Pillow's: JPEG bytes are exact too.

    (Plain ``tf.io.decode_image`` moves up to 6 levels per pixel on these files; the
    module docstring has the numbers.)
    """
    _, report = saved_model
    jpegs = _files(flowers)
    served = serve(jpegs)["probabilities"]
    expected = _probabilities(float_model, jpegs)
    assert np.abs(served - expected).max() <= 1e-5
    assert (served.argmax(axis=1) == expected.argmax(axis=1)).all()
    # the report measured the same on the validation JPEGs, end to end from their bytes
    assert report.compared_images == 10
    assert report.top1_agreement == 1.0 and report.max_prob_diff <= 1e-5


def test_saved_model_serves_in_fresh_process_without_keras(saved_model, serve, pngs, flowers):
    out, _ = saved_model
    images = [pngs[0], pngs[-1], _files(flowers)[5]]
    result = subprocess.run([sys.executable, "-I", str(WORKER), str(out), *map(str, images)],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    fresh = json.loads(result.stdout)
    assert fresh["modules"] == []  # neither resnet_ft nor (blocked) Keras was imported
    here = serve(images)
    np.testing.assert_allclose(fresh["probabilities"], here["probabilities"], atol=1e-5)
    assert fresh["top_k_labels"] == [[s.decode() for s in row] for row in here["top_k_labels"]]


def test_saved_model_report_and_layout(saved_model, trained):
    run, _ = trained
    out, report = saved_model
    assert report.path == out and report.format == "saved_model" and report.quantize == "none"
    assert report.ops == ["serving_default", "serving_pixels"]
    assert report.size_bytes == sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    metadata = json.loads((out / "assets.extra" / "resnet_ft.json").read_text())
    assert metadata["labels"] == json.loads((run / "labels.json").read_text())
    assert metadata["preprocessing"] == {"image_size": 48, "resize": "crop",
                                         "crop_fraction": 0.875}
    assert json.loads(json.dumps(report.to_dict()))["path"] == str(out)
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp left


def test_tflite_float32_matches_keras(tflite_float, float_model, trained, flowers):
    run, _ = trained
    out, report = tflite_float
    paths = _files(flowers)
    exported = load_exported(out)
    probs = np.stack([p for _, p, _ in exported.probabilities(paths, batch_size=16)])
    # same float32 graph, another runtime (XNNPACK's kernels sum in another order): measured
    # 2.1e-6 on probabilities; 1e-5 leaves room for round-off, not for a wrong op
    assert np.abs(probs - _probabilities(float_model, paths)).max() <= 1e-5
    assert exported.labels == json.loads((run / "labels.json").read_text())
    assert out.with_suffix(".labels.txt").read_text().splitlines() == exported.labels
    assert exported.preprocessing.image_size == 48
    assert report.format == "tflite" and report.quantize == "none"
    assert report.size_bytes == out.stat().st_size > 90_000_000  # float32 ResNet-50 weights
    assert {"CONV_2D", "FULLY_CONNECTED", "SOFTMAX"} <= set(report.ops)
    assert "DELEGATE" not in report.ops and "QUANTIZE" not in report.ops
    assert report.top1_agreement == 1.0 and report.max_prob_diff <= 1e-5
    assert report.compared_images == 10 and report.calibration_images == 0


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated:UserWarning")
def test_int8_agrees_with_float(confident, flowers, tflite_float, tmp_path):
    import tensorflow as tf

    out = tmp_path / "int8.tflite"
    report = export(confident, out, "tflite", "int8")
    paths = _files(flowers)
    reference = _probabilities(load_predictor(confident), paths)
    exported = load_exported(out)
    probs = _probabilities(exported, paths)
    # every image counts, not only the confident ones (measured: 40/40 agree, max |dp| 0.11);
    # int8 error has no useful analytic bound over 100 layers, so the bounds are measured ones
    agreement = np.mean(probs.argmax(axis=1) == reference.argmax(axis=1))
    assert agreement >= 0.95, agreement
    assert np.abs(probs - reference).max() <= 0.25
    assert report.calibration_images == 30  # default 100, capped at the 30 training images
    assert {"QUANTIZE", "DEQUANTIZE", "CONV_2D"} <= set(report.ops)
    assert report.size_bytes < tflite_float[1].size_bytes / 3
    assert report.top1_agreement is not None and report.max_prob_diff is not None
    interpreter = tf.lite.Interpreter(model_path=str(out))
    assert interpreter.get_input_details()[0]["dtype"] == np.float32  # float in, float out
    assert interpreter.get_output_details()[0]["dtype"] == np.float32
    ends = {interpreter.get_input_details()[0]["index"],
            interpreter.get_output_details()[0]["index"]}
    inside = {t["dtype"] for t in interpreter.get_tensor_details() if t["index"] not in ends}
    assert inside <= {np.int8, np.int32}  # int8 activations and weights, int32 biases


def test_float16_and_dynamic_report_size_and_ops(tiny, tmp_path):
    reports = {q: export_tflite(tiny, tmp_path / f"{q}.tflite", q)
               for q in ("none", "float16", "dynamic", "int8")}
    size = {q: r.size_bytes for q, r in reports.items()}
    assert size["float16"] < 0.7 * size["none"]
    assert size["dynamic"] < 0.5 * size["none"] and size["int8"] < 0.5 * size["none"]
    assert "DEQUANTIZE" in reports["float16"].ops  # fp16 weights, dequantized to compute
    assert "QUANTIZE" in reports["int8"].ops and "QUANTIZE" not in reports["dynamic"].ops
    for report in reports.values():
        assert report.size_bytes == report.path.stat().st_size
        assert report.compared_images == 10 and report.top1_agreement is not None
        assert report.max_prob_diff <= (0.05 if report.quantize in ("dynamic", "int8") else 1e-3)
    few = export_tflite(tiny, tmp_path / "few.tflite", "int8", calibration_images=5)
    assert few.calibration_images == 5


def test_evaluate_exported_models(saved_model, tflite_float, float_model, flowers, tmp_path):
    expected, _, _ = evaluate_dir(float_model, flowers)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    for out in (saved_model[0], tflite_float[0]):
        predictor = load_exported(out)
        report, _, _ = evaluate_dir(predictor, flowers)
        assert report["n"] == 40 and report["labels"] == expected["labels"]
        assert report["accuracy"] == pytest.approx(expected["accuracy"])
        assert report["confusion_matrix"] == expected["confusion_matrix"]
        good = _files(flowers)[0]
        entries = list(predictor.probabilities([good, bad], batch_size=2))
        assert entries[0][1] is not None and entries[0][2] is None
        assert entries[1][0] == 1 and entries[1][1] is None and entries[1][2]


def test_load_exported_checks_its_sidecar_files(tiny, tmp_path):
    out = tmp_path / "m.tflite"
    export_tflite(tiny, out)
    labels = out.with_suffix(".labels.txt")
    labels.write_text(labels.read_text() + "cacti\n")
    with pytest.raises(InputError, match="has 5 classes but 6 labels"):
        load_exported(out)
    labels.unlink()
    with pytest.raises(InputError, match="cannot read labels"):
        load_exported(out)
    out.with_suffix(".resnet_ft.json").unlink()
    with pytest.raises(InputError, match="not a resnet-ft export"):
        load_exported(out)


def test_failed_export_leaves_no_output(tiny, tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("injected failure after the model was written")

    monkeypatch.setattr(export_module, "_agreement", fail)
    for fmt, name in (("saved_model", "sm"), ("tflite", "m.tflite")):
        with pytest.raises(RuntimeError, match="injected"):
            export(tiny, tmp_path / "out" / name, fmt)
    assert list((tmp_path / "out").iterdir()) == []  # no OUT, no sidecar, no temporary


def test_saved_model_output_rules(tiny, tmp_path):
    out = tmp_path / "sm"
    first = export_saved_model(tiny, out)
    assert first.top1_agreement == 1.0
    (out / "stale.txt").write_text("from an older export")
    export_saved_model(tiny, out)  # a previous SavedModel is replaced as a whole
    assert not (out / "stale.txt").exists() and (out / "saved_model.pb").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sm"]
    with pytest.raises(OutputError, match="not a SavedModel; refusing") as error:
        export_saved_model(tiny, tiny)  # -o RUN_DIR by mistake: the run is not deleted
    assert "\n" not in str(error.value) and (tiny / "model.keras").is_file()
    with pytest.raises(OutputError, match="is a directory"):
        export_tflite(tiny, out)


@pytest.mark.parametrize(("args", "fragments"), [
    (("saved_model", "int8"), ["int8", "saved_model", "accepted: none"]),
    (("coreml", "none"), ["'coreml'", "accepted: saved_model, tflite, onnx, openvino"]),
    (("tflite", "int4"), ["int4", "accepted: none, float16, dynamic, int8"]),
    (("tflite", "int8", 0), ["--calibration-images", "at least 1"]),
])
def test_bad_options_are_one_line_input_errors(tiny, tmp_path, args, fragments):
    with pytest.raises(InputError) as error:
        export(tiny, tmp_path / "out", *args)
    message = str(error.value)
    assert "\n" not in message and all(f in message for f in fragments), message
    assert not (tmp_path / "out").exists()


def test_missing_run_model_or_export(tmp_path):
    with pytest.raises(InputError, match="run directory not found"):
        export(tmp_path / "nope", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no trained model"):
        export(tmp_path / "empty", tmp_path / "out", "tflite")
    with pytest.raises(InputError, match="exported model not found"):
        load_exported(tmp_path / "missing.tflite")
    (tmp_path / "fake.tflite").write_bytes(b"not a flatbuffer")
    with pytest.raises(InputError, match="not a TFLite model"):
        load_exported(tmp_path / "fake.tflite")
    with pytest.raises(InputError, match="not a resnet-ft export"):
        load_exported(tmp_path / "empty")


def test_export_and_evaluate_through_the_cli(tiny, flowers, tmp_path, cli):
    out = tmp_path / "tiny.tflite"
    result = cli("export", tiny, "-o", out, "--format", "tflite")
    assert result.code == 0, result.err
    assert f"wrote {out} (TFLite, none," in result.out and "ops: " in result.out
    assert "agreement with the float model on" in result.out
    as_json = cli("evaluate", tiny, flowers, "--model", out, "--json")
    assert as_json.code == 0, as_json.err
    reference = json.loads(cli("evaluate", tiny, flowers, "--json").out)
    assert json.loads(as_json.out)["accuracy"] == pytest.approx(reference["accuracy"])
    assert (tiny / "eval" / f"{flowers.name}-{out.name}" / "metrics.json").is_file()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [(("--format", "coreml"), "format"), (("--format", "saved_model", "--quantize", "int8"),
                                         "quantize")],
)
def test_export_bad_options(tiny, tmp_path, cli, args, fragment):
    from support.cli import assert_one_line_error

    result = cli("export", tiny, "-o", tmp_path / "x", *args)
    assert_one_line_error(result, fragment)
    assert not (tmp_path / "x").exists()


def test_saved_model_through_the_cli_with_json(tiny, flowers, tmp_path, cli):
    """``export --json`` of a SavedModel: the report's fields, and both signatures serve."""
    import tensorflow as tf

    out = tmp_path / "served"
    result = cli("export", tiny, "-o", out, "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert set(report) == {"path", "format", "quantize", "size_bytes", "ops", "top1_agreement",
                           "max_prob_diff", "compared_images", "calibration_images"}
    assert (report["path"], report["format"], report["quantize"]) == (str(out), "saved_model",
                                                                      "none")
    assert report["ops"] == ["serving_default", "serving_pixels"]
    assert report["compared_images"] == 10 and report["top1_agreement"] == 1.0
    assert report["size_bytes"] == sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    # serving_pixels: already-resized float pixels in, the same probabilities as Keras out
    predictor = load_predictor(tiny)
    paths = _files(flowers)[:6]
    pixels = np.stack([p.numpy() for p, _ in image_dataset([str(x) for x in paths],
                                                            predictor.preprocessing)])
    serve = tf.saved_model.load(str(out)).signatures["serving_pixels"]
    outputs = {k: v.numpy() for k, v in serve(pixels=tf.constant(pixels)).items()}
    expected = np.asarray(predictor.model(pixels, training=False))
    np.testing.assert_allclose(outputs["probabilities"], expected, atol=1e-6)
    labels = predictor.labels
    top = np.argsort(-expected, axis=1, kind="stable")[:, :5]
    assert [[x.decode() for x in row] for row in outputs["top_k_labels"]] == [
        [labels[i] for i in row] for row in top]

