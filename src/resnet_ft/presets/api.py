"""``convert`` by file or preset name, and the preset list: what the CLI and API call."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from resnet_ft.conversion import converter
from resnet_ft.models.families import BackboneInfo
from resnet_ft.presets.cache import cached_size, fetch_checkpoint
from resnet_ft.presets.catalog import PRESETS, find_preset, looks_like_preset


def convert(src: str | Path, out: str | Path, *, depth: int | None = None,
            include_top: bool = False, cache_dir: str | Path | None = None,
            console: Console | None = None) -> BackboneInfo:
    """Convert a checkpoint file, or a preset (fetched once into the weights cache), to ``out``.

    ``src`` is a path (TF-slim prefix, ``.h5``, ``.safetensors``, ...) or a
    preset name such as ``"slim/resnet_v1_101"`` (:func:`list_presets`).
    """
    if looks_like_preset(src):
        src = fetch_checkpoint(find_preset(str(src)), cache_dir, console=console)
    return converter.convert(src, out, depth=depth, include_top=include_top)


def list_presets(cache_dir: str | Path | None = None) -> list[dict[str, object]]:
    """Every preset's facts, with ``bytes`` (exact once downloaded here, else ``None``) and
    ``approximate_bytes`` (its float32 weights)."""
    return [{**preset.row(), "bytes": cached_size(preset, cache_dir),
             "approximate_bytes": preset.approximate_bytes} for preset in PRESETS.values()]
