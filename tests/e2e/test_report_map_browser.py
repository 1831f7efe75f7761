"""The report's map of the data in headless Chromium: one point per image, hover, click.

Uses the report the other browser tests read (support/report_case.py: built
once per session); the re-render test copies it so they keep theirs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.support.ui import WebDriverWait
from support.browser import console_errors, opened

#: The index (data-i) and file of a point drawn on top at its centre, mistakes first.
TOPMOST = """
const points = [...document.querySelectorAll('#map-plot circle.pt')];
points.sort((a, b) => b.classList.contains('wrong') - a.classList.contains('wrong'));
for (const point of points) {
  point.scrollIntoView({block: 'center'});
  const box = point.getBoundingClientRect();
  if (document.elementFromPoint(box.x + box.width / 2, box.y + box.height / 2) === point)
    return Number(point.dataset.i);
}
return null;
"""


@pytest.fixture(scope="module")
def page(case, module_tmp):
    with opened(case.report / "index.html", module_tmp("chromium-map-profile")) as driver:
        yield driver


def _images(page) -> list[dict]:
    return page.execute_script("return DATA.images;")


def test_one_point_per_image_with_mistakes_and_findings_marked(page, case):
    images = _images(page)
    points = page.execute_script(
        "return [...document.querySelectorAll('#map-plot circle.pt')]"
        ".map(c => [Number(c.dataset.i), c.getAttribute('class')]);")
    assert len(points) == case.metrics["n"] == len(case.predictions) == len(images)
    assert sorted(i for i, _ in points) == list(range(len(images)))
    wrong = sorted(images[i]["f"] for i, kinds in points if "wrong" in kinds.split())
    assert wrong == sorted(row["file"] for row in case.misclassified())
    flagged = sorted(images[i]["f"] for i, kinds in points if "flagged" in kinds.split())
    assert flagged == sorted(str(copy) for copy in case.copies)  # named by exact_duplicates
    assert not any("rejected" in kinds for _, kinds in points)
    stored = json.loads((case.report / "map.json").read_text())
    assert len(stored["points"]) == len(images) and stored["seed"] == 0
    assert console_errors(page) == []


def test_hovering_a_point_shows_its_thumbnail_and_labels(page, case):
    images, labels = _images(page), case.metrics["labels"]
    index = page.execute_script(TOPMOST)
    image = images[index]
    point = page.find_element("css selector", f'#map-plot circle[data-i="{index}"]')
    ActionChains(page).move_to_element(point).perform()
    tip = page.find_element("css selector", "#map-tip")
    WebDriverWait(page, 10).until(lambda d: tip.is_displayed()
                                  and tip.get_attribute("data-file") == image["f"])
    picture = tip.find_element("css selector", "img")
    assert picture.get_attribute("src").endswith(image["s"])
    WebDriverWait(page, 10).until(lambda d: int(picture.get_attribute("naturalWidth")) > 0)
    assert labels[image["t"]] in tip.text and f"predicted {labels[image['p']]}" in tip.text
    assert Path(image["f"]).name in tip.text
    assert console_errors(page) == []


def test_clicking_a_point_opens_its_gallery_entry(page, case):
    images = _images(page)
    index = page.execute_script(TOPMOST)
    image = images[index]
    page.find_element("css selector", f'#map-plot circle[data-i="{index}"]').click()
    anchor = f"#cell-{image['t']}-{image['p']}"
    WebDriverWait(page, 10).until(lambda d: d.current_url.endswith(anchor))
    focused = WebDriverWait(page, 10).until(lambda d: d.execute_script(
        "return [...document.querySelectorAll('#gallery figure.focus')]"
        ".map(f => f.dataset.file);"))
    assert focused == [image["f"]]
    assert console_errors(page) == []


def test_a_re_render_reads_the_stored_map(case, module_tmp, monkeypatch):
    from resnet_ft.evaluation.report import build_report
    from resnet_ft.features import projection

    out = module_tmp("report-again") / "report"
    shutil.copytree(case.report, out)
    before = (out / "map.json").read_bytes()

    def refuse(*_):
        raise AssertionError("projected again")

    monkeypatch.setattr(projection, "project", refuse)
    build_report(case.run, case.data, out=out, doctor=case.doctor, top=1)
    assert (out / "map.json").read_bytes() == before


def test_a_run_without_a_cache_maps_its_own_backbones_features(case):
    """The fine-tuned path (no store) computes what the store holds for this head-only run."""

    import numpy as np
    from rich.console import Console

    from resnet_ft.evaluation.report.gather import evaluate_set, run_featurizer
    from resnet_ft.inference.features import plain_pooled
    from resnet_ft.inference.loaders import load_predictor

    quiet = Console(quiet=True)
    predictor = load_predictor(case.run)
    evaluated = evaluate_set(case.run, predictor, case.data, 5, quiet)
    assert evaluated.featurizer.store is not None  # a float32 head-only run: its store's
    paths = list(evaluated.scores.paths)
    stored = plain_pooled(evaluated.featurizer, paths)
    online = plain_pooled(run_featurizer(case.run, predictor, quiet), paths)
    assert stored.shape == online.shape == (case.metrics["n"], stored.shape[1])
    np.testing.assert_allclose(online, stored, rtol=1e-4, atol=1e-4)
