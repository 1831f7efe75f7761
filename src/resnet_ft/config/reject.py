"""The reject option's training setting: its own section, so ``--help`` groups it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from resnet_ft.config.fields import FRACTION, setting


@dataclass(frozen=True)
class RejectSection:
    """How the reject threshold is calibrated (predict --reject, evaluate's coverage)."""

    TITLE: ClassVar[str] = "Reject option"

    reject_rate: float = setting(
        0.05, "Share of validation images beyond the reject threshold",
        note="floor(rate x validation images) of them score above it.", **FRACTION)
