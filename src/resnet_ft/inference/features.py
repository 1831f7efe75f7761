"""Pooled features of files as a trained classifier computes them.

A fine-tuned run's backbone is not the file it started from, so its features
cannot come from the store: the classifier's own backbone, split from its
head (or, as training ends, the float32 backbone it has just saved), is the
backbone of a :class:`~resnet_ft.features.featurizer.Featurizer` that stores
nothing. The reject scorer's fit (fine-tuned and uncached runs)
and the report's map both read features this way; :func:`plain_pooled` is the
one reading of a featurizer's plain view, whatever its backbone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from resnet_ft.data.preprocessing import Preprocessing
from resnet_ft.features.featurizer import EXTRACTING, Backbone, Featurizer


def classifier_featurizer(network: Any, metadata: dict[str, Any], preprocessing: Preprocessing,
                          console: Console) -> Featurizer:
    """A float32 featurizer over ``network``'s backbone (``metadata``: its description)."""
    from resnet_ft.models.head import split_classifier

    return backbone_featurizer(split_classifier(network)[0], metadata, preprocessing, console)


def backbone_featurizer(backbone: Any, metadata: dict[str, Any], preprocessing: Preprocessing,
                        console: Console) -> Featurizer:
    """A float32 featurizer over trained weights ``backbone`` that stores nothing."""
    return Featurizer(Backbone(None, metadata, backbone), preprocessing, "float32",
                      store_root=None, console=console)


def plain_pooled(featurizer: Featurizer, paths: list[Path],
                 description: str = EXTRACTING) -> np.ndarray:
    """``(N, C)`` pooled features of ``paths`` (files known to decode), one plain view each."""
    return np.asarray(featurizer.pooled(paths, 1, description).values)[:, 0]
