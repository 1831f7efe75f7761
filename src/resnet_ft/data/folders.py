"""Class-per-folder datasets: find the images, name the classes, split train/validation.

Class names are folder names, sorted, so the label order never depends on the
file system. The split is stratified and seeded per class, so the same data
and seed always give the same split, and it is written to the run directory
(``split.csv``) to be audited or reproduced.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from resnet_ft.data.images import is_image_candidate
from resnet_ft.errors import InputError
from resnet_ft.util.tables import csv_text

VAL_NAMES = ("val", "validation")


@dataclass(frozen=True)
class Sample:
    """One image file and its class index."""

    path: Path
    label: int


@dataclass
class Split:
    """Labels plus the training and validation samples."""

    labels: list[str]
    train: list[Sample]
    val: list[Sample]
    source: str  # "split" (by --val-split) or "folders" (train/ + val/)
    ignored: list[str] = field(default_factory=list)  # empty folders, not classes

    def to_csv(self) -> str:
        """``file,label,subset`` rows, the audit trail of the split."""
        rows = [(str(sample.path), self.labels[sample.label], subset)
                for subset, samples in (("train", self.train), ("val", self.val))
                for sample in samples]
        return csv_text(["file", "label", "subset"], rows)


def class_folders(root: Path) -> list[str]:
    """Sorted, non-hidden sub-folder names of ``root``.

    Symlinked class folders are followed (datasets are often assembled that
    way), except a link back to ``root`` or one of its ancestors: a loop.
    """
    if not root.is_dir():
        raise InputError(f"data directory not found: {root}")
    real_root = root.resolve()
    names = []
    for path in root.iterdir():
        if path.name.startswith(".") or not path.is_dir():
            continue
        if path.is_symlink() and real_root.is_relative_to(path.resolve()):
            continue
        names.append(path.name)
    return sorted(names)


def list_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursively), sorted; symlinked folders are not followed.

    Not following directory links makes symlink loops harmless.
    """
    found: list[Path] = []
    for current, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(Path(current) / f for f in files if is_image_candidate(Path(current) / f))
    return sorted(found)


def scan(root: Path, labels: list[str] | None = None) -> tuple[list[str], list[Sample], list[str]]:
    """Samples of a class-per-folder tree: ``(labels, samples, ignored empty folders)``.

    A folder holding no image file at all is not a class (an empty folder
    left behind, a folder of notes): it is ignored and reported. A folder
    whose image files all fail to decode *is* a class, and
    :func:`require_every_class` rejects it later. ``labels`` fixes the
    expected classes, e.g. those of a trained run.
    """
    listed = {name: list_images(root / name) for name in class_folders(root)}
    ignored = [name for name, files in listed.items() if not files]
    found = [name for name, files in listed.items() if files]
    if labels is not None and found != labels:
        missing = sorted(set(labels) - set(found))
        extra = sorted(set(found) - set(labels))
        raise InputError(
            f"classes in {root} differ from the expected ones: missing {missing or 'none'}, "
            f"unexpected {extra or 'none'}"
        )
    if len(found) < 2:
        raise InputError(
            f"{root} needs at least 2 class folders with images, found {len(found)}: {found}"
        )
    samples = [Sample(path, index) for index, name in enumerate(found) for path in listed[name]]
    return found, samples, ignored


def _val_folder(root: Path) -> Path | None:
    for name in VAL_NAMES:
        if (root / name).is_dir():
            return root / name
    return None


def make_split(root: Path, *, val_dir: Path | None, val_split: float, seed: int,
               split_file: Path | None = None) -> Split:
    """Training/validation samples of ``root``.

    Precedence: a ``split_file`` (``split.csv`` of a run, or the leakage-free one
    ``doctor --fix-split`` writes); an explicit ``val_dir``; else ``root/train``
    with ``root/val`` (or ``validation``); else a seeded, stratified split of
    each class by ``val_split``.
    """
    root = Path(root)
    if split_file is not None:
        return read_split(Path(split_file), scan(root)[0])
    if val_dir is None and (root / "train").is_dir() and _val_folder(root) is not None:
        val_dir = _val_folder(root)
        root = root / "train"
    if val_dir is not None:
        labels, train, ignored = scan(root)
        _, val, ignored_val = scan(Path(val_dir), labels)
        return Split(labels, train, val, "folders", ignored + ignored_val)
    labels, samples, ignored = scan(root)
    train, val = [], []
    for index in range(len(labels)):
        members = [s for s in samples if s.label == index]
        rng = np.random.default_rng([seed, index])
        order = rng.permutation(len(members))
        n_val = round(len(members) * val_split) if len(members) > 1 else 0
        n_val = min(max(n_val, 1 if len(members) > 1 else 0), len(members) - 1)
        val.extend(members[i] for i in sorted(order[:n_val]))
        train.extend(members[i] for i in sorted(order[n_val:]))
    return Split(labels, train, val, "split", ignored)


def read_split(path: Path, labels: list[str]) -> Split:
    """A split written as ``file,label,subset`` rows; ``labels`` fixes the class order.

    Every row must name a known class and the subset ``train`` or ``val``; a
    listed file that has since gone missing is reported later like any
    undecodable file.
    """
    index = {name: i for i, name in enumerate(labels)}
    subsets: dict[str, list[Sample]] = {"train": [], "val": []}
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if not {"file", "label", "subset"} <= set(reader.fieldnames or ()):
                raise InputError(f"split file {path} needs the columns file, label, subset")
            for line, row in enumerate(reader, start=2):
                if row["label"] not in index or row["subset"] not in subsets:
                    raise InputError(f"split file {path}, line {line}: unknown class "
                                     f"{row['label']!r} or subset {row['subset']!r}")
                subsets[row["subset"]].append(Sample(Path(row["file"]), index[row["label"]]))
    except OSError as exc:
        raise InputError(f"cannot read split file {path}: {exc.strerror or exc}") from exc
    except csv.Error as exc:
        raise InputError(f"split file {path} is not valid CSV: {exc}") from exc
    return Split(labels, subsets["train"], subsets["val"], "file")


def require_every_class(labels: list[str], samples: list[Sample], where: str) -> None:
    """A class without a usable image cannot be learned: a clear error, not a silent drop."""
    present = {s.label for s in samples}
    empty = [name for i, name in enumerate(labels) if i not in present]
    if empty:
        raise InputError(f"class folder(s) with no usable image in {where}: {', '.join(empty)}")
