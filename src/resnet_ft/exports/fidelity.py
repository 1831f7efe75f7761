"""How closely an export follows the run's float Keras model, on the run's validation images.

Every export is checked before it is moved into place, on the images of the run's
``split.csv`` ``val`` subset: a conversion that silently changed the model (a wrong
decoder, a bad quantization) shows up in the report instead of in production. The
SavedModel is fed the files' bytes, so its in-graph decoder is checked too; formats
without decoders are fed the project's own decoded pixels.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from resnet_ft.errors import OutputError
from resnet_ft.inference.predictor import Predictor

#: (top-1 agreement, max |p_exported - p_float|, images compared); None: nothing compared.
Agreement = tuple[float | None, float | None, int]

BATCH = 32
#: A float32 export whose probabilities differ more than this from the Keras model's on a
#: validation image is a broken conversion, not a rounding difference (measured: at most
#: 2e-6 for SavedModel, TFLite, ONNX and OpenVINO).
FLOAT_TOLERANCE = 1e-3
#: A quantised export must pick the float model's class on at least this share of the
#: validation images (measured on the flowers sample: docs/commands/export.md).
MIN_AGREEMENT = 0.90


def saved_model_agreement(reference: Predictor, paths: list[Path], serve: Any) -> Agreement:
    """The SavedModel's ``serving_default`` signature ``serve``, end to end from file bytes."""
    return _agreement(reference, paths, _bytes_probabilities(serve, paths))


def pixels_agreement(reference: Predictor, exported: Predictor, paths: list[Path]) -> Agreement:
    """An export without image decoders, on the pixels that
    :func:`~resnet_ft.data.preprocessing.image_dataset` decodes: the project's own decoder
    is the fair input.
    """
    probabilities = (probs for _, probs, _ in exported.probabilities(paths, BATCH))
    return _agreement(reference, paths, probabilities)


def _bytes_probabilities(serve: Any, paths: list[Path]) -> Iterator[np.ndarray | None]:
    """``serving_default`` on the files' bytes; ``None`` for a file it cannot read or decode.

    Batches first; one bad file fails its whole batch, which is then retried file by file.
    """
    import tensorflow as tf

    def run(chunk: list[Path]) -> np.ndarray:
        return serve(images=tf.constant([p.read_bytes() for p in chunk]))["probabilities"].numpy()

    for start in range(0, len(paths), BATCH):
        chunk = paths[start:start + BATCH]
        try:
            yield from run(chunk)
        except (OSError, tf.errors.InvalidArgumentError):
            for path in chunk:
                try:
                    yield run([path])[0]
                except (OSError, tf.errors.InvalidArgumentError):
                    yield None


def _agreement(
    reference: Predictor, paths: list[Path], exported: Iterable[np.ndarray | None]
) -> Agreement:
    """Compare over the ``paths`` that both the float model and the export could read.

    A file the float model cannot decode is skipped rather than counted as a
    disagreement: the question is whether the export follows the model, not the data.
    """
    pairs = [
        (float_probs, probs)
        for (_, float_probs, _), probs in zip(
            reference.probabilities(paths, BATCH), exported, strict=True
        )
        if float_probs is not None and probs is not None
    ]
    if not pairs:
        return None, None, 0
    ours = np.stack([p for p, _ in pairs])
    theirs = np.stack([p for _, p in pairs])
    top1 = float(np.mean(ours.argmax(axis=1) == theirs.argmax(axis=1)))
    return top1, float(np.abs(ours - theirs).max()), len(pairs)


def require_faithful(agreement: Agreement, quantize: str) -> None:
    """Refuse an export that does not follow the float model (nothing is written then).

    A float32 export must match it within :data:`FLOAT_TOLERANCE`; a quantised one must
    agree on the top class at least as often as :data:`MIN_AGREEMENT`.
    """
    top1, diff, compared = agreement
    if top1 is None or diff is None:
        return
    if quantize == "none" and diff > FLOAT_TOLERANCE:
        raise OutputError(f"the export differs from the float model by up to {diff:.2e} in "
                          f"probability on {compared} validation images (allowed "
                          f"{FLOAT_TOLERANCE:.0e}): the conversion is broken; nothing written")
    if quantize != "none" and top1 < MIN_AGREEMENT:
        raise OutputError(f"the {quantize} export agrees with the float model on only "
                          f"{top1:.1%} of {compared} validation images (at least "
                          f"{MIN_AGREEMENT:.0%} needed); nothing written")
