"""Numeric measures the equivalence tests share."""

from __future__ import annotations


def relative_error(ours, reference) -> float:
    """max |ours - reference| / max |reference|: the equivalence tests' measure."""
    import numpy as np

    return float(np.max(np.abs(ours - reference)) / np.max(np.abs(reference)))
