"""The frozen stages' output (the *boundary* tensor), stored for phase 2 of fine-tuning.

``--trainable blockK`` trains stage K and above; the stages below never
change, so their output is computed once per image and view and kept in the
feature store beside the pooled features (float16 rows, memory-mapped), while
phase 2 runs only the unfrozen stages. Entries are keyed like pooled features
(backbone, file, preprocessing) plus the freeze mode.
"""

from __future__ import annotations

from resnet_ft.data.preprocessing import Preprocessing
from resnet_ft.features.store import FeatureCache


def boundary_cache(pooled: FeatureCache, preprocessing: Preprocessing, mode: str) -> FeatureCache:
    """The store of the stages below ``mode``'s output, beside ``pooled``'s features."""
    return FeatureCache(pooled.base, pooled.backbone_id, preprocessing, kind=f"boundary:{mode}")
