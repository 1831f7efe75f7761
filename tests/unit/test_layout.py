"""The package's shape: every name on a package is what it says, and modules stay small.

Importing ``pkg.sub`` binds ``sub`` on ``pkg``; a package that also binds a
function or object called ``sub`` makes ``pkg.sub`` mean one thing before the
import and another after (``resnet_ft.convert`` used to stop being callable
this way). After importing every module, each submodule's name on its parent
must be the module itself.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import sys
from pathlib import Path

import resnet_ft

SRC = Path(resnet_ft.__file__).parent
#: The size rules of the structure issue: a module one screenful of jobs, a function one job.
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 60


def _modules() -> list[str]:
    return [m.name for m in pkgutil.walk_packages(resnet_ft.__path__, "resnet_ft.")
            if not m.name.endswith("__main__")]


def test_no_package_attribute_hides_a_submodule():
    names = _modules()
    for name in names:
        importlib.import_module(name)
    for name in names:
        parent, _, child = name.rpartition(".")
        assert getattr(sys.modules[parent], child) is sys.modules[name], name


def test_public_api_names_are_not_modules():
    for name in resnet_ft.__all__:
        if name != "__version__":
            value = getattr(resnet_ft, name)
            assert not isinstance(value, type(sys)), name
            assert f"resnet_ft.{name}" not in sys.modules, name


def test_modules_and_functions_stay_small():
    too_long = []
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > MAX_MODULE_LINES:
            too_long.append(f"{path.relative_to(SRC)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{path.relative_to(SRC)}:{node.name}: {length} lines")
    assert not too_long, too_long
