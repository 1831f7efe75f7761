"""May a trained run's classifier read the features of the backbone file it was trained from?

A head-only run feeds its head the pooled features of its backbone file, and
those are in the store under that file's identity. Its saved ``model.keras``
holds a copy of the backbone: while that copy still equals the backbone
file, features keyed by the file are exactly the classifier's, and a
distillation teacher, ``evaluate`` and ``report`` read them instead of
running the backbone again. A fine-tuned run, a moved file, or a file
replaced since training must not be trusted (nor poisoned with this model's
features): then the classifier's features are its own, keyed by the hash of
its ``model.keras``.

Comparing the weights means loading the backbone file (seconds), so the
verdict is kept in the store's directory, keyed by the content hashes of both
files: it is decided once per pair of files, whoever asks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from resnet_ft.errors import InputError
from resnet_ft.features.identity import key_digest
from resnet_ft.util.atomic import write_text
from resnet_ft.util.hashing import sha256_file

if TYPE_CHECKING:
    import keras

VERDICTS = "verdicts"


@dataclass(frozen=True)
class Reuse:
    """The identity a run's classifier computes features under, and whether it is the file's."""

    identity: str
    reused: bool


def run_backbone(model_file: Path, backbone_file: str | Path, head_only: bool,
                 classifier_backbone: Callable[[], keras.Model], root: Path) -> Reuse:
    """The identity of the features of the run whose classifier is ``model_file``.

    ``backbone_file`` is the file the run was trained from (its config's
    ``backbone``); ``classifier_backbone`` loads the backbone inside the
    classifier, only when a verdict must be made.
    """
    own = sha256_file(model_file)
    source = Path(str(backbone_file))
    if not head_only or not source.is_file():
        return Reuse(own, False)
    trained = sha256_file(source)
    verdict = root / VERDICTS / key_digest(own, trained)[:32]
    try:
        same = verdict.read_text(encoding="utf-8") == "same"
    except OSError:
        same = _same_weights(source, classifier_backbone)
        write_text(verdict, "same" if same else "different")
    return Reuse(trained, True) if same else Reuse(own, False)


def _same_weights(path: Path, classifier_backbone: Callable[[], keras.Model]) -> bool:
    """Whether the backbone file holds exactly the classifier's backbone weights."""
    from resnet_ft.models.files import shared_backbone

    try:
        a = shared_backbone(path).get_weights()
    except InputError:
        return False
    b = classifier_backbone().get_weights()
    return len(a) == len(b) and all(
        x.shape == y.shape and np.array_equal(x, y) for x, y in zip(a, b, strict=True))
