"""``resnet-ft distill``: a trained run teaches a student backbone; options from DistillConfig.

The options are generated from :class:`~resnet_ft.config.DistillConfig`
exactly as ``train``'s are from ``TrainConfig`` (every ``train`` option applies
to the student), so the two commands cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from resnet_ft.cli.options import command
from resnet_ft.cli.train import RUN_OPTIONS, print_result, resolve_config
from resnet_ft.config import DistillConfig

EPILOG = (
    "Examples:\n\n"
    "  resnet-ft distill runs/r101 flower_photos --student resnet_v1_50.keras -o runs/r50 "
    "--baseline\n\n"
    "  resnet-ft distill runs/r101 flower_photos --student r50.keras -o runs/r50 "
    "--unlabeled more_photos --prune-head 0.5\n\n"
    "  resnet-ft distill --config runs/r50/config.yaml -o runs/r50 --resume"
)


@command(DistillConfig, first=RUN_OPTIONS[:1], last=RUN_OPTIONS[1:])
def distill(**options: Any) -> None:
    """Distil a trained run (the teacher) into a student backbone of another depth or family."""
    from resnet_ft.cli.render import console
    from resnet_ft.training.distill import distill as run_distill

    result = run_distill(resolve_config(options, DistillConfig), options["out"],
                         resume=options["resume"], overwrite=options["overwrite"],
                         console=console())
    print_result(result)
    console().print(distillation_line(result.metrics["distillation"]))


def distillation_line(report: dict[str, Any]) -> str:
    """Student, teacher, agreement, baseline; then the loss settings and the unlabelled count."""
    baseline = report.get("baseline_accuracy")
    unlabeled = report["unlabeled"]
    return (
        f"student val_accuracy {report['student_accuracy']:.4f}, teacher "
        f"{report['teacher_accuracy']:.4f}, top-1 agreement {report['agreement']:.4f}"
        + (f", baseline (labels only) {baseline:.4f}" if baseline is not None else "")
        + f" (alpha {report['alpha']:g}, T {report['temperature']:g}"
        + (f", {unlabeled} unlabelled images)" if unlabeled else ")")
    )

