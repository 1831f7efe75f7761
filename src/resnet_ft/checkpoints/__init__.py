"""Checkpoint readers: each turns one family's files into a :class:`SourceWeights`.

A reader knows its file format and its name map (source key for each
canonical layer variable, plus the transform that brings the array into Keras
layout). It does not build models or assign weights: :mod:`resnet_ft.porting`
does that once for every family, so the checks for missing, mismatched and
unexpected variables are written once.
"""

from __future__ import annotations

from pathlib import Path

from resnet_ft.checkpoints.base import SourceWeights
from resnet_ft.errors import CheckpointError

__all__ = ["SourceWeights", "read_checkpoint"]

FORMATS_HELP = (
    "a TF-slim checkpoint (prefix such as resnet_v1_101.ckpt, its .index file, "
    "or a directory holding one)"
)


def read_checkpoint(path: str | Path, depth: int | None = None) -> SourceWeights:
    """Detect the checkpoint format of ``path`` and read it.

    ``depth`` overrides the depth detected from the contents; a disagreement
    between the two is an error, not a silent choice.
    """
    from resnet_ft.checkpoints import slim

    path = Path(path)
    if not path.exists() and not slim.looks_like_prefix(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    if slim.looks_like_slim(path):
        return slim.read(path, depth)
    raise CheckpointError(f"unrecognised checkpoint format: {path}; expected {FORMATS_HELP}")
