"""The reject option: a scorer fitted by train, its threshold, predict --reject, old runs."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
from support.cli import SMALL, assert_one_line_error

from resnet_ft.cli import main
from resnet_ft.data.standin import write_standin_images
from resnet_ft.runs.run import Run
from resnet_ft.runs.scorer import Scorer

#: Validation images of the run (4 per class) and the share --reject-rate asks for.
VAL, RATE = 16, 0.125


@pytest.fixture(scope="module")
def case(module_tmp, backbone50):
    """A run on four generated classes; the fifth (daisy, white blobs) it never saw."""
    data = write_standin_images(module_tmp("data") / "flowers", per_class=16, min_size=40,
                                max_size=80)
    unseen = module_tmp("unseen") / "daisy"
    shutil.move(data / "daisy", unseen)
    run = module_tmp("runs") / "four"
    args = ["train", data, "--backbone", backbone50, "-o", run, "--epochs", 2,
            "--val-split", 0.25, "--reject-rate", RATE, *SMALL]
    assert main([str(a) for a in args]) == 0
    return run, sorted(unseen.glob("*.jpg")), data


def _predict(cli, run, files, *extra):
    result = cli("predict", run, *files, "--json", *extra)
    assert result.code == 0, result.err
    return json.loads(result.out)


def test_unseen_class_rejected_far_more_often_than_validation(case, cli):
    run, unseen, _ = case
    val = Run(run).usable("val")
    assert len(val) == VAL
    val_rows = _predict(cli, run, val, "--reject")
    unseen_rows = _predict(cli, run, unseen, "--reject")
    val_rate = np.mean([r["rejected"] for r in val_rows])
    unseen_rate = np.mean([r["rejected"] for r in unseen_rows])
    # The threshold's own definition: floor(0.125 x 16) = 2 of the 16 validation images.
    assert val_rate == math.floor(RATE * VAL) / VAL == 0.125
    # Measured: 16 of 16 daisy images rejected (1.0) against 0.125 of validation images.
    assert unseen_rate >= 0.75, unseen_rate
    assert all(r["label"] == "unknown" for r in unseen_rows if r["rejected"])


def _reference_scores(run, files):
    """Scores computed apart from the scorer: Keras' pooled features of the saved model on the
    run's pixels (the decoder training uses), class means and scikit-learn's Ledoit-Wolf
    covariance of the training files, Mahalanobis distance by an explicit inverse."""
    import keras
    from sklearn.covariance import ledoit_wolf

    from resnet_ft.data.preprocessing import Preprocessing, image_dataset

    model = keras.saving.load_model(run / "model.keras", compile=False)
    pooled = keras.Model(model.input, model.get_layer("head.pool").output)
    split = [line.split(",") for line in (run / "split.csv").read_text().splitlines()[1:]]
    labels = json.loads((run / "labels.json").read_text())

    def features(paths):
        pixels = [p.numpy() for p, _ in image_dataset([str(p) for p in paths],
                                                      Preprocessing(48, "crop"))]
        return np.asarray(pooled(np.stack(pixels)), np.float64)

    train = [(f, labels.index(label)) for f, label, subset in split if subset == "train"]
    x = features([f for f, _ in train])
    y = np.array([c for _, c in train])
    means = np.stack([x[y == c].mean(0) for c in range(len(labels))])
    covariance, _ = ledoit_wolf(x - means[y], assume_centered=True)
    z = features(files)[:, None, :] - means[None]
    inverse = np.linalg.inv(covariance)
    return np.sqrt(np.einsum("ncd,de,nce->nc", z, inverse, z).min(1))


def test_scores_equal_an_independent_computation(case, cli):
    run, unseen, _ = case
    files = unseen[:4]
    rows = _predict(cli, run, files)
    ours = np.array([r["ood_score"] for r in rows])
    assert "rejected" not in rows[0]  # only asked for with --reject
    # float32 features against float64 with an explicit inverse: measured within 1e-4.
    np.testing.assert_allclose(ours, _reference_scores(run, files), rtol=1e-3)


def test_scorer_file_round_trip_and_damage(case, tmp_path):
    run, _, _ = case
    scorer = Run(run).require_scorer()
    assert scorer.rate == RATE
    assert scorer.centres.shape == (4, 2048) and scorer.whiten.shape == (2048, 2048)
    scorer.save(tmp_path / "copy.npz")
    again = Scorer.load(tmp_path / "copy.npz")
    assert (again.centres == scorer.centres).all() and (again.whiten == scorer.whiten).all()
    assert (again.threshold, again.rate) == (scorer.threshold, scorer.rate)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(Exception, match="cannot read the reject scorer"):
        Scorer.load(tmp_path / "bad.npz")


def test_predict_reject_json_and_text_exact(case, cli):
    run, unseen, _ = case
    scorer = Run(run).require_scorer()
    val = Run(run).usable("val")
    scores = _predict(cli, run, val)
    kept = next(v for v, r in zip(val, scores, strict=True) if r["ood_score"] < scorer.threshold)
    files = [kept, unseen[0]]
    plain = _predict(cli, run, *[files], "--top-k", 1)
    rows = _predict(cli, run, *[files], "--top-k", 1, "--reject")
    expected = [dict(p, rejected=p["ood_score"] > scorer.threshold) for p in plain]
    expected[1]["label"] = "unknown"
    assert rows == expected
    assert rows[1]["rejected"] and not rows[0]["rejected"]
    text = cli("predict", run, *files, "--top-k", 1, "--reject")
    assert text.code == 0
    lines = [line for line in text.out.splitlines() if "unknown" in line or "score" in line]
    assert len(lines) == 2 and "reject score" in lines[0]
    assert f"{rows[1]['ood_score']:.3f}" in lines[1]


def test_old_run_without_scorer(case, cli, tmp_path):
    run, unseen, _ = case
    old = tmp_path / "old"
    shutil.copytree(run, old)
    (old / "scorer.npz").unlink()
    result = cli("predict", old, unseen[0], "--reject")
    assert result.out == ""
    assert_one_line_error(result, f"{old} has no reject score (scorer.npz)",
                          "train it again to get one")
    rows = _predict(cli, old, unseen[:1])
    assert set(rows[0]) == {"file", "label", "probability", "top_k"}


def test_evaluate_risk_coverage_equals_numpy(case, cli, tmp_path):
    run, _, data = case
    result = cli("evaluate", run, data, "--out", tmp_path / "eval")
    assert result.code == 0, result.err
    report = json.loads((tmp_path / "eval" / "metrics.json").read_text())["risk_coverage"]
    assert f"accuracy against coverage (area {report['area']:.4f};" in result.out
    files = sorted(data.rglob("*.jpg"))
    rows = _predict(cli, run, files, "--reject")
    truth = np.array([f.parent.name == r["top_k"][0]["label"] for f, r in zip(files, rows,
                                                                              strict=True)])
    score = np.array([r["ood_score"] for r in rows])
    order = np.argsort(score, kind="stable")
    accuracy = np.cumsum(truth[order]) / np.arange(1, len(files) + 1)
    n = len(files)
    assert [row["coverage"] for row in report["table"]] == [1.0, 0.95, 0.9, 0.8, 0.7, 0.6, 0.5]
    for row in report["table"]:
        assert row["accuracy"] == pytest.approx(accuracy[math.ceil(row["coverage"] * n) - 1],
                                                abs=1e-12)
    assert report["area"] == pytest.approx(accuracy.mean(), abs=1e-12)
    rejected = np.array([r["rejected"] for r in rows])
    assert report["at_threshold"] == {
        "coverage": pytest.approx(1 - rejected.mean(), abs=1e-12),
        "accuracy": pytest.approx(truth[~rejected].mean(), abs=1e-12),
        "rejected": int(rejected.sum())}


def test_saved_model_returns_predicts_score(case, cli, tmp_path):
    import tensorflow as tf

    from resnet_ft.exports import export_saved_model

    run, unseen, _ = case
    files = [Run(run).usable("val")[0], *unseen[:2]]
    out = tmp_path / "saved"
    export_saved_model(run, out)
    serve = tf.saved_model.load(str(out)).signatures["serving_default"]
    result = serve(images=tf.constant([f.read_bytes() for f in files]))
    ours = np.array([r["ood_score"] for r in _predict(cli, run, files)])
    # One graph against Keras on the same pixels: measured within 1e-4 relative.
    np.testing.assert_allclose(result["ood_score"].numpy(), ours, rtol=1e-4)


def test_report_plots_accuracy_against_coverage(case, cli, tmp_path):
    import re

    run, _, _ = case
    out = tmp_path / "report"
    result = cli("report", run, "-o", out, "--top", 1)
    assert result.code == 0, result.err
    assert (out / "coverage.png").read_bytes()[:4] == b"\x89PNG"
    table = json.loads((out / "metrics.json").read_text())["risk_coverage"]["table"]
    page = (out / "index.html").read_text()
    section = page[page.index('<section id="coverage">'):]
    section = section[:section.index("</section>")]
    cells = re.findall(r'<td class="num">([^<]+)</td>', section)
    assert cells == [c for row in table for c in (f"{100 * row['coverage']:.0f} %",
                                                  f"{row['accuracy']:.3f}")]
    # the map marks exactly the images the threshold refuses
    rejected = json.loads((out / "metrics.json").read_text())["risk_coverage"]["at_threshold"]
    plot = page[page.index('id="map-plot"'):]
    marked = re.findall(r'<circle class="[^"]*\brejected\b', plot[:plot.index("</svg>")])
    assert len(marked) == rejected["rejected"] > 0
