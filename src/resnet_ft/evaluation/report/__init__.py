"""``resnet-ft report``: a run's mistakes, heat maps and numbers as a static site in a folder.

The story: read the run directory (:mod:`.gather`); score the evaluated
images, the run's validation split or a ``DATA_DIR``; rank the top losses and
draw their Grad-CAM heat maps; write thumbnails (:mod:`resnet_ft.evaluation.thumbs`), figures
(:mod:`.figures`), the map of the data (:mod:`.datamap`, ``map.json``) and
the data behind the page (``metrics.json``, ``misclassified.csv``,
``predictions.csv``); fill the page (:mod:`.page`).
The folder is built beside its destination and renamed into place, so a
failed build leaves the previous report untouched. It opens from
``file://`` with no server and no network: plain HTML and CSS and one small
script of our own.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from resnet_ft.errors import InputError
from resnet_ft.evaluation.evaluate import write_report
from resnet_ft.evaluation.report.datamap import evaluated_map, flagged_files, map_section
from resnet_ft.evaluation.report.doctor import read_findings, resolve
from resnet_ft.evaluation.report.figures import plot_coverage, plot_reliability, plot_training
from resnet_ft.evaluation.report.gather import Evaluated, RunInfo, evaluate_set, read_run
from resnet_ft.evaluation.report.page import Page, asset, render
from resnet_ft.evaluation.thumbs import jpeg_bytes, thumb_name, write_thumbnails
from resnet_ft.evaluation.top_losses import TOP_LOSSES, TopLoss, image_losses, top_losses
from resnet_ft.features.projection import write_map
from resnet_ft.inference.gradcam import cam_model, iter_gradcam, overlay
from resnet_ft.inference.loaders import load_predictor
from resnet_ft.inference.options import DEFAULTS
from resnet_ft.inference.predictor import Predictor
from resnet_ft.runs.run import Run
from resnet_ft.util.atomic import atomic_dir, write_bytes, write_text
from resnet_ft.util.tables import csv_text

#: The file that marks a folder as a report this command may replace.
MARKER = "resnet-ft-report.json"
STATIC_FILES = ("report.css", "report.js", "map.js")


def build_report(
    run: str | Path,
    data_dir: str | Path | None = None,
    *,
    out: str | Path | None = None,
    top: int = TOP_LOSSES,
    top_k: int = DEFAULTS.top_k,
    doctor: str | Path | None = None,
    console: Console | None = None,
) -> Path:
    """Write the report of ``run`` on its validation split (or ``data_dir``); return index.html.

    ``out`` defaults to ``RUN/report``; an existing folder is replaced only
    if it is an earlier report. ``top`` top-loss images get heat maps;
    ``doctor`` is a folder of ``resnet-ft doctor`` findings to show.
    """
    run = Run.finished(run).path
    out = Path(out) if out else run / "report"
    check_destination(out)
    console = console or Console(stderr=True)
    findings = read_findings(Path(doctor)) if doctor else []
    info = read_run(run)
    predictor = load_predictor(run)
    evaluated = evaluate_set(run, predictor, Path(data_dir) if data_dir else None, top_k,
                             console)
    scores = evaluated.scores
    losses = top_losses(scores.paths, scores.truth, scores.probs(), predictor.labels, top)
    bases = [Path.cwd(), *(kind.csv.parent for kind in findings),
             *([Path(data_dir)] if data_dir else [])]
    finding_files = {value: resolve(value, bases) for kind in findings for row in kind.rows
                     for column in kind.file_columns if (value := row.get(column))}
    data_map = evaluated_map(evaluated, out if out.is_dir() else None)
    with atomic_dir(out) as folder:
        thumbs = {path: f"thumbs/{name}" for path, name in write_thumbnails(
            [*scores.paths, *finding_files.values()], folder / "thumbs", console).items()}
        heat = write_heat_maps(predictor, losses, folder / "heat")
        figures = write_figures(info, evaluated, folder)
        write_data(folder, evaluated, predictor.labels)
        write_map(folder, data_map)
        page = Page(info, evaluated, thumbs, losses, heat, figures, findings, finding_files,
                    map_section(data_map, evaluated, flagged_files(findings, finding_files),
                                rejected=scores.rejected))
        write_text(folder / "index.html", render(page))
        for name in STATIC_FILES:
            write_text(folder / name, asset(name))
        write_text(folder / MARKER, json.dumps(
            {"run": str(run.resolve()), "evaluated": evaluated.source,
             "doctor": str(doctor) if doctor else None}, indent=2))
    return out / "index.html"


def check_destination(out: Path) -> None:
    """Refuse to replace a file, or a non-empty folder that is not an earlier report."""
    if out.exists() and not out.is_dir():
        raise InputError(f"report destination {out} is a file; give a folder with -o")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise InputError(f"report destination {out} is a non-empty folder that is not a "
                         "resnet-ft report; choose another -o")


def write_heat_maps(predictor: Predictor, losses: list[TopLoss], folder: Path) -> dict[int, str]:
    """Grad-CAM overlays (JPEG) of the top losses for their predicted class."""
    cam = cam_model(predictor)
    paths = [item.path for item in losses]
    classes = [predictor.labels.index(item.predicted) for item in losses]
    written = {}
    for position, pixels, heat in iter_gradcam(cam, paths, classes):
        name = thumb_name(paths[position])
        write_bytes(folder / name, jpeg_bytes(overlay(pixels, heat)))
        written[losses[position].index] = f"heat/{name}"
    return written


def write_figures(info: RunInfo, evaluated: Evaluated, folder: Path) -> dict[str, str]:
    """``curves.png`` (when the run has a history), ``reliability.png`` and ``coverage.png``
    (when the run has a reject score)."""
    figures = {}
    if info.history:
        plot_training(info.history, info.learning_rates, int(info.metrics.get("best_epoch", 0)),
                      str(info.config.get("trainable", "")), folder / "curves.png")
        figures["training"] = "curves.png"
    plot_reliability(evaluated.report["calibration"], folder / "reliability.png")
    figures["reliability"] = "reliability.png"
    if "risk_coverage" in evaluated.report:
        plot_coverage(evaluated.report["risk_coverage"], evaluated.report["accuracy"],
                      folder / "coverage.png")
        figures["coverage"] = "coverage.png"
    return figures


def write_data(folder: Path, evaluated: Evaluated, labels: list[str]) -> None:
    """The numbers behind the page: metrics.json, misclassified.csv, predictions.csv."""
    write_report(folder, evaluated.report, evaluated.misclassified)
    scores = evaluated.scores
    probs = scores.probs()
    loss = image_losses(scores.truth, probs)
    rows = [(str(path), labels[t], labels[p], f"{row[p]:.6f}", f"{row[t]:.6f}", f"{value:.6f}")
            for path, t, p, row, value in zip(scores.paths, scores.truth, probs.argmax(axis=1),
                                              probs, loss, strict=True)]
    write_text(folder / "predictions.csv", csv_text(
        ["file", "true", "predicted", "probability", "p_true", "loss"], rows))


def open_in_browser(index: Path) -> bool:
    """Open the page in the user's browser; False when there is none to open."""
    import webbrowser

    return webbrowser.open(index.resolve().as_uri())
