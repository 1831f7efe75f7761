"""The reject option at inference: pooled features beside the probabilities, and "unknown".

A run's classifier computes its pooled features on the way to the
probabilities (the ``head.pool`` layer :func:`~resnet_ft.models.head.assemble`
names); :func:`with_features` exposes both from one pass, so scoring an image
for the reject option costs nothing beyond the classification. The score
itself is the run's :class:`~resnet_ft.runs.scorer.Scorer`.
"""

from __future__ import annotations

from typing import Any

from resnet_ft.errors import InputError

#: The label of an image beyond the reject threshold.
UNKNOWN = "unknown"
#: The pooling layer of a resnet-ft classifier: its output is the pooled features.
POOL_LAYER = "head.pool"


def with_features(network: Any) -> Any:
    """The classifier as pixels -> (probabilities, pooled features): the same layers."""
    import keras

    try:
        pooled = network.get_layer(POOL_LAYER).output
    except ValueError as exc:
        raise InputError(f"{network.name} has no {POOL_LAYER} layer: not a resnet-ft "
                         "classifier") from exc
    return keras.Model(network.input, [network.outputs[0], pooled])


def mark(results: list[dict[str, Any]], scores: list[float | None], scorer: Any,
         reject: bool) -> list[dict[str, Any]]:
    """Add each classified file's ``ood_score``; with ``reject``, ``rejected`` and the
    ``unknown`` label for the scores ``scorer`` rejects (top-k keeps the classes)."""
    for row, score in zip(results, scores, strict=True):
        if score is None:
            continue
        row["ood_score"] = score
        if reject:
            row["rejected"] = bool(scorer.rejects(score))  # the threshold's one comparison
            if row["rejected"]:
                row["label"] = UNKNOWN
    return results
