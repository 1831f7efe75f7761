"""The ``resnet-ft`` command line: parse, call the library, render.

Commands import TensorFlow lazily, inside their bodies, so ``resnet-ft --help``
stays fast. Every expected failure is a :class:`~resnet_ft.errors.ResnetFtError`
rendered as one ``error:`` line with its exit code (0 ok, 1 runtime failure,
2 usage/input error, 130 interrupted); ``--debug`` or ``RESNET_FT_DEBUG=1``
shows the traceback instead.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from resnet_ft.errors import EXIT_INTERRUPTED, EXIT_USAGE, ResnetFtError

app = typer.Typer(
    name="resnet-ft",
    help="Transfer learning with ResNet on TensorFlow/Keras 3.\n\n"
    "convert a checkpoint -> train a head on a folder of images -> predict.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

#: Commands that need TensorFlow; the others (and --help) start without importing it.
TENSORFLOW_COMMANDS = frozenset({"convert", "summary", "train", "predict", "evaluate"})

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document for scripts.")]


@app.command(
    epilog="Examples:\n\n"
    "  resnet-ft convert resnet_v1_101.ckpt -o backbone.keras\n\n"
    "  resnet-ft convert checkpoints/ -o backbone.keras --include-top"
)
def convert(
    src: Annotated[
        Path, typer.Argument(help="TF-slim checkpoint: prefix, .index file or directory.")
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
    from resnet_ft.convert import convert as run_convert
    from resnet_ft.reporting import console

    if out.suffix != ".keras":
        raise _usage(f"output must end in .keras: {out}")
    spec = run_convert(src, out, depth=depth, include_top=include_top)
    top = f", with {spec.num_classes}-way classifier" if spec.include_top else ""
    console().print(f"wrote {out} (ResNet-{spec.depth}, {spec.family} family{top})")


@app.command(
    epilog="Examples:\n\n  resnet-ft summary backbone.keras\n\n"
    "  resnet-ft summary runs/flowers --json"
)
def summary(
    model: Annotated[
        Path, typer.Argument(help="Backbone .keras file or training run directory.")
    ],
    json_output: JsonFlag = False,
) -> None:
    """Trainable vs frozen parameter counts, per stage."""
    from resnet_ft.reporting import console, print_json, summary_table
    from resnet_ft.summary import summarize_path

    result = summarize_path(model)
    if json_output:
        print_json(result.to_dict())
    else:
        console().print(summary_table(result))


data_app = typer.Typer(help="Get data: the real flowers files, or an offline stand-in.")
app.add_typer(data_app, name="data")


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
    from resnet_ft.download import fetch_flowers
    from resnet_ft.reporting import console

    paths = fetch_flowers(dest, base_url=base_url, console=console(stderr=True))
    for name, path in paths.items():
        console().print(f"{name}: {path}")


@data_app.command("standin", epilog="Example:\n\n  resnet-ft data standin demo/standin")
def data_standin(
    dest: Annotated[Path, typer.Argument(help="Directory for the stand-in files.")],
    depth: Annotated[int, typer.Option(help="ResNet depth of the checkpoint.")] = 101,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Write an offline STAND-IN: random-weight slim checkpoint (official format and names)."""
    from resnet_ft.reporting import console
    from resnet_ft.runtime import import_tensorflow_quietly
    from resnet_ft.standin import write_standin_checkpoint

    import_tensorflow_quietly()
    prefix = write_standin_checkpoint(dest / f"resnet_v1_{depth}.ckpt", depth, seed=seed)
    console().print(f"wrote STAND-IN checkpoint {prefix} (random weights, not pretrained)")


def _usage(message: str) -> ResnetFtError:
    from resnet_ft.errors import InputError

    return InputError(message)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app and map failures to one line and an exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("RESNET_FT_DEBUG", "") not in ("", "0") or "--debug" in args
    args = [a for a in args if a != "--debug"]
    if args and args[0] in TENSORFLOW_COMMANDS and "--help" not in args:
        from resnet_ft.runtime import import_tensorflow_quietly

        import_tensorflow_quietly()
    command = typer.main.get_command(app)
    try:
        result = command.main(args=args, prog_name="resnet-ft", standalone_mode=False)
    except typer.Abort:
        _error("interrupted")
        return EXIT_INTERRUPTED
    except typer.Exit as exc:
        return exc.exit_code
    except typer.TyperException as exc:  # usage errors: unknown option, bad value, ...
        if debug:
            raise
        if not args or args == ["--help"]:
            return 0
        _error(f"{exc.format_message()} (see 'resnet-ft --help')")
        return EXIT_USAGE
    except ResnetFtError as exc:
        if debug:
            raise
        _error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        _error("interrupted")
        return EXIT_INTERRUPTED
    return result if isinstance(result, int) else 0


def _error(message: str) -> None:
    line = " ".join(message.split())
    sys.stderr.write(f"error: {line}\n")
