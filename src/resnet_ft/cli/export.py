"""``resnet-ft export``: a run as a SavedModel (image bytes in), TFLite, ONNX or OpenVINO."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from resnet_ft.cli.common import JsonFlag, RunArgument
from resnet_ft.exports.formats.base import DEFAULT_CALIBRATION_IMAGES

EPILOG = ("Examples:\n\n  resnet-ft export runs/flowers -o exported/flowers\n\n"
          "  resnet-ft export runs/flowers -o flowers.tflite --format tflite --quantize int8\n\n"
          "  resnet-ft export runs/flowers -o flowers.onnx --format onnx\n\n"
          "  resnet-ft export runs/flowers -o flowers.xml --format openvino --quantize int8\n\n"
          "  resnet-ft evaluate runs/flowers data/test --model flowers.xml")
KINDS = {"saved_model": "SavedModel", "tflite": "TFLite", "onnx": "ONNX", "openvino": "OpenVINO"}


def export(
    run: RunArgument,
    out: Annotated[
        Path, typer.Option("-o", "--out",
                           help="SavedModel directory, or .tflite, .onnx or .xml file to write.")
    ],
    fmt: Annotated[
        str, typer.Option("--format",
                          help="saved_model (takes image bytes), tflite, onnx or openvino.")
    ] = "saved_model",
    quantize: Annotated[
        str, typer.Option(help="none; int8 (tflite, onnx, openvino: calibrated on training "
                          "images); tflite also float16 and dynamic (int8 weights).")
    ] = "none",
    calibration_images: Annotated[
        int, typer.Option(help="Training images that calibrate --quantize int8 (at most).")
    ] = DEFAULT_CALIBRATION_IMAGES,
    json_output: JsonFlag = False,
) -> None:
    """Export a run for serving: a SavedModel that decodes images itself, or a pixels model
    for TFLite, ONNX Runtime or OpenVINO; each is loaded back and checked."""
    from resnet_ft.cli.render import console, print_json
    from resnet_ft.exports import export as run_export

    report = run_export(run, out, fmt, quantize, calibration_images)
    if json_output:
        print_json(report.to_dict())
        return
    kind = KINDS.get(report.format, report.format)
    if report.format != "saved_model":
        kind = f"{kind}, {report.quantize}"
    console().print(f"wrote {report.path} ({kind}, {report.size_bytes / 1e6:.1f} MB)")
    what = {"saved_model": "signatures", "openvino": "compute layers"}.get(report.format, "ops")
    console().print(f"{what}: {', '.join(report.ops)}")
    if report.calibration_images:
        console().print(f"calibrated on {report.calibration_images} training images")
    if report.top1_agreement is None:
        console().print("agreement: no validation image to compare with the float model")
    else:
        console().print(
            f"agreement with the float model on {report.compared_images} validation images: "
            f"top-1 {report.top1_agreement:.1%}, max |p - p_float| {report.max_prob_diff:.2e}"
        )
