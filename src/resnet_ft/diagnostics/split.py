"""``--fix-split``: a train/validation split in which no duplicate group straddles the sides.

With explicit ``train/`` + ``val/`` folders, a group found on both sides is
moved whole to training (the validation set only loses images, it never gains
copies of training images). A seeded split is remade like ``train`` makes it
(per class, seeded, ``val_split`` of the images) but dealing whole groups,
so no copy of a validation image is left in training.
"""

from __future__ import annotations

import numpy as np

from resnet_ft.data.folders import Sample, Split


def leakage_free(split: Split, group: np.ndarray, val_split: float, seed: int) -> Split:
    """The fixed split; ``group[i]`` is the duplicate group of ``(split.train + split.val)[i]``."""
    samples = split.train + split.val
    if split.source == "folders":
        in_val = np.arange(len(samples)) >= len(split.train)
        straddling = {g for g in np.unique(group)
                      if in_val[group == g].any() and (~in_val[group == g]).any()}
        moved = np.array([g in straddling for g in group]) | ~in_val
        return Split(split.labels, [s for s, t in zip(samples, moved, strict=True) if t],
                     [s for s, t in zip(samples, moved, strict=True) if not t],
                     split.source, split.ignored)
    members: dict[int, list[int]] = {}
    for index, g in enumerate(group):
        members.setdefault(int(g), []).append(index)
    val: set[int] = set()
    for klass in range(len(split.labels)):
        owned = [g for g, idx in members.items()
                 if np.bincount([samples[i].label for i in idx]).argmax() == klass]
        size = sum(len(members[g]) for g in owned)
        target = min(max(round(size * val_split), 1 if size > 1 else 0), size - 1)
        taken = 0
        for pick in np.random.default_rng([seed, klass]).permutation(len(owned)):
            if taken >= target:
                break
            if taken + len(members[owned[pick]]) <= target:  # a group larger stays in training
                val.update(members[owned[pick]])
                taken += len(members[owned[pick]])
    train = [s for i, s in enumerate(samples) if i not in val]
    return Split(split.labels, _by_class(train), _by_class(
        [s for i, s in enumerate(samples) if i in val]), split.source, split.ignored)


def _by_class(samples: list[Sample]) -> list[Sample]:
    """Samples in ``train``'s order: by class, then path."""
    return sorted(samples, key=lambda s: (s.label, str(s.path)))
