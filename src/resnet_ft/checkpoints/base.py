"""The common shape of every checkpoint reader's result."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from resnet_ft.architectures import Family

#: A transform from a source array to the Keras variable's layout.
Hook = Callable[[np.ndarray], np.ndarray]


@dataclass
class SourceWeights:
    """Arrays read from a checkpoint plus the map from Keras variables to them.

    ``locate(layer_name, variable_name)`` returns the source key and an
    optional hook (e.g. a transpose); it is the family's whole name map,
    readable top to bottom in the reader module. ``ignored`` are keys that
    are present but intentionally unused (``global_step``, the classifier
    when it is not kept).
    """

    family: Family
    depth: int
    num_classes: int
    tensors: Mapping[str, np.ndarray]
    locate: Callable[[str, str], tuple[str, Hook | None]]
    source: str
    ignored: frozenset[str] = field(default_factory=frozenset)
    top_keys: frozenset[str] = field(default_factory=frozenset)
