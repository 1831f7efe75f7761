"""Checkpoint -> Keras backbone: read, build the family's topology, port, save atomically."""

from __future__ import annotations

from pathlib import Path

from resnet_ft.conversion.formats import read_checkpoint
from resnet_ft.conversion.porting import port_weights
from resnet_ft.errors import CheckpointError
from resnet_ft.models.architectures import build_resnet
from resnet_ft.models.families import BackboneInfo
from resnet_ft.models.files import save_model


def convert(
    src: str | Path, out: str | Path, *, depth: int | None = None, include_top: bool = False
) -> BackboneInfo:
    """Convert the checkpoint at ``src`` into a backbone ``.keras`` file at ``out``.

    Every check happens before anything is written; ``out`` appears only
    when the model is complete, so a failed conversion leaves nothing behind.
    """
    source = read_checkpoint(src, depth)
    if include_top and not source.num_classes:
        raise CheckpointError(f"--include-top: checkpoint {src} has no classifier (logits)")
    model = build_resnet(
        source.family, source.depth, include_top=include_top, num_classes=source.num_classes
    )
    port_weights(model, source, include_top=include_top)
    spec = BackboneInfo(
        family=source.family.name,
        depth=source.depth,
        include_top=include_top,
        num_classes=source.num_classes if include_top else 0,
        source=str(Path(source.source).resolve()),
    )
    save_model(model, out, {"kind": "backbone", "backbone": spec.to_dict()})
    return spec
