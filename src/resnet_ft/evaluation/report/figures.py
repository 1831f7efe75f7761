"""The report's figures: training curves with the phases marked, the reliability diagram, and
accuracy against coverage when the run has a reject score."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from resnet_ft.evaluation.plots import _pyplot
from resnet_ft.util.atomic import atomic_path

TRAIN_COLOUR, VAL_COLOUR, PHASE2_SHADE = "#1f77b4", "#d62728", "#fff3d6"


def plot_training(history: list[dict[str, float]], rates: list[float], best_epoch: int,
                  trainable: str, path: Path) -> None:
    """Loss, accuracy and learning rate per epoch; phase 2 shaded, the best epoch marked."""
    plt = _pyplot()
    epochs = [int(row["epoch"]) for row in history]
    phase2 = [e for e, row in zip(epochs, history, strict=True) if int(row["phase"]) == 2]
    panels = [("loss", "loss"), ("accuracy", "accuracy")] + ([("learning rate", None)]
                                                           if rates else [])
    figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.2))
    for axis, (title, metric) in zip(axes, panels, strict=True):
        if phase2:
            axis.axvspan(phase2[0] - 0.5, phase2[-1] + 0.5, color=PHASE2_SHADE, zorder=0,
                         label=f"phase 2 ({trainable} + head)")
        if best_epoch:
            axis.axvline(best_epoch, color="#555", linestyle=":", label=f"best epoch {best_epoch}")
        if metric is None:
            axis.plot(epochs, rates, marker="o", color="#2ca02c")
            axis.set_ylim(0, max(rates) * 1.15)
            axis.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
        else:
            axis.plot(epochs, [r[metric] for r in history], marker="o", color=TRAIN_COLOUR,
                      label="train")
            axis.plot(epochs, [r[f"val_{metric}"] for r in history], marker="o",
                      color=VAL_COLOUR, label="validation")
        axis.set_title(title)
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
        axis.xaxis.get_major_locator().set_params(integer=True)
    axes[0].legend(fontsize=8)
    _save(figure, plt, path)


def plot_reliability(calibration: dict[str, Any], path: Path) -> None:
    """Accuracy per confidence bin against the diagonal of perfect calibration, with counts."""
    plt = _pyplot()
    bins = calibration["bins"]
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(4.6, 4.8), sharex=True,
                                         gridspec_kw={"height_ratios": [3, 1]})
    centres = [(b["lower"] + b["upper"]) / 2 for b in bins]
    width = bins[0]["upper"] - bins[0]["lower"]
    filled = [b for b in bins if b["count"]]
    middles = [(b["lower"] + b["upper"]) / 2 for b in filled]
    top.bar(middles, [b["accuracy"] for b in filled], width=width * 0.9, color="#4c78a8",
            label="accuracy in bin")
    top.bar(middles, [b["confidence"] - b["accuracy"] for b in filled], width=width * 0.9,
            bottom=[b["accuracy"] for b in filled], color="none", edgecolor="#d62728",
            hatch="//", linewidth=0.8, label="gap to mean confidence")
    top.plot([0, 1], [0, 1], "--", color="#888", label="perfect calibration")
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.set_title(f"reliability (ECE {calibration['ece']:.3f})")
    top.legend(fontsize=7, loc="upper left")
    bottom.bar(centres, [b["count"] for b in bins], width=width * 0.9, color="#999")
    bottom.set_ylabel("images")
    bottom.set_xlabel("confidence (top probability)")
    bottom.set_xlim(0, 1)
    _save(figure, plt, path)


def plot_coverage(coverage: dict[str, Any], overall: float, path: Path) -> None:
    """Accuracy of the images kept against coverage (most familiar first), the run's threshold
    marked, beside the flat line of keeping everything."""
    plt = _pyplot()
    curve = coverage["curve"]
    figure, axis = plt.subplots(figsize=(4.6, 3.4))
    axis.plot([(i + 1) / len(curve) for i in range(len(curve))], curve, color="#4c78a8",
              label=f"kept by reject score (area {coverage['area']:.3f})")
    axis.axhline(overall, color="#888", linestyle="--", label=f"all images ({overall:.3f})")
    at = coverage["at_threshold"]
    if at["accuracy"] is not None:
        axis.plot([at["coverage"]], [at["accuracy"]], "o", color="#d62728",
                  label=f"run's threshold ({at['rejected']} rejected)")
    axis.set_xlim(0, 1.02)
    axis.set_ylim(0, 1.02)
    axis.set_xlabel("coverage (share of images answered)")
    axis.set_ylabel("accuracy of the answered")
    axis.set_title("accuracy against coverage")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, loc="lower left")
    _save(figure, plt, path)


def _save(figure: Any, plt: Any, path: Path) -> None:
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)
