"""``resnet-ft convert``: a pretrained checkpoint -> a Keras backbone file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from resnet_ft.cli.common import usage
from resnet_ft.conversion.formats import FORMAT_EXAMPLES

EPILOG = "Accepted formats, with an example each:\n\n" + "\n\n".join(
    f"  {what}:\n\n    {example}" for what, example in FORMAT_EXAMPLES)


def convert(
    src: Annotated[
        Path,
        typer.Argument(help="Checkpoint: TF-slim prefix/.index/directory, keras.applications "
                       ".h5 or Keras 3 .weights.h5, or a torchvision/timm .safetensors/.pth "
                       "state dict."),
    ],
    out: Annotated[Path, typer.Option("-o", "--out", help="Output backbone .keras file.")],
    depth: Annotated[
        int | None, typer.Option(help="Expected depth (50, 101, 152); detected when omitted.")
    ] = None,
    include_top: Annotated[
        bool, typer.Option(help="Keep the ImageNet classifier as a second output (logits).")
    ] = False,
) -> None:
    """Convert a pretrained checkpoint into a Keras backbone that computes exactly the same."""
    from resnet_ft.cli.render import console
    from resnet_ft.conversion.converter import convert as run_convert

    if out.suffix != ".keras":
        raise usage(f"output must end in .keras: {out}")
    info = run_convert(src, out, depth=depth, include_top=include_top)
    top = f", with {info.num_classes}-way classifier" if info.include_top else ""
    console().print(f"wrote {out} (ResNet-{info.depth}, {info.family} family{top})")
