"""Assign a checkpoint's arrays to a freshly built backbone, every variable exactly once.

All families go through :func:`port_weights`, so the guarantees are uniform:
nothing is assigned until everything has been checked, and every missing
variable, shape mismatch, unexpected source array, array stored in a
non-float type (an integer tensor of the right byte count would convert into
garbage) and array holding NaN or infinity is reported together in one
message instead of failing on the first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from resnet_ft.conversion.formats.base import SourceWeights
from resnet_ft.errors import CheckpointError

if TYPE_CHECKING:
    import keras

_LISTED = 3


def port_weights(model: keras.Model, source: SourceWeights, *, include_top: bool) -> None:
    """Copy ``source`` into ``model``; raise :class:`CheckpointError` listing every problem."""
    assignments: list[tuple[object, np.ndarray]] = []
    missing: list[str] = []
    mismatched: list[str] = []
    not_float: list[str] = []
    not_finite: list[str] = []
    used: set[str] = set()
    for layer in model.layers:
        for variable in layer.weights:
            key, hook = source.locate(layer.name, variable.name)
            if key in used:
                raise AssertionError(f"name map assigns {key} twice")  # a bug, not user input
            used.add(key)
            if key not in source.tensors:
                missing.append(key)
                continue
            stored = source.tensors[key]
            if stored.dtype.kind != "f":
                not_float.append(f"{key} ({stored.dtype})")
                continue
            value = hook(stored) if hook is not None else stored
            if tuple(value.shape) != tuple(variable.shape):
                # Both shapes in the Keras layout, plus the file's own where it differs.
                raw = f" (stored as {tuple(stored.shape)})" if stored.shape != value.shape else ""
                mismatched.append(
                    f"{key}: expected {tuple(variable.shape)}, found {tuple(value.shape)}{raw}"
                )
                continue
            if not np.isfinite(value).all():
                not_finite.append(key)
                continue
            assignments.append((variable, value.astype(np.float32)))
    skipped = set() if include_top else set(source.top_keys)
    unexpected = sorted(set(source.tensors) - used - skipped - set(source.ignored))
    problems = [
        _listing("missing", missing),
        _listing("shape mismatch", mismatched),
        _listing("unexpected", unexpected),
        _listing("stored in a non-float type", not_float),
        _listing("holding NaN or infinity", not_finite),
    ]
    problems = [p for p in problems if p]
    if problems:
        raise CheckpointError(
            f"checkpoint {source.source} does not match {model.name}: " + "; ".join(problems)
        )
    for variable, value in assignments:
        variable.assign(value)


def _listing(kind: str, items: list[str]) -> str:
    if not items:
        return ""
    shown = ", ".join(items[:_LISTED])
    more = f", and {len(items) - _LISTED} more" if len(items) > _LISTED else ""
    return f"{len(items)} {kind} ({shown}{more})"
