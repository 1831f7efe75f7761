"""The report's map of the data: the stored projection and the points the page draws.

No training: features are generated clusters, the page section is fed
hand-made scores. The browser side is in tests/e2e/test_report_map_browser.py.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest

from resnet_ft.evaluation.evaluate import Scores
from resnet_ft.evaluation.report.datamap import map_section
from resnet_ft.evaluation.report.gather import Evaluated
from resnet_ft.features import projection
from resnet_ft.features.projection import default_method, stored_or_projected, write_map


def _clusters(n: int = 45, seed: int = 3) -> np.ndarray:
    """Three well-separated clusters of ``n // 3`` points in 32 dimensions."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 5, (3, 32))
    return (np.repeat(centres, n // 3, axis=0) + rng.normal(0, 0.3, (n, 32))).astype(np.float32)


def _files(n: int) -> list[str]:
    return [f"data/c{i % 3}/{i:03d}.jpg" for i in range(n)]


def test_pca_map_is_the_first_two_principal_components_in_the_unit_square():
    features = _clusters()
    points = stored_or_projected(None, _files(45), features, method="pca").points
    centred = features.astype(np.float64) - features.mean(0)
    values, vectors = np.linalg.eigh(centred.T @ centred)  # reference: the covariance's
    axes = vectors[:, np.argsort(values)[::-1][:2]].T
    axes *= np.sign(axes[np.arange(2), np.abs(axes).argmax(1)])[:, None]
    coords = centred @ axes.T
    coords = (coords - coords.min(0)) / (coords.max(0) - coords.min(0)).max()
    np.testing.assert_allclose(points, coords, atol=1e-9)
    assert points.shape == (45, 2)


def test_umap_map_is_seeded_deterministic_and_keeps_clusters_apart():
    features, files = _clusters(), _files(45)
    first = stored_or_projected(None, files, features, method="umap")
    again = stored_or_projected(None, files, features, method="umap")
    other_seed = stored_or_projected(None, files, features, method="umap", seed=1)
    assert first.method == "umap" and first.points.shape == (45, 2)
    np.testing.assert_array_equal(first.points, again.points)
    assert not np.array_equal(first.points, other_seed.points)
    assert first.points.min(0).tolist() == [0.0, 0.0] and first.points.max() == 1.0
    # each cluster's points are nearer their own centre than any other cluster's
    centres = np.stack([first.points[c * 15:(c + 1) * 15].mean(0) for c in range(3)])
    nearest = np.linalg.norm(first.points[:, None] - centres[None], axis=2).argmin(1)
    assert nearest.tolist() == [c for c in range(3) for _ in range(15)]


def test_a_stored_map_is_read_back_and_not_recomputed(tmp_path, monkeypatch):
    features, files = _clusters(), _files(45)
    made = stored_or_projected(tmp_path, files, features, method="pca")
    write_map(tmp_path, made)
    stored = json.loads((tmp_path / "map.json").read_text())
    assert stored["method"] == "pca" and stored["seed"] == 0 and len(stored["points"]) == 45

    def refuse(*_):
        raise AssertionError("projected again")

    monkeypatch.setattr(projection, "project", refuse)
    again = stored_or_projected(tmp_path, files, features, method="pca")
    assert again.points.tolist() == stored["points"]
    changed = features.copy()
    changed[7, 0] += 1
    for kwargs in ({"features": changed}, {"files": [*files[:-1], "data/c2/other.jpg"]}):
        with pytest.raises(AssertionError, match="projected again"):
            stored_or_projected(tmp_path, **{"files": files, "features": features, **kwargs},
                                method="pca")


def test_reports_lay_out_by_umap_where_umap_learn_is_installed(monkeypatch):
    # default_method as imported at collection: the session's conftest swaps the module's
    # for PCA (UMAP's numba compile would cost every test process ~17 s)
    installed = importlib.util.find_spec("umap") is not None
    assert default_method() == ("umap" if installed else "pca")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert default_method() == "pca"


def test_tiny_sets_are_laid_out_by_pca():
    assert stored_or_projected(None, _files(3), _clusters()[:3], method="umap").method == "pca"
    single = stored_or_projected(None, _files(1), _clusters()[:1])
    assert single.points.tolist() == [[0.5, 0.5]]


def _evaluated(tmp_path: Path) -> Evaluated:
    """Six images of two classes; images 1 and 4 predicted wrong."""
    paths = [tmp_path / f"{i}.jpg" for i in range(6)]
    truth = np.array([0, 0, 0, 1, 1, 1])
    predicted = [0, 1, 0, 1, 0, 1]
    views = np.array([[[0.9, 0.1] if p == 0 else [0.2, 0.8]] for p in predicted])
    report = {"labels": ["cat", "dog"]}
    return Evaluated("t", "s", Scores(paths, truth, views, {}), report, [],
                     featurizer=None)  # the section reads no features


def test_section_marks_mistakes_findings_and_rejected_points(tmp_path):
    evaluated = _evaluated(tmp_path)
    data_map = stored_or_projected(None, [str(p) for p in evaluated.scores.paths],
                                   np.arange(12, dtype=np.float32).reshape(6, 2) ** 2,
                                   method="pca")
    flagged = {(tmp_path / "2.jpg").resolve(): ["Label issues", "Outliers"]}
    html = map_section(data_map, evaluated, flagged, rejected=[0, 0, 0, 0, 1, 1])
    circles = re.findall(r'<circle class="([^"]*)"[^>]*data-i="(\d)" data-findings="([^"]*)"',
                         html)
    marks = {int(i): (kinds, found) for kinds, i, found in circles}
    assert marks == {0: ("pt", ""), 1: ("pt wrong", ""), 2: ("pt flagged",
                                                             "Label issues, Outliers"),
                     3: ("pt", ""), 4: ("pt wrong rejected", ""), 5: ("pt rejected", "")}
    assert html.count('<rect class="finding-box"') == 1
    assert "6 images · 2 mistakes · 1 with findings · 2 rejected" in html
    unknown = map_section(data_map, evaluated, {})  # no reject option: no count of rejected
    assert "6 images · 2 mistakes · 0 with findings.</p>" in unknown
    assert "pt rejected" not in unknown and "finding-box" not in unknown
    with pytest.raises(ValueError, match="rejected has 5 flags for 6 images"):
        map_section(data_map, evaluated, {}, rejected=[False] * 5)
