"""Rendering results for people (rich tables) and for scripts (JSON)."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from resnet_ft.models.params import ParameterSummary
from resnet_ft.util.tables import csv_text


def console(stderr: bool = False, width: int | None = None) -> Console:
    """A console that writes plain text (no colour, no cursor tricks, no hard wraps) when piped.

    ``width`` widens it for tables whose cells must not wrap (URLs, names).
    """
    return Console(stderr=stderr, highlight=False, soft_wrap=True, width=width)


def print_json(data: Any) -> None:
    """Print one JSON document to stdout, for scripts."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def summary_table(summary: ParameterSummary) -> Table:
    """Parameters per stage with trainable, frozen, BN statistics and total columns."""
    table = Table(title=f"{summary.model}: parameters per stage", title_justify="left")
    table.add_column("stage")
    for column in ("trainable", "frozen", "of which BN stats", "total"):
        table.add_column(column, justify="right")
    for stage in summary.stages:
        table.add_row(
            stage.name, f"{stage.trainable:,}", f"{stage.non_trainable:,}",
            f"{stage.bn_statistics:,}", f"{stage.total:,}",
        )
    table.add_section()
    table.add_row(
        "total", f"{summary.trainable:,}", f"{summary.non_trainable:,}",
        f"{summary.bn_statistics:,}", f"{summary.total:,}", style="bold",
    )
    return table


def presets_table(rows: list[dict[str, Any]]) -> Table:
    """One row per preset; the size is exact once downloaded here, else its float32 weights."""
    table = Table(title="presets (resnet-ft convert NAME -o OUT.keras, or --backbone NAME)",
                  title_justify="left", box=None)
    for column in ("name", "family", "depth", "pretraining", "classes", "top-1", "size",
                   "licence", "url"):
        table.add_column(column, no_wrap=True,
                         justify="right" if column in {"depth", "classes", "top-1"} else "left")
    for row in rows:
        size = (f"{row['bytes'] / 1e6:.1f} MB" if row["bytes"] is not None
                else f"~{row['approximate_bytes'] / 1e6:.0f} MB")
        top1 = f"{row['top1']:g} %" if row["top1"] is not None else "-"
        table.add_row(str(row["name"]), str(row["family"]), str(row["depth"]),
                      str(row["pretraining"]), str(row["classes"]), top1, size,
                      str(row["licence"]), str(row["url"]))
    return table


def predictions_table(results: list[dict[str, Any]]) -> Table:
    """file, label, probability, top-k (or the error) per input file."""
    table = Table(title="predictions", title_justify="left")
    table.add_column("file", overflow="fold")
    table.add_column("label")
    table.add_column("probability", justify="right")
    table.add_column("top-k")
    scored = any("ood_score" in row for row in results)
    if scored:
        table.add_column("reject score", justify="right")
    for row in results:
        if "error" in row:
            table.add_row(row["file"], "[red]error[/red]", "", row["error"],
                          *([""] if scored else []))
            continue
        top = ", ".join(f"{t['label']} {t['probability']:.3f}" for t in row["top_k"])
        score = [f"{row['ood_score']:.3f}"] if scored else []
        table.add_row(row["file"], row["label"], f"{row['probability']:.4f}", top, *score)
    return table


def predictions_csv(results: list[dict[str, Any]]) -> str:
    """One CSV row per file: file, label, probability, top_k (label:prob;...), error."""
    rows = []
    for row in results:
        if "error" in row:
            rows.append([row["file"], "", "", "", row["error"]])
        else:
            top = ";".join(f"{t['label']}:{t['probability']:.6f}" for t in row["top_k"])
            rows.append([row["file"], row["label"], f"{row['probability']:.6f}", top, ""])
    return csv_text(["file", "label", "probability", "top_k", "error"], rows)


def metrics_tables(report: dict[str, Any]) -> list[Table]:
    """Per-class precision/recall/F1/support, the confusion matrix, and accuracy against
    coverage when the run has a reject score."""
    top = (f", top-{report['top_k']} accuracy {report['top_k_accuracy']:.4f}"
           if "top_k" in report else "")
    per_class = Table(title=f"accuracy {report['accuracy']:.4f}{top} (n={report['n']})",
                      title_justify="left")
    per_class.add_column("class")
    for column in ("precision", "recall", "f1", "support"):
        per_class.add_column(column, justify="right")
    for name, row in report["per_class"].items():
        per_class.add_row(name, f"{row['precision']:.4f}", f"{row['recall']:.4f}",
                          f"{row['f1']:.4f}", str(row["support"]))
    confusion = Table(title="confusion matrix (rows: true, columns: predicted)",
                      title_justify="left")
    confusion.add_column("")
    for name in report["labels"]:
        confusion.add_column(name, justify="right")
    for name, counts in zip(report["labels"], report["confusion_matrix"], strict=True):
        confusion.add_row(name, *(str(c) for c in counts))
    return [per_class, confusion, *coverage_tables(report)]


def coverage_tables(report: dict[str, Any]) -> list[Table]:
    """Accuracy against coverage (when the run has a reject score): none without one."""
    if "risk_coverage" not in report:
        return []
    curve = report["risk_coverage"]
    at = curve["at_threshold"]
    accuracy = "-" if at["accuracy"] is None else f"{at['accuracy']:.4f}"
    table = Table(title=f"accuracy against coverage (area {curve['area']:.4f}; the run's "
                  f"threshold keeps {at['coverage']:.1%} at accuracy {accuracy})",
                  title_justify="left")
    table.add_column("coverage", justify="right")
    table.add_column("accuracy", justify="right")
    for row in curve["table"]:
        table.add_row(f"{row['coverage']:.0%}", f"{row['accuracy']:.4f}")
    return [table]


def tta_line(report: dict[str, Any], cached: int) -> str:
    """Accuracy with and without test-time flips, and where the mirrored views came from."""
    with_tta, without = report["accuracy"], report["without_tta"]["accuracy"]
    source = (f"mirrored views of {cached} of {report['n']} images from the feature cache"
              if cached else "mirrored views computed")
    return (f"accuracy with test-time flips {with_tta:.4f}, without {without:.4f} "
            f"({with_tta - without:+.4f}; {source})")
