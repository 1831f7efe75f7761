"""The run's reject score, fitted when training ends (:mod:`resnet_ft.runs.scorer`).

A head-only run with cached inputs already holds every training and
validation image's pooled features as the saved model computes them (the
backbone never changed): the scorer is fitted from those arrays, nothing is
recomputed. When the stages were fine-tuned, or the inputs were not cached,
the cached features are not the final model's, so the backbone just saved
(the float32 weights in ``model.keras``, still in memory) runs once over the
usable files to get them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from resnet_ft.runs.run import SCORER_FILE
from resnet_ft.runs.scorer import fit_scorer
from resnet_ft.training.inputs import Networks, Reader
from resnet_ft.training.loop import RunContext
from resnet_ft.training.sources import ArraySource


class PlainView:
    """Rows ``[i:j]`` of per-view features as their plain view: what the fit reads in chunks."""

    def __init__(self, values: Any) -> None:
        self.values = values

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, rows: slice) -> np.ndarray:
        return np.asarray(self.values[rows])[:, 0]


def write_scorer(ctx: RunContext, reader: Reader, pooled: Any, nets: Networks) -> None:
    """Fit the reject scorer and write it into the run, with its calibrated threshold.

    ``nets.backbone`` holds the weights ``model.keras`` was saved with.
    """
    if isinstance(pooled, ArraySource) and ctx.config.trainable == "head":
        train, val = PlainView(pooled.train), PlainView(pooled.val)
    else:
        from resnet_ft.inference.features import backbone_featurizer, plain_pooled

        featurizer = backbone_featurizer(nets.backbone, nets.metadata, ctx.preprocessing,
                                         ctx.console)
        train = plain_pooled(featurizer, reader.train, "reject score: training features")
        val = plain_pooled(featurizer, reader.val, "reject score: validation features")
    scorer = fit_scorer(train, ctx.y_train, val, ctx.config.reject_rate)
    scorer.save(ctx.run.file(SCORER_FILE))
    ctx.console.print(f"reject score: threshold {scorer.threshold:.4g} rejects "
                      f"{int(scorer.rejects(scorer.scores(val)).sum())} of {len(val)} "
                      f"validation images (--reject-rate {ctx.config.reject_rate})")
