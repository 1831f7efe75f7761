"""Accuracy against coverage: what the reject score buys when the least familiar images go.

Images are ranked by their reject score, most familiar first; keeping the
first k of n is coverage k/n, and the accuracy of those k is the curve's
value there. The table samples it at fixed coverages (k = ceil(coverage x n):
never less than asked); the area is the mean accuracy over every k = 1..n
(the area under the accuracy-coverage curve, 1 minus the AURC of selective
classification). A score that ranks mistakes last lifts the curve above the
overall accuracy; one that knows nothing keeps it flat.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: The coverages of the table in metrics.json and the report.
COVERAGES = (1.0, 0.95, 0.9, 0.8, 0.7, 0.6, 0.5)


def risk_coverage(correct: np.ndarray, scores: np.ndarray, rejected: np.ndarray
                  ) -> dict[str, Any]:
    """The curve's table, its area, and the coverage and accuracy at the run's threshold.

    Ties in the score keep the images' order (a stable sort).
    """
    order = np.argsort(np.asarray(scores), kind="stable")
    hits = np.cumsum(np.asarray(correct, np.float64)[order])
    kept = np.arange(1, len(order) + 1)
    accuracy = hits / kept
    table = [{"coverage": coverage, "accuracy": float(accuracy[math.ceil(coverage * n) - 1])}
             for coverage in COVERAGES if (n := len(order))]
    accepted = ~np.asarray(rejected, bool)
    return {
        "table": table,
        "area": float(accuracy.mean()),
        "curve": [round(float(a), 6) for a in accuracy],
        "at_threshold": {
            "coverage": float(accepted.mean()),
            "accuracy": float(np.asarray(correct)[accepted].mean()) if accepted.any() else None,
            "rejected": int((~accepted).sum()),
        },
    }
