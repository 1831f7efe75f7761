"""The doctor's findings as report rows: sample indices become files, labels and sides.

One row per finding, in the columns :mod:`~resnet_ft.diagnostics.report`
writes; every row names its files, a ``score`` and a ``reason``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from resnet_ft.diagnostics.duplicates import categories
from resnet_ft.diagnostics.labels import label_issues, outliers
from resnet_ft.diagnostics.quality import flagged
from resnet_ft.diagnostics.slices import ALPHA, Slice
from resnet_ft.training.crossval.features import LabelledFeatures


class Rows:
    """Turns sample indices into report rows (files, labels, sides, categories)."""

    def __init__(self, data: LabelledFeatures, usable: np.ndarray) -> None:
        self.samples, self.names = data.samples, data.split.labels
        self.labels, self.in_val, self.usable = data.labels, data.in_val, usable
        self.explicit = data.split.source == "folders"

    def file(self, index: int) -> str:
        return str(self.samples[index].path)

    def subset(self, index: int) -> str:
        return "val" if self.in_val[index] else "train"

    def pair(self, a: int, b: int, group: np.ndarray, score: float, reason: str,
             **extra: Any) -> dict[str, Any]:
        found = categories(a, b, self.labels, self.in_val, self.explicit)
        return {"group": int(group[a]), "file_a": self.file(a), "file_b": self.file(b),
                "label_a": self.names[self.labels[a]], "label_b": self.names[self.labels[b]],
                "subset_a": self.subset(a), "subset_b": self.subset(b),
                "category": "; ".join(found), "score": score, "reason": reason, **extra}

    def label_issues(self, probs: np.ndarray) -> list[dict[str, Any]]:
        index = np.flatnonzero(self.usable)
        rows = []
        for issue in label_issues(probs[index], self.labels[index]):
            sample = int(index[issue.index])
            given, suggested = self.names[self.labels[sample]], self.names[issue.suggested]
            rows.append({
                "file": self.file(sample), "label": given, "suggested": suggested,
                "score": issue.score, "given_probability": issue.given_probability,
                "suggested_probability": issue.suggested_probability,
                "reason": f"labelled {given} (p={issue.given_probability:.3f}) but {suggested} "
                          f"is confident (p={issue.suggested_probability:.3f} >= its threshold "
                          f"{issue.threshold:.3f})"})
        return rows

    def outliers(self, affinity: np.ndarray) -> list[dict[str, Any]]:
        index = np.flatnonzero(self.usable)
        rows = []
        for found in outliers(affinity[index]):
            sample = int(index[found.index])
            rows.append({
                "file": self.file(sample), "label": self.names[self.labels[sample]],
                "nearest_class": self.names[found.nearest], "score": found.score,
                "affinity": found.affinity,
                "reason": f"far from every class: best class affinity {found.affinity:.3f} "
                          f"({self.names[found.nearest]}) vs median {found.median:.3f}, "
                          f"{found.score:.1f} robust SDs below"})
        return rows

    def unreadable(self, errors: dict[int, str]) -> list[dict[str, Any]]:
        return [{"file": self.file(i), "label": self.names[self.labels[i]], "score": 1.0,
                 "reason": reason} for i, reason in sorted(errors.items())]

    def quality(self, scores: np.ndarray) -> list[dict[str, Any]]:
        return [{"file": self.file(i), "label": self.names[self.labels[i]], "check": check.name,
                 "score": score, "threshold": check.threshold, "reason": check.reason(score)}
                for i, check, score in flagged(scores, self.usable)]

    def duplicate_groups(self, group: np.ndarray) -> list[dict[str, Any]]:
        """One row per file of every group of two or more (the pairs' connected components)."""
        rows = []
        for root in np.unique(group):
            members = np.flatnonzero(group == root)
            if len(members) < 2:
                continue
            classes = sorted({self.names[self.labels[i]] for i in members})
            sides = sorted({self.subset(i) for i in members})
            reason = (f"{len(members)} copies of one image in {len(classes)} "
                      f"class{'es' if len(classes) > 1 else ''} ({', '.join(classes)}), "
                      f"{' and '.join(sides)}")
            rows += [{"group": int(root), "size": len(members), "file": self.file(i),
                      "label": self.names[self.labels[i]], "subset": self.subset(i),
                      "classes": "; ".join(classes), "sides": "; ".join(sides),
                      "score": len(members), "reason": reason}
                     for i in sorted(members, key=self.file)]
        return rows

    def slices(self, found: list[Slice], rows: np.ndarray) -> list[dict[str, Any]]:
        """``rows`` maps the slices' positions back to sample indices."""
        result = []
        for number, weak in enumerate(found):
            members = rows[weak.members]
            counts = np.bincount(self.labels[members], minlength=len(self.names))
            top = [f"{self.names[c]} {counts[c]}" for c in np.argsort(-counts, kind="stable")
                   if counts[c]][:3]
            result.append({
                "slice": number, "size": len(members), "accuracy": weak.accuracy,
                "overall_accuracy": weak.overall, "p_value": weak.p_value,
                "classes": ", ".join(top),
                **{f"file_{k + 1}": self.file(rows[i])
                   for k, i in enumerate(weak.representatives)},
                "score": weak.overall - weak.accuracy,
                "reason": f"out-of-fold accuracy {weak.accuracy:.3f} on {len(members)} similar "
                          f"images vs {weak.overall:.3f} overall (binomial p={weak.p_value:.2g} "
                          f"< {ALPHA:g}/{weak.clusters} slices)"})
        return result

