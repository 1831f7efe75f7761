"""Likely label errors and outliers, from out-of-fold probabilities and feature neighbours.

Label errors follow confident learning (Northcutt et al., 2021): a class's
threshold is the mean probability the out-of-fold heads give that class on
images labelled with it; an image is suspect when the class it most
confidently belongs to (probability at least that class's threshold) is not
its label and beats the label's probability. Ranked by that margin; the
confident class is the suggested label.

Outliers are images far from every class: their affinity (mean cosine to the
k most similar images of a class) is low for all classes. The score is how
many robust standard deviations (1.4826 x MAD) the best affinity lies below
the data set's median.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Robust z-score below the median best-class affinity that makes an outlier.
OUTLIER_Z = 4.0
#: Neighbours per class that an image's affinity to the class averages over.
NEIGHBOURS = 5


@dataclass
class LabelIssue:
    index: int
    suggested: int
    given_probability: float
    suggested_probability: float
    threshold: float

    @property
    def score(self) -> float:
        return self.suggested_probability - self.given_probability


def class_thresholds(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per class: mean out-of-fold probability of that class on images labelled with it."""
    classes = probs.shape[1]
    return np.array([probs[labels == c, c].mean() if (labels == c).any() else 1.0
                     for c in range(classes)])


def label_issues(probs: np.ndarray, labels: np.ndarray) -> list[LabelIssue]:
    """Suspect labels, most confident first (see the module doc)."""
    thresholds = class_thresholds(probs, labels)
    confident = np.where(probs >= thresholds[None, :], probs, -1.0)
    best = confident.argmax(1)
    issues = []
    for index in np.flatnonzero(confident.max(1) >= 0):
        given, other = labels[index], best[index]
        if other != given and probs[index, other] > probs[index, given]:
            issues.append(LabelIssue(int(index), int(other), float(probs[index, given]),
                                     float(probs[index, other]), float(thresholds[other])))
    return sorted(issues, key=lambda issue: -issue.score)


@dataclass
class Outlier:
    index: int
    score: float
    nearest: int
    affinity: float
    median: float


def outliers(affinity: np.ndarray, z: float = OUTLIER_Z) -> list[Outlier]:
    """Images whose best class affinity is ``z`` robust deviations below the median."""
    best = affinity.max(1)
    median = float(np.median(best))
    spread = 1.4826 * float(np.median(np.abs(best - median))) or 1e-6
    scores = (median - best) / spread
    found = [Outlier(int(i), float(scores[i]), int(affinity[i].argmax()), float(best[i]),
                     median) for i in np.flatnonzero(scores >= z)]
    return sorted(found, key=lambda o: -o.score)
