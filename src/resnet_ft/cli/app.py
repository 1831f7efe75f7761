"""The ``resnet-ft`` command line: the app, its commands, and failures as one line + exit code.

Each command lives in its own module and only parses, calls the library and
renders. Commands import TensorFlow lazily, inside their bodies, so
``resnet-ft --help`` stays fast. Every expected failure is a
:class:`~resnet_ft.errors.ResnetFtError` rendered as one ``error:`` line with
its exit code (0 ok, 1 runtime failure, 2 usage/input error, 130
interrupted); ``--debug`` or ``RESNET_FT_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer

from resnet_ft.cli.data import data_app
from resnet_ft.errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_USAGE, ResnetFtError

app = typer.Typer(
    name="resnet-ft",
    help="Transfer learning with ResNet on TensorFlow/Keras 3.\n\n"
    "convert a checkpoint -> train a head on a folder of images -> predict.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
#: The commands, in ``--help`` order. Each is the function of the same name in the module
#: ``resnet_ft.cli.<name>``, with that module's ``EPILOG``: adding a command is adding a module
#: and its name here.
COMMANDS = ("convert", "summary", "train", "distill", "predict", "evaluate", "export", "report",
            "doctor", "sweep")
for _name in COMMANDS:
    _module = importlib.import_module(f"resnet_ft.cli.{_name}")
    app.command(_name, epilog=_module.EPILOG)(getattr(_module, _name))
app.add_typer(data_app, name="data")

#: Commands that need TensorFlow; the others (and --help) start without importing it.
TENSORFLOW_COMMANDS = frozenset(COMMANDS)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app and map failures to one line and an exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("RESNET_FT_DEBUG", "") not in ("", "0") or "--debug" in args
    args = [a for a in args if a != "--debug"]
    command = typer.main.get_command(app)
    try:
        if args and args[0] in TENSORFLOW_COMMANDS and "--help" not in args:
            from resnet_ft.cli.runtime import import_tensorflow_quietly

            import_tensorflow_quietly()
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
        known = getattr(command, "commands", {})
        where = f"resnet-ft {args[0]}" if args and args[0] in known else "resnet-ft"
        _error(f"{exc.format_message()} (see '{where} --help')")
        return EXIT_USAGE
    except ResnetFtError as exc:
        if debug:
            raise
        _error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        _error("interrupted")
        return EXIT_INTERRUPTED
    except OSError as exc:  # disk full, read-only, permissions: a user-facing condition
        if debug:
            raise
        where = f" ({exc.filename})" if exc.filename else ""
        _error(f"{exc.strerror or exc}{where}")
        return EXIT_FAILURE
    except Exception as exc:  # a bug: still one line, with a way to see more
        if debug:
            raise
        _error(f"unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)")
        return EXIT_FAILURE
    if result == EXIT_INTERRUPTED:  # typer turns Ctrl-C inside a command into this code, silently
        _error("interrupted")
    return result if isinstance(result, int) else 0


def _error(message: str) -> None:
    line = " ".join(message.split())
    sys.stderr.write(f"error: {line}\n")
