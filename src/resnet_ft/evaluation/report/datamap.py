"""The report's map of the data: every evaluated image as a point of its features' 2-D projection.

The features are the evaluated images' pooled backbone features: a head-only
run's come from the feature store training filled (the featurizer that scored
them, so no backbone pass), a fine-tuned run's from its own backbone, which is
what its head sees. The projection (:mod:`resnet_ft.features.projection`) is
stored beside the page as ``map.json`` and read back on a re-render of the
same images and features.

The points are drawn here, as SVG, so the map reads without the script; the
script (``map.js``) adds the hover card and the click through to the gallery.
Only the evaluated images are drawn: they are the ones with a prediction, a
thumbnail and a gallery entry to open.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from pathlib import Path

import numpy as np

from resnet_ft.evaluation.report.doctor import Findings
from resnet_ft.evaluation.report.gather import Evaluated
from resnet_ft.features.projection import DataMap, stored_or_projected
from resnet_ft.inference.features import plain_pooled

#: Width of the plot in SVG units; the height follows the map's aspect.
WIDTH = 1000
MARGIN = 20
#: Radius of a point, and half the side of a finding's square, in SVG units.
RADIUS, BOX = 8, 13
#: Class colours (Tableau 10); beyond ten classes hues are spread evenly.
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
           "#ff9da7", "#9c755f", "#bab0ac")


def evaluated_map(evaluated: Evaluated, previous: Path | None) -> DataMap:
    """The map of the evaluated images; ``previous`` is the earlier report's folder, if any."""
    paths = list(evaluated.scores.paths)
    return stored_or_projected(previous, [str(path) for path in paths],
                               plain_pooled(evaluated.featurizer, paths))


def flagged_files(findings: list[Findings], located: dict[str, Path]) -> dict[Path, list[str]]:
    """Each file a doctor finding names -> the titles of the kinds naming it.

    ``located``: each CSV value's file, as the report already resolved them
    (:func:`~resnet_ft.evaluation.report.doctor.resolve`).
    """
    flagged: dict[Path, list[str]] = {}
    for kind in findings:
        for row in kind.rows:
            for column in kind.file_columns:
                if value := row.get(column):
                    titles = flagged.setdefault(located[value].resolve(), [])
                    if kind.title not in titles:
                        titles.append(kind.title)
    return flagged


def map_section(data_map: DataMap, evaluated: Evaluated, flagged: dict[Path, list[str]],
                rejected: Sequence[bool] | None = None) -> str:
    """The plot, its legend and how to read it; ``rejected``: per evaluated image, if known."""
    scores = evaluated.scores
    labels = evaluated.report["labels"]
    wrong = scores.probs().argmax(axis=1) != scores.truth
    found = [flagged.get(Path(path).resolve(), []) for path in scores.paths]
    refused = list(rejected) if rejected is not None else [False] * len(scores.paths)
    if len(refused) != len(scores.paths):
        raise ValueError(f"rejected has {len(refused)} flags for {len(scores.paths)} images")
    xy = MARGIN + data_map.points * (WIDTH - 2 * MARGIN)
    height = int(np.ceil(xy[:, 1].max() + MARGIN)) if len(xy) else WIDTH
    order = sorted(range(len(xy)), key=lambda i: (bool(wrong[i] or found[i] or refused[i]), i))
    marks = "".join(_point(i, xy[i], int(scores.truth[i]), len(labels), bool(wrong[i]),
                           found[i], bool(refused[i])) for i in order)
    legend = "".join(f'<li><span class="swatch" style="--c:{colour(c, len(labels))}"></span>'
                     f"{escape(name)}</li>" for c, name in enumerate(labels))
    counts = (f"{len(xy)} images · {int(wrong.sum())} mistakes · "
              f"{sum(1 for f in found if f)} with findings"
              + (f" · {sum(refused)} rejected" if rejected is not None else ""))
    method = "UMAP" if data_map.method == "umap" else "PCA"
    return f"""<section id="map"><h2>Map of the data</h2>
<p class="explain">Each point is an evaluated image, placed by {method} of its pooled backbone
features (seed {data_map.seed}): images the backbone sees as alike lie close. Colour: the true
class; a dark ring: a mistake; an orange square: a <code>doctor</code> finding; hollow:
rejected as unknown. <b>Hover</b> a point to see the image, <b>click</b> it to open its
confusion cell's gallery. {counts}.</p>
<div class="map-layout"><div class="map-wrap"><svg id="map-plot" viewBox="0 0 {WIDTH} {height}"
role="img" aria-label="map of the evaluated images">{marks}</svg>
<div id="map-tip" class="map-tip" hidden></div></div>
<ul class="map-legend">{legend}<li><span class="swatch wrong"></span>mistake</li>
<li><span class="swatch flagged"></span>doctor finding</li>
<li><span class="swatch rejected"></span>rejected</li></ul></div></section>"""


def _point(index: int, at: np.ndarray, truth: int, classes: int, wrong: bool,
           findings: list[str], rejected: bool) -> str:
    """One image's circle (after its finding's square, when it has one)."""
    x, y = float(at[0]), float(at[1])
    kinds = " ".join(["pt", *(name for name, on in (("wrong", wrong), ("flagged", bool(findings)),
                                                    ("rejected", rejected)) if on)])
    box = (f'<rect class="finding-box" x="{x - BOX:.1f}" y="{y - BOX:.1f}" width="{2 * BOX}" '
           f'height="{2 * BOX}"></rect>' if findings else "")
    return (f'{box}<circle class="{kinds}" cx="{x:.1f}" cy="{y:.1f}" r="{RADIUS}" '
            f'style="--c:{colour(truth, classes)}" data-i="{index}" '
            f'data-findings="{escape(", ".join(findings))}"></circle>')


def colour(label: int, classes: int) -> str:
    """The colour of a class: the palette's, or an even spread of hues past ten classes."""
    if classes <= len(PALETTE):
        return PALETTE[label]
    return f"hsl({360 * label / classes:.0f} 60% 50%)"
