"""The report in a real browser (headless Chromium): what a user sees and clicks works.

Driven through Selenium and Debian's chromedriver: WebDriver gives the
browser's console log, clicks and element state in a few well-known calls,
where the raw DevTools protocol would need its own websocket client code.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from selenium.webdriver.support.ui import WebDriverWait
from support.browser import console_errors, full_page_screenshot, opened


@pytest.fixture(scope="module")
def page(case, module_tmp):
    """The report's index.html open in headless Chromium (closed after the module)."""
    with opened(case.report / "index.html", module_tmp("chromium-profile")) as driver:
        yield driver


def _cards(driver) -> dict[str, tuple[str, str]]:
    """``{metric: (data-value, shown text)}`` of the headline cards."""
    return {card.get_attribute("data-metric"): (
        card.get_attribute("data-value"), card.find_element("css selector", ".value").text)
        for card in driver.find_elements("css selector", ".card")}


def _loaded(driver, scope: str = "") -> list[tuple[str, int]]:
    """``(src, naturalWidth)`` of every image under ``scope``, once all have finished loading."""
    from selenium.webdriver.support.ui import WebDriverWait

    script = (f"return [...document.querySelectorAll('{scope} img')]"
              ".map(i => [i.getAttribute('src'), i.complete ? i.naturalWidth : -1]);")
    WebDriverWait(driver, 10).until(lambda d: all(w >= 0 for _, w in d.execute_script(script)))
    return driver.execute_script(script)


def test_page_loads_without_console_errors_and_every_image_loads(page):
    assert console_errors(page) == []
    images = _loaded(page)
    assert len(images) >= 3  # figures, top losses, findings
    assert [src for src, width in images if width == 0] == []


def test_headline_numbers_equal_metrics_json(page, case):
    metrics = case.metrics
    cards = _cards(page)
    assert float(cards["accuracy"][0]) == metrics["accuracy"]
    assert cards["accuracy"][1] == f"{100 * metrics['accuracy']:.1f} %"
    f1 = [row["f1"] for row in metrics["per_class"].values()]
    assert float(cards["macro_f1"][0]) == pytest.approx(sum(f1) / len(f1), abs=1e-12)
    wrong = len(case.misclassified())
    assert cards["mistakes"] == (str(wrong), f"{wrong} of {metrics['n']}")
    # probabilities of the cached and the online path agree to ~1e-6
    assert float(cards["ece"][0]) == pytest.approx(metrics["calibration"]["ece"], abs=1e-4)
    assert "top_k_accuracy" not in cards  # k = 5 is not below 5 classes
    assert f"{metrics['n']} images" in page.find_element("css selector", ".subtitle").text


def test_confusion_cells_open_exactly_their_images(page, case):
    labels = case.metrics["labels"]
    off_diagonal = Counter((r["true"], r["predicted"]) for r in case.misclassified())
    right = Counter(Path(p["file"]).parent.name for p in case.predictions
                    if Path(p["file"]).parent.name == p["label"])
    cells = page.find_elements("css selector", "a.cell")
    expected = {**{(t, p): n for (t, p), n in off_diagonal.items()},
                **{(c, c): n for c, n in right.items()}}
    shown = {(labels[int(c.get_attribute("data-true"))],
              labels[int(c.get_attribute("data-pred"))]): int(c.text) for c in cells}
    assert shown == expected
    assert any(t != p for t, p in shown) and any(t == p for t, p in shown)
    for cell in cells:
        truth = labels[int(cell.get_attribute("data-true"))]
        predicted = labels[int(cell.get_attribute("data-pred"))]
        cell.click()
        # the gallery is rendered on the hash change, after click() returns: wait for it, then
        # read it in one script call (element handles would go stale on a re-render)
        anchor = f"#cell-{labels.index(truth)}-{labels.index(predicted)}"
        WebDriverWait(page, 10).until(lambda d, a=anchor: d.current_url.endswith(a))
        files = sorted(WebDriverWait(page, 10).until(
            lambda d, t=truth, p=predicted: _gallery_files(d, t, p)))
        if truth == predicted:
            reference = sorted(p["file"] for p in case.predictions
                               if Path(p["file"]).parent.name == truth == p["label"])
        else:
            reference = sorted(r["file"] for r in case.misclassified()
                               if (r["true"], r["predicted"]) == (truth, predicted))
        assert files == reference, (truth, predicted)
        assert truth in page.find_element("css selector", "#gallery h3").text
        assert all(width > 0 for _, width in _loaded(page, "#gallery"))
        assert page.current_url.endswith(
            f"#cell-{labels.index(truth)}-{labels.index(predicted)}")
    assert console_errors(page) == []


def _gallery_files(page, truth: str, predicted: str) -> list[str] | None:
    """The gallery's file names once its heading names both classes (None until then)."""
    return page.execute_script(
        "const g = document.querySelector('#gallery');"
        "const h = g && g.querySelector('h3');"
        "if (!h || !h.textContent.includes(arguments[0])"
        "    || !h.textContent.includes(arguments[1])) return null;"
        "return Array.from(g.querySelectorAll('figure'), f => f.getAttribute('data-file'));",
        truth, predicted)


def test_per_class_table_sorts(page):
    header = page.find_element("css selector", "table.perclass th:nth-child(4)")  # F1
    for order in ("ascending", "descending"):
        header.click()
        WebDriverWait(page, 10).until(lambda d, o=order: header.get_attribute("aria-sort") == o)
        values = [float(td.get_attribute("data-value")) for td in
                  page.find_elements("css selector", "table.perclass tbody td:nth-child(4)")]
        assert values == sorted(values, reverse=order == "descending")
        assert header.get_attribute("aria-sort") == order


def test_findings_show_both_files_side_by_side(page, case):
    pairs = page.find_elements("css selector", '[data-kind="exact_duplicates"] td.files')
    assert len(pairs) == 3
    for row, copy in zip(pairs, case.copies, strict=True):
        figures = row.find_elements("css selector", "figure")
        assert [f.get_attribute("data-column") for f in figures] == ["file_a", "file_b"]
        assert figures[1].get_attribute("data-file") == str(copy)
        assert all(f.find_element("css selector", "img").get_attribute("naturalWidth") != "0"
                   for f in figures)
    missing = page.find_elements("css selector", '[data-kind="label_issues"] .noimg')
    assert [m.text for m in missing] == ["missing"]
    kinds = [k.get_attribute("data-kind") for k in page.find_elements("css selector",
                                                                        ".finding-kind")]
    assert kinds == ["exact_duplicates", "label_issues", "near_duplicates", "outliers"]
    near = '[data-kind="near_duplicates"]'
    visible = [r for r in page.find_elements("css selector", f"{near} tr") if r.is_displayed()]
    assert len(visible) == 1 + 10  # a header row, ten findings; two more folded away
    page.find_element("css selector", f"{near} summary").click()
    assert len(page.find_elements("css selector", f"{near} td.files")) == 12
    assert all(row.is_displayed() for row in page.find_elements("css selector", f"{near} tr"))


def test_screenshot(page, tmp_path):
    page.get(page.current_url.split("#")[0])
    shot = tmp_path / "report.png"
    full_page_screenshot(page, shot)
    assert shot.read_bytes()[:4] == b"\x89PNG" and shot.stat().st_size > 50_000
    assert console_errors(page) == []
