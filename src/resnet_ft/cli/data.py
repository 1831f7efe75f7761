"""``resnet-ft data``: the real flowers files, or an offline stand-in."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

data_app = typer.Typer(help="Get data: the real flowers files, or an offline stand-in.")


@data_app.command(
    "flowers", epilog="Example:\n\n  resnet-ft data flowers data/  # then data/flower_photos/"
)
def data_flowers(
    dest: Annotated[Path, typer.Argument(help="Directory to download and extract into.")],
    base_url: Annotated[
        str | None, typer.Option(help="Mirror to download from instead of the official hosts.")
    ] = None,
) -> None:
    """Download TF's flower_photos and the official slim resnet_v1_101 checkpoint (resumable)."""
    from resnet_ft.cli.render import console
    from resnet_ft.data.fetch import fetch_flowers

    errors = console(stderr=True)
    paths = fetch_flowers(dest, base_url=base_url, console=errors, progress=errors.is_terminal)
    for name, path in paths.items():
        console().print(f"{name}: {path}")


@data_app.command("standin", epilog="Example:\n\n  resnet-ft data standin demo/standin")
def data_standin(
    dest: Annotated[Path, typer.Argument(help="Directory for the stand-in files.")],
    depth: Annotated[int, typer.Option(help="ResNet depth of the checkpoint.")] = 101,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    images_per_class: Annotated[
        int, typer.Option(help="Generated images per class (0: checkpoint only).")
    ] = 30,
) -> None:
    """Write an offline STAND-IN: random-weight slim checkpoint and a generated image folder."""
    from resnet_ft.cli.render import console
    from resnet_ft.cli.runtime import import_tensorflow_quietly
    from resnet_ft.conversion.standin import write_standin_checkpoint
    from resnet_ft.data.standin import write_standin_images

    import_tensorflow_quietly()
    prefix = write_standin_checkpoint(dest / f"resnet_v1_{depth}.ckpt", depth, seed=seed)
    console().print(f"wrote STAND-IN checkpoint {prefix} (random weights, not pretrained)")
    if images_per_class:
        images = write_standin_images(dest / "images", per_class=images_per_class, seed=seed)
        console().print(f"wrote STAND-IN images {images} (generated blobs, not flowers)")
