"""``resnet-ft convert``: a checkpoint, by file or preset name -> a Keras backbone file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from resnet_ft.cli.common import JsonFlag, usage
from resnet_ft.conversion.formats import FORMAT_EXAMPLES

EPILOG = "Accepted formats, with an example each:\n\n" + "\n\n".join(
    f"  {what}:\n\n    {example}" for what, example in [
        *FORMAT_EXAMPLES,
        ("A preset: downloaded once, checked, cached (convert --list shows the names)",
         "resnet-ft convert slim/resnet_v1_101 -o backbone.keras")])


def convert(
    src: Annotated[
        str | None,
        typer.Argument(help="Checkpoint: TF-slim prefix/.index/directory, keras.applications "
                       ".h5 or Keras 3 .weights.h5, a torchvision/timm .safetensors/.pth "
                       "state dict, or a preset name (--list).", show_default=False),
    ] = None,
    out: Annotated[Path | None,
                   typer.Option("-o", "--out", help="Output backbone .keras file.")] = None,
    depth: Annotated[
        int | None, typer.Option(help="Expected depth (50, 101, 152); detected when omitted.")
    ] = None,
    include_top: Annotated[
        bool, typer.Option(help="Keep the ImageNet classifier as a second output (logits).")
    ] = False,
    cache_dir: Annotated[
        Path | None, typer.Option(help="Cache folder: presets are kept in CACHE_DIR/weights "
                                  "(default ~/.cache/resnet-ft/weights).")] = None,
    list_presets: Annotated[
        bool, typer.Option("--list", help="List the presets (name, family, depth, pretraining, "
                           "classes, published top-1, size, licence, URL) and exit.")] = False,
    json_: JsonFlag = False,
) -> None:
    """Convert a pretrained checkpoint into a Keras backbone that computes exactly the same."""
    from resnet_ft.cli.render import console, presets_table, print_json
    from resnet_ft.presets.api import convert as run_convert
    from resnet_ft.presets.api import list_presets as preset_rows

    if list_presets:
        rows = preset_rows(cache_dir)
        print_json(rows) if json_ else console(width=240).print(presets_table(rows))
        return
    if src is None or out is None:
        raise usage("convert needs a checkpoint or preset name and -o OUT.keras (or --list)")
    if out.suffix != ".keras":
        raise usage(f"output must end in .keras: {out}")
    info = run_convert(src, out, depth=depth, include_top=include_top, cache_dir=cache_dir,
                       console=console(stderr=True))
    top = f", with {info.num_classes}-way classifier" if info.include_top else ""
    console().print(f"wrote {out} (ResNet-{info.depth}, {info.family} family{top})")
