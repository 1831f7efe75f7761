"""Before the first epoch: which files a run can use, and the context every part shares.

The split's files (plus unlabelled ones when distilling) go through the
feature store once; files that cannot be decoded are reported (or, with
``--strict``, refused) and dropped, every class must keep a training image,
and the usable labels become the run's :class:`~resnet_ft.training.loop.RunContext`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from resnet_ft.config import TrainConfig
from resnet_ft.data.folders import Sample, Split, require_every_class
from resnet_ft.errors import InputError
from resnet_ft.features.store import FeatureTable
from resnet_ft.runs.run import Run
from resnet_ft.training.artifacts import report_skipped
from resnet_ft.training.inputs import Reader, feature_table
from resnet_ft.training.loop import RunContext, new_state
from resnet_ft.training.state import RunState

#: How the console names where a split came from.
SOURCES = {"folders": "folders", "split": "seeded split", "file": "split file"}


def describe(split: Split, reader: Reader, unlabeled: int) -> None:
    """What the run trains on, in one line (and the folders it ignores, and why it runs online)."""
    console = reader.console
    if split.ignored:
        console.print(f"ignoring folder(s) without images: {', '.join(split.ignored)}")
    extra = f" (+ {unlabeled} unlabelled)" if unlabeled else ""
    console.print(
        f"{len(split.labels)} classes, {len(split.train)} training{extra} and {len(split.val)} "
        f"validation images ({SOURCES[split.source]})"
    )
    if reader.inputs.note:
        console.print(reader.inputs.note)


def usable_features(config: TrainConfig, run: Run, split: Split, unlabeled: list[Path],
                    reader: Reader) -> tuple[FeatureTable, dict[str, str], RunContext]:
    """Features of every file (training, unlabelled, validation); the usable files' context."""
    paths = [s.path for s in split.train] + unlabeled + [s.path for s in split.val]
    table = feature_table(paths, reader)
    skipped = {str(paths[i]): reason for i, reason in sorted(table.errors.items())}
    report_skipped(skipped, run, reader.console, strict=config.strict)
    bad = {Path(p) for p in skipped}
    train_samples, val_samples = _usable(split, bad)
    extra = [p for p in unlabeled if p not in bad]
    reader.train = [s.path for s in train_samples] + extra
    reader.val = [s.path for s in val_samples]
    return table, skipped, _context(config, run, split, reader, train_samples, val_samples,
                                    len(extra))


def _usable(split: Split, bad: set[Path]) -> tuple[list[Sample], list[Sample]]:
    """The split without undecodable files; every class must keep a training image."""
    train = [s for s in split.train if s.path not in bad]
    val = [s for s in split.val if s.path not in bad]
    require_every_class(split.labels, train, "the training set")
    if not val:
        raise InputError("no usable validation images; add images or raise --val-split")
    return train, val


def _context(config: TrainConfig, run: Run, split: Split, reader: Reader,
             train: list[Sample], val: list[Sample], unlabeled: int) -> RunContext:
    """The shared run state; unlabelled training images (distillation) have label -1."""
    replicas = reader.strategy.num_replicas_in_sync
    return RunContext(
        config=config, run=run, console=reader.console, labels=split.labels,
        preprocessing=reader.preprocessing, store=RunState(run), state=new_state(),
        y_train=np.array([s.label for s in train] + [-1] * unlabeled, np.int64),
        y_val=np.array([s.label for s in val], np.int64),
        total_epochs=0, global_batch=config.batch_size * replicas,
    )
