"""Engines: what runs a frozen backbone over pixels, behind one small interface.

An engine turns a backbone (float32 weights and their family/depth) into a
function ``pixels (B, h, w, 3) -> outputs (B, views, ...)`` in a precision:
pooled features, or the feature map where the frozen stages end (``cut``).
The featurizer (:mod:`resnet_ft.features.featurizer`) asks :func:`engine_for`
which engine computes a precision; adding an engine is one module plus one
row in :data:`ENGINES`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from resnet_ft.features.engines import tensorflow

if TYPE_CHECKING:
    import keras

#: ``pixels -> outputs per view``; takes a numpy array or a tensor, returns a tensor or array.
Function = Callable[[Any], Any]


class Engine(Protocol):
    """Compiles backbones into functions; one instance serves every featurizer."""

    name: str

    def compile(self, backbone: keras.Model, metadata: dict[str, Any], precision: str, *,
                views: int, cut: str | None = None) -> Function:
        """``pixels -> (B, views, C)`` pooled features, or ``(B, views, h, w, C)`` at ``cut``."""
        ...


ENGINES: dict[str, Engine] = {"tensorflow": tensorflow.ENGINE}
#: The engine of each precision that is not TensorFlow's.
PRECISION_ENGINES: dict[str, str] = {}


def engine_for(precision: str) -> Engine:
    """The engine that computes features in ``precision``."""
    return ENGINES[PRECISION_ENGINES.get(precision, "tensorflow")]
