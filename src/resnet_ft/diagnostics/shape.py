"""The data set's shape: images per class and side, imbalance, image sizes, unreadable files."""

from __future__ import annotations

from typing import Any

import numpy as np

from resnet_ft.data.folders import Split


def dataset_shape(split: Split, sizes: np.ndarray, usable: np.ndarray) -> dict[str, Any]:
    """Per class: training/validation counts, share, width and height ranges (usable files).

    ``imbalance`` is the largest class's usable count over the smallest's.
    """
    samples = split.train + split.val
    labels = np.array([s.label for s in samples])
    in_val = np.arange(len(samples)) >= len(split.train)
    rows = []
    for klass, name in enumerate(split.labels):
        mine = (labels == klass) & usable
        width, height = sizes[mine, 0], sizes[mine, 1]
        rows.append({
            "class": name, "train": int((mine & ~in_val).sum()), "val": int((mine & in_val).sum()),
            "total": int(mine.sum()), "share": float(mine.sum() / max(usable.sum(), 1)),
            **_range("width", width), **_range("height", height),
        })
    totals = [row["total"] for row in rows]
    return {
        "images": len(samples), "usable": int(usable.sum()),
        "unreadable": int((~usable).sum()), "source": split.source,
        "imbalance": float(max(totals) / max(min(totals), 1)), "ignored_folders": split.ignored,
        "classes": rows,
    }


def _range(name: str, values: np.ndarray) -> dict[str, Any]:
    if not len(values):
        return {f"{name}_min": None, f"{name}_median": None, f"{name}_max": None}
    return {f"{name}_min": int(values.min()), f"{name}_median": float(np.median(values)),
            f"{name}_max": int(values.max())}
