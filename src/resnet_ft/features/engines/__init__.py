"""Engines: what runs a frozen backbone over pixels, behind one small interface.

An engine turns a backbone (float32 weights and their family/depth) into a
function ``pixels (B, h, w, 3) -> outputs (B, views, ...)`` in a precision:
pooled features, or the feature map where the frozen stages end (``cut``).
The featurizer (:mod:`resnet_ft.features.featurizer`) asks :func:`engine_for`
which engine computes a precision and gives it an :class:`EngineContext`
(where to cache what it builds, the images to calibrate on); adding an engine
is one module plus one row in :data:`ENGINES`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from rich.console import Console

from resnet_ft.data.preprocessing import Preprocessing
from resnet_ft.data.sampling import CalibrationSample
from resnet_ft.features.engines import openvino, tensorflow

if TYPE_CHECKING:
    import keras

#: ``pixels -> outputs per view``; takes a numpy array or a tensor, returns a tensor or array.
Function = Callable[[Any], Any]


@dataclass
class EngineContext:
    """What an engine may need besides the backbone: where to cache, what to calibrate on.

    ``pixels`` decodes files as extraction does (undecodable ones left out);
    ``reference`` gives float32 pooled features of pixels, to check a
    reduced-precision engine against.
    """

    cache_root: Path
    identity: str | None
    preprocessing: Preprocessing
    console: Console
    calibration: CalibrationSample | None
    pixels: Callable[[list[Path]], np.ndarray]
    reference: Callable[[np.ndarray], np.ndarray]


class Engine(Protocol):
    """Compiles backbones into functions; one instance serves every featurizer."""

    name: str
    #: Whether its functions run per tf.distribute replica (TensorFlow's do).
    replicated: bool

    def compile(self, backbone: keras.Model, metadata: dict[str, Any], precision: str, *,
                views: int, cut: str | None = None,
                context: EngineContext | None = None) -> Function:
        """``pixels -> (B, views, C)`` pooled features, or ``(B, views, h, w, C)`` at ``cut``."""
        ...


ENGINES: dict[str, Engine] = {"tensorflow": tensorflow.ENGINE, "openvino": openvino.ENGINE}
#: The engine of each precision that is not TensorFlow's.
PRECISION_ENGINES: dict[str, str] = {"int8": "openvino"}


def engine_for(precision: str) -> Engine:
    """The engine that computes features in ``precision``."""
    return ENGINES[PRECISION_ENGINES.get(precision, "tensorflow")]
