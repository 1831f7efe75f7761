"""MkDocs hooks: the pages' generated parts, so the site cannot drift from the code.

``<!-- options: train -->`` (or ``<!-- options: data standin -->``) becomes a
table of that command's arguments and options, built from the click command
behind ``resnet-ft train``: the same objects ``--help`` renders, whose help
comes from the config fields (:mod:`resnet_ft.cli.options`). The command's
``--help`` examples follow the table. ``<!-- commands -->`` becomes the list
of commands, each linked to its page, so a command without a page breaks the
strict build. ``<!-- api -->`` becomes one
mkdocstrings block per public name of ``resnet_ft`` (its lazy-import table),
so a name added to the API appears in the reference without editing a page.

The CLI is imported lazily, on the first marker, from this checkout's
``src/`` (ahead of any installed copy), so ``mkdocs build`` documents the code
beside it. An unknown command is a build error, never an empty table.
"""

from __future__ import annotations

import re
import sys
from functools import cache
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

SRC = Path(__file__).resolve().parent.parent / "src"
OPTIONS = re.compile(r"<!--\s*options:\s*([\w -]+?)\s*-->")
API = re.compile(r"<!--\s*api\s*-->")
COMMANDS = re.compile(r"<!--\s*commands\s*-->")
#: A Sphinx role left in rendered docstring text: ``:class:<code>~pkg.mod.Name</code>``.
ROLE = re.compile(r":(?:func|class|mod|data|attr|meth|exc):<code>(~?)([\w.]+)</code>")


@cache
def cli() -> Any:
    """The ``resnet-ft`` click group (imported once; ``--help`` needs no TensorFlow)."""
    if str(SRC) not in sys.path:
        sys.path.insert(0, str(SRC))
    import typer

    from resnet_ft.cli.app import app

    return typer.main.get_command(app)


def find_command(path: str) -> Any:
    """The click command for ``"train"`` or ``"data standin"``; a build error if none."""
    command = cli()
    for word in path.split():
        command = getattr(command, "commands", {}).get(word)
        if command is None:
            raise PluginError(f"<!-- options: {path} -->: no such resnet-ft command")
    return command


def cell(text: str) -> str:
    """One table cell: rich's escaped brackets undone, Markdown's specials escaped.

    ``<`` would open raw HTML (``<name>``), ``|`` would end the cell, ``*`` and
    ``_`` would start emphasis in ``mixed_float16`` or ``n / (classes * n_c)``.
    """
    text = " ".join(text.replace("\\[", "[").split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for special in ("\\", "`", "*", "_", "|", "["):
        text = text.replace(special, "\\" + special)
    return text


def options_table(path: str) -> str:
    """Arguments and options of ``resnet-ft PATH`` as Markdown tables, then its examples."""
    command = find_command(path)
    context = command.make_context(path.split()[-1], [], resilient_parsing=True)
    panels: dict[str, list[str]] = {}
    for param in command.params:
        record = param.get_help_record(context)
        if record is None:
            continue
        names, text = record
        kind = "Arguments" if param.param_type_name == "argument" else "Options"
        panel = getattr(param, "rich_help_panel", None) or kind
        if kind == "Arguments":  # "data_dir <path>" -> "DATA_DIR <path>", as in the usage line
            name, _, metavar = names.partition(" ")
            names = f"{name.upper()} {metavar}".strip()
        panels.setdefault(panel, []).append(f"| `{names}` | {cell(text)} |")
    blocks = [f"| {panel} | |\n|---|---|\n" + "\n".join(rows) for panel, rows in panels.items()]
    if command.epilog:
        lines = [line.strip() for line in command.epilog.splitlines() if line.strip()]
        examples = "\n".join(line for line in lines[1:])
        blocks.append(f"**{lines[0].rstrip(':')}** (from `--help`)\n\n```\n{examples}\n```")
    return "\n\n".join(blocks) + "\n"


def commands_table() -> str:
    """Every command of ``resnet-ft --help``, linked to its page (a missing page fails --strict)."""
    rows = [f"| [`{name}`]({name}.md) | {cell(command.get_short_help_str(limit=200))} |"
            for name, command in cli().commands.items()]
    return "| command | what it does |\n|---|---|\n" + "\n".join(rows) + "\n"


def api_blocks() -> str:
    """One ``::: module.name`` block per public name, in ``resnet_ft.__all__`` order."""
    cli()  # puts this checkout's src/ first on sys.path
    import resnet_ft

    table: dict[str, str] = resnet_ft._API
    return "\n".join(f"::: {module}.{name}\n" for name, module in table.items())


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace the markers of one page (MkDocs calls this before rendering it)."""
    markdown = OPTIONS.sub(lambda match: options_table(match.group(1)), markdown)
    markdown = COMMANDS.sub(lambda _: commands_table(), markdown)
    return API.sub(lambda _: api_blocks(), markdown)


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    """Docstrings use Sphinx roles (``:class:`~a.B```), which mkdocstrings leaves as text:
    keep the code span, with ``~`` shortening the name to its last part as Sphinx does."""
    return ROLE.sub(lambda m: f"<code>{m[2].rsplit('.', 1)[-1] if m[1] else m[2]}</code>", html)
