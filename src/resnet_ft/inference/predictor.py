"""The predictor interface: image files in, class probabilities out, decoded as training did.

Every model that classifies — a run's Keras classifier, its compute copy in
another precision, an ``--include-top`` ImageNet backbone, an exported
SavedModel, TFLite, ONNX or OpenVINO model — is a :class:`Predictor`: a
callable on pixels plus the labels and preprocessing that go with it. The
same :func:`~resnet_ft.data.preprocessing.image_dataset` that training used
decodes and resizes, so every model sees exactly the pixels training saw, and
a file that cannot be decoded becomes an error for that file while the others
are still scored. Models are loaded by :mod:`resnet_ft.inference.loaders`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from resnet_ft.data.preprocessing import Preprocessing, image_dataset
from resnet_ft.inference.options import DEFAULTS

#: The error of a file whose probabilities are not finite.
NON_FINITE = ("the model computes non-finite probabilities (NaN or inf); its weights are "
              "damaged or diverged")
#: ``(index, probabilities or None, error or None)`` for one file.
Scored = tuple[int, Any, str | None]


@dataclass
class Predictor:
    """A model mapping pixels to class scores, its labels and its preprocessing.

    ``model`` is called as ``model(pixels, training=False)``: the float32
    Keras classifier as saved (exports and heat maps use it), or a runner of
    an exported model. ``compute``, when set, scores pixels instead: the
    compute copy that ``--precision`` asks for. ``softmax``: the model
    outputs logits (an ImageNet backbone).
    """

    model: Any
    labels: list[str]
    preprocessing: Preprocessing
    softmax: bool = False
    compute: Callable[[np.ndarray], np.ndarray] | None = None
    precision: str = DEFAULTS.precision  # what scores are computed in
    #: The run's reject scorer (:class:`~resnet_ft.runs.scorer.Scorer`) and the float32
    #: classifier as pixels -> (probabilities, pooled features) it scores; None: no score.
    scorer: Any = None
    features: Callable[[np.ndarray], Any] | None = None

    def probabilities(self, paths: list[Path], batch_size: int = DEFAULTS.batch_size, *,
                      tta: bool = False) -> Iterator[Scored]:
        """Yield ``(index, probabilities or None, error or None)`` for every path, in order.

        ``tta``: the mean of the probabilities of the image and its horizontal mirror.
        """
        for index, probs, _, error in self.with_scores(paths, batch_size, tta=tta):
            yield index, probs, error

    def with_scores(self, paths: list[Path], batch_size: int = DEFAULTS.batch_size, *,
                    tta: bool = False) -> Iterator[tuple[int, Any, float | None, str | None]]:
        """:meth:`probabilities` with each file's reject score (``None`` without a scorer;
        the score is the plain view's, as the threshold was calibrated)."""
        for index, views, score, error in self.view_scores(paths, batch_size, 2 if tta else 1):
            yield index, (None if views is None else views.mean(axis=0)), score, error

    def view_probabilities(self, paths: list[Path], batch_size: int = DEFAULTS.batch_size,
                           views: int = 1) -> Iterator[Scored]:
        """Yield ``(index, (views, classes) probabilities or None, error or None)`` per path.

        View 1 is the horizontal mirror (the second view of the feature cache);
        both views go through the model as one batch. Probabilities that are not
        finite (a model with NaN or infinite weights) are an error for that file.
        """
        for index, probs, _, error in self.view_scores(paths, batch_size, views):
            yield index, probs, error

    def view_scores(self, paths: list[Path], batch_size: int,
                    views: int) -> Iterator[tuple[int, Any, float | None, str | None]]:
        """:meth:`view_probabilities` with each file's reject score (as :meth:`with_scores`)."""
        dataset = image_dataset([str(p) for p in paths], self.preprocessing).batch(batch_size)
        index = 0
        for pixels, errors in dataset:
            reasons = [error.decode() for error in errors.numpy()]
            ok = np.array([not reason for reason in reasons])
            scores = np.zeros((len(ok), views, len(self.labels)), np.float32)
            ood = np.full(len(ok), np.nan)
            if ok.any():
                batch = pixels.numpy()[ok]
                if views == 2:
                    batch = np.concatenate([batch, batch[:, :, ::-1]])
                out, ood[ok] = self._forward(batch, int(ok.sum()))
                scores[ok] = np.stack(np.split(out, views), axis=1)
            for row, reason in enumerate(reasons):
                if not reason and not np.isfinite(scores[row]).all():
                    reason = NON_FINITE
                score = None if reason or self.scorer is None else float(ood[row])
                yield index, (None if reason else scores[row]), score, (reason or None)
                index += 1

    def _forward(self, batch: np.ndarray, plain: int) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities of ``batch`` and the reject scores of its first ``plain`` rows
        (NaN without a scorer); one pass of the network when it computes in float32."""
        if self.scorer is None or self.features is None:
            return self.scores(batch), np.full(plain, np.nan)
        probs, pooled = self.features(batch)
        if self.compute is not None:
            probs = self.compute(batch)
        return np.asarray(probs), self.scorer.scores(np.asarray(pooled)[:plain])

    def scores(self, pixels: np.ndarray) -> np.ndarray:
        """Class probabilities of a batch of pixels (softmax of an ImageNet model's logits)."""
        if self.compute is not None:
            return self.compute(pixels)
        out = np.asarray(self.model(pixels, training=False))
        if self.softmax:
            out = np.exp(out - out.max(axis=1, keepdims=True))
            out /= out.sum(axis=1, keepdims=True)
        return out
