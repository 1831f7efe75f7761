"""Install requirements into the running venv: with uv where it can, else with pip.

``make demo`` and ``make test`` install TensorFlow, torch, OpenVINO and the rest into a fresh
``.venv`` on every clean clone. pip downloads and unpacks one wheel at a time (91 s here for
the dev extras); uv resolves the same requirements from the same index and unpacks in
parallel (24-30 s; ``pip freeze`` lists the same versions after either). uv reads none of pip's
configuration, so the settings that decide *what* gets installed (index URLs, find-links
folders, constraint files) are read from pip and handed on, and versions are chosen across
all indexes, as pip chooses them; a location pip would skip (a ``file://`` index or folder
that does not exist) is skipped here too. If uv cannot be installed or fails, pip installs
as before, so uv is never the reason an install fails. uv's cache is a temporary folder it
removes itself (``--no-cache``): nothing is cached outside ``.venv``.

Usage: ``python .ci/install.py -e '.[dev]'`` (the arguments are pip's and uv's).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

#: pip's settings that change what is installed, and uv's flag for each.
FLAGS = {"index-url": "--index-url", "extra-index-url": "--extra-index-url",
         "find-links": "--find-links", "constraint": "--constraint"}
SETTING = re.compile(r"^(?P<scope>[^.]*)\.(?P<name>[a-z-]+)='(?P<value>.*)'$")


def pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)


def exists(location: str) -> bool:
    """Whether pip would use this location: a URL, or a file or folder that is there."""
    parsed = urlparse(location)
    if parsed.scheme in ("http", "https"):
        return True
    path = unquote(parsed.path) if parsed.scheme == "file" else location
    return Path(path).exists()


def uv_options() -> list[str]:
    """pip's configured index, find-links and constraints as uv options (env beats files)."""
    chosen: dict[str, str] = {}
    for line in pip("config", "list").stdout.splitlines():
        match = SETTING.match(line.strip())
        if match and match["name"] in FLAGS and (match["name"] not in chosen
                                                 or match["scope"] == ":env:"):
            chosen[match["name"]] = match["value"]
    options: list[str] = []
    for name, value in chosen.items():
        options += [part for location in value.split() if exists(location)
                    for part in (FLAGS[name], location)]
    return options


def main(args: list[str]) -> int:
    # pip picks the best version across all its indexes; uv's default takes the first index
    # that has the package at all
    env = {**os.environ, "UV_NO_CACHE": "1", "UV_INDEX_STRATEGY": "unsafe-best-match"}
    if pip("install", "--quiet", "uv").returncode == 0:
        uv = Path(sys.executable).with_name("uv")
        done = subprocess.run([str(uv), "pip", "install", "--quiet", "--python", sys.executable,
                               *uv_options(), *args], env=env)
        if done.returncode == 0:
            return 0
        print("uv could not install; pip installs instead", file=sys.stderr)
    return subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *args]).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
