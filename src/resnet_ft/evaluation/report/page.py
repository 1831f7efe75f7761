"""The report page: its sections as HTML, filled into ``assets/index.html``.

Everything a reader needs first is at the top: what was evaluated, the
headline numbers, and the confusion matrix whose cells open their images.
Text is escaped here, once; the per-image data the gallery needs travels as
JSON inside the page (a ``file://`` page may not fetch files beside it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from html import escape
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from resnet_ft.evaluation.report.doctor import Findings
from resnet_ft.evaluation.report.gather import Evaluated, RunInfo
from resnet_ft.evaluation.report.sections import (
    config_section,
    coverage_section,
    doctor_section,
    per_class_section,
    skipped_section,
)
from resnet_ft.evaluation.top_losses import TopLoss, image_losses


@dataclass
class Page:
    """What the page shows, with the relative paths of its pictures."""

    run: RunInfo
    evaluated: Evaluated
    thumbs: dict[Path, str]  # image -> "thumbs/<name>.jpg"
    losses: list[TopLoss]
    heat: dict[int, str]  # evaluated-image index -> "heat/<name>.jpg"
    figures: dict[str, str]  # "training", "reliability", "coverage" -> PNG file name
    findings: list[Findings] = field(default_factory=list)
    finding_files: dict[str, Path] = field(default_factory=dict)  # CSV value -> file
    data_map: str = ""  # the map section's HTML (datamap.map_section)


def asset(name: str) -> str:
    """A file of the page's static assets (template, style sheet, script)."""
    return resources.files("resnet_ft.evaluation.report").joinpath("assets", name).read_text(
        encoding="utf-8")


def render(page: Page) -> str:
    """The whole ``index.html``."""
    report = page.evaluated.report
    sections = [
        confusion_section(report), page.data_map, top_losses_section(page),
        per_class_section(report),
        training_section(page), calibration_section(page),
        coverage_section(report, page.figures),
        doctor_section(page.findings, page.finding_files, page.thumbs) if page.findings else "",
        config_section(page.run), skipped_section(page.evaluated.scores.skipped),
    ]
    return Template(asset("index.html")).substitute(
        title=escape(f"{page.run.path.resolve().name} · resnet-ft report"),
        heading=escape(page.run.path.resolve().name),
        subtitle=subtitle(page),
        cards=cards(page),
        nav=nav(page),
        sections="\n".join(s for s in sections if s),
        data=gallery_data(page),
    )


def subtitle(page: Page) -> str:
    """One line: what was evaluated, how many images and classes, which epoch's model."""
    evaluated, run = page.evaluated, page.run
    parts = [f"Evaluated on {escape(evaluated.source)}: <b>{evaluated.report['n']}</b> images, "
             f"<b>{len(run.labels)}</b> classes"]
    best = run.metrics.get("best_epoch")
    if best:
        parts.append(f"model of epoch <b>{best}</b> of {len(run.history) or '?'} "
                     "(lowest validation loss)")
    trainable = run.config.get("trainable")
    if trainable:
        trained = "head only" if trainable == "head" else f"{trainable} and up + head"
        backbone = Path(str(run.config.get("backbone", ""))).name or "backbone"
        parts.append(f"trained: {escape(trained)} on {escape(backbone)}")
    return " · ".join(parts)


def headline(evaluated: Evaluated) -> list[tuple[str, float, str, str, str]]:
    """``(metric key, exact value, shown text, label, hint)`` of each headline card."""
    report = evaluated.report
    scores = evaluated.scores
    f1 = [row["f1"] for row in report["per_class"].values()]
    mistakes = len(evaluated.misclassified)
    loss = float(image_losses(scores.truth, scores.probs()).mean())
    cards = [("accuracy", report["accuracy"], f"{100 * report['accuracy']:.1f} %", "accuracy",
              "share of images right")]
    if "top_k" in report:  # only when k < classes: otherwise every image is a top-k hit
        k = report["top_k"]
        cards.append(("top_k_accuracy", report["top_k_accuracy"],
                      f"{100 * report['top_k_accuracy']:.1f} %", f"top-{k} accuracy",
                      f"true class among the {k} most probable"))
    cards += [
        ("macro_f1", sum(f1) / len(f1), f"{sum(f1) / len(f1):.3f}", "macro F1",
         "mean F1 over classes, each class counts the same"),
        ("mistakes", mistakes, f"{mistakes} of {report['n']}", "mistakes",
         "off-diagonal cells below"),
        ("ece", report["calibration"]["ece"], f"{report['calibration']['ece']:.3f}",
         "calibration error (ECE)", "gap between confidence and accuracy; 0 is ideal"),
        ("loss", loss, f"{loss:.3f}", "mean loss", "cross-entropy of the true class"),
    ]
    return cards


def cards(page: Page) -> str:
    return "\n".join(
        f'<div class="card" data-metric="{key}" data-value="{value!r}">'
        f'<div class="value">{escape(text)}</div><div class="label">{escape(label)}</div>'
        f'<div class="hint">{escape(hint)}</div></div>'
        for key, value, text, label, hint in headline(page.evaluated))


def nav(page: Page) -> str:
    links = [("confusion", "Confusion matrix"), *([("map", "Map")] if page.data_map else []),
             ("top-losses", "Top losses"),
             ("per-class", "Per class"), ("training", "Training"),
             ("calibration", "Calibration")]
    if page.findings:
        links.append(("findings", "Data findings"))
    links.append(("config", "Config & versions"))
    return " ".join(f'<a href="#{anchor}">{text}</a>' for anchor, text in links)


def confusion_section(report: dict[str, Any]) -> str:
    """The matrix as a grid of links (row-normalised shading) beside the gallery panel."""
    labels, matrix = report["labels"], report["confusion_matrix"]
    head = "".join(f'<th class="col" title="predicted {escape(n)}">{escape(n)}</th>'
                   for n in labels)
    rows = []
    for t, counts in enumerate(matrix):
        total = sum(counts) or 1
        cells = []
        for p, count in enumerate(counts):
            kind = "diag" if t == p else "off"
            if not count:
                cells.append(f'<td class="{kind} zero">0</td>')
                continue
            title = f"true {labels[t]}, predicted {labels[p]}: {count} image(s)"
            cells.append(
                f'<td class="{kind}" style="--a:{count / total:.3f}"><a class="cell" '
                f'href="#cell-{t}-{p}" data-true="{t}" data-pred="{p}" '
                f'title="{escape(title)}">{count}</a></td>')
        rows.append(f'<tr><th class="row">{escape(labels[t])}</th>{"".join(cells)}'
                    f'<td class="total">{sum(counts)}</td></tr>')
    return f"""<section id="confusion"><h2>Confusion matrix</h2>
<p class="explain">Rows: true class; columns: predicted class; the diagonal is right.
<b>Click a cell</b> to see exactly its images. Shading: share of the row.</p>
<div class="confusion-layout"><div class="matrix-wrap"><table class="confusion">
<thead><tr><th class="corner">true ↓ predicted →</th>{head}<th class="total">images</th>
</tr></thead>
<tbody>{"".join(rows)}</tbody></table></div>
<div id="gallery" class="gallery" aria-live="polite"><p class="hint">Click a cell of the
matrix to see its images.</p></div></div></section>"""


def top_losses_section(page: Page) -> str:
    """The images of largest loss: the photo, where the model looked, what it said."""
    if not page.losses:
        return ""
    figures = []
    for item in page.losses:
        photo = page.thumbs.get(item.path)
        pictures = [f'<img src="{photo}" alt="photo">' if photo else
                    '<div class="noimg">unreadable</div>']
        if item.index in page.heat:
            pictures.append(f'<img src="{page.heat[item.index]}" alt="Grad-CAM heat map">')
        verdict = "wrong" if item.wrong else "right"
        figures.append(
            f'<figure class="loss {verdict}" data-file="{escape(str(item.path))}">'
            f'<div class="pair">{"".join(pictures)}</div><figcaption>'
            f'<span class="verdict">{"✗" if item.wrong else "✓"}</span> '
            f'true <b>{escape(item.true)}</b> → predicted <b class="pred">'
            f'{escape(item.predicted)}</b><br>p({escape(item.predicted)}) '
            f'{item.probability:.3f} · p({escape(item.true)}) {item.p_true:.3f} · loss '
            f'{item.loss:.2f}<br><span class="name" title="{escape(str(item.path))}">'
            f'{escape(item.path.name)}</span></figcaption></figure>')
    return f"""<section id="top-losses"><h2>Top losses</h2>
<p class="explain">The {len(page.losses)} images with the largest loss (−log p(true class)),
largest first: confident mistakes lead. Left: the photo; right: Grad-CAM of the predicted
class on the last feature map (red: where the evidence for it is).</p>
<div class="losses">{"".join(figures)}</div></section>"""


def training_section(page: Page) -> str:
    if "training" not in page.figures:
        return '<section id="training"><h2>Training</h2><p>No history.csv in the run.</p></section>'
    note = "" if page.run.learning_rates else " (learning rate unknown: config unreadable)"
    return f"""<section id="training"><h2>Training</h2>
<p class="explain">Loss, accuracy and learning rate per epoch{note}; phase 2 (unfrozen stages)
shaded; the dotted line is the epoch whose model was kept.</p>
<img class="figure" src="{page.figures['training']}" alt="training curves"></section>"""


def calibration_section(page: Page) -> str:
    ece = page.evaluated.report["calibration"]["ece"]
    return f"""<section id="calibration"><h2>Calibration</h2>
<div class="side"><img class="figure" src="{page.figures['reliability']}"
alt="reliability diagram"><p class="explain">Does the model's confidence mean what it says?
Images are binned by their top probability; each blue bar is the share right in its bin, the
hatched part the gap up to the bin's mean confidence (above the diagonal: over-confident).
On the dashed diagonal a model that says 0.8 is right 80 % of the time. Expected calibration
error (ECE), the image-weighted gap: <b>{ece:.3f}</b>.</p></div></section>"""


def gallery_data(page: Page) -> str:
    """The per-image JSON the gallery script reads, safe inside a ``<script>`` element."""
    scores = page.evaluated.scores
    probs = scores.probs()
    predicted = probs.argmax(axis=1)
    images = [{"f": str(path), "n": path.name, "t": int(t), "p": int(p),
               "q": round(float(row[p]), 4), "s": page.thumbs.get(path)}
              for path, t, p, row in zip(scores.paths, scores.truth, predicted, probs,
                                         strict=True)]
    data = {"labels": page.evaluated.report["labels"], "images": images}
    return json.dumps(data, ensure_ascii=False).replace("<", "\\u003c")  # no </script>, <!--
