"""The TensorFlow engine: the BN-folded backbone, in a Keras precision policy, compiled once.

Extraction runs a copy of the backbone with BatchNorm folded into its
convolutions (:mod:`resnet_ft.models.folding`: the same function, a third
fewer ops), built from the float32 weights under the precision's dtype
policy, so float32, ``mixed_bfloat16`` and ``mixed_float16`` all run the
same graph. The function is traced once per model, view count and input
size (tracing a 300-layer graph costs seconds); both views of a batch go through the
model as one batch, which is faster than two calls.

Building and tracing the folded copy is a second or more per featurizer, so
the last :data:`RECENT_FOLDED` copies are kept for the process, keyed by the
backbone's identity (the content hash the feature store keys its entries
by: the same claim that these are the file's weights) and the precision. A
second ``train`` on one backbone, or ``predict`` after ``evaluate``, then
reuses the compiled graph. Weights without an identity (a model being
trained) and copies built inside a distribution strategy's scope (their
variables belong to it) are never kept.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from resnet_ft.util.recent import LastUsed

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
#: How many folded copies are kept (each holds a backbone's weights: ~100-180 MB in float32).
RECENT_FOLDED = 2
_FOLDED: LastUsed[tuple[str, str], keras.Model] = LastUsed(RECENT_FOLDED)


class Compiled:
    """A cached compiled function bound to its model: while a caller holds this, the model
    lives (the cache itself holds the model only weakly)."""

    def __init__(self, model: keras.Model, function: Any) -> None:
        self.model, self.function = model, function

    def __call__(self, pixels: Any) -> Any:
        return self.function(pixels)


def pooled_features(backbone: keras.Model, views: int) -> Compiled:
    """A compiled function: pixels (B, h, w, 3) -> pooled features (B, views, C).

    Compiled once per backbone and view count. The cache holds the backbone
    weakly (the traced function sees it through a proxy): a strong reference
    from the cached value would keep its key, the backbone and its weights,
    alive for the life of the process. What is returned holds it strongly
    instead, so a backbone built just for the call (a folded copy) lives as
    long as its function is used.
    """
    compiled = _COMPILED.setdefault(backbone, {})
    if views not in compiled:
        compiled[views] = view_outputs(weakref.proxy(backbone), views, pool=True)
    return Compiled(backbone, compiled[views])


def view_outputs(model: keras.Model, views: int, *, pool: bool) -> Any:
    """A compiled function: pixels (B, h, w, 3) -> ``model`` outputs per view (B, views, ...).

    View 1 is the horizontal mirror; both views go through the model as one
    batch, which is faster than two calls. ``pool`` averages the spatial axes.
    One graph is traced per input size, with the batch left open: oneDNN's
    bfloat16 convolutions round differently in a graph whose height and width
    are unknown (measured: pooled features 0.04 apart), so a graph relaxed to
    any size by an earlier call at another size would make a run's features
    depend on what the process computed before. The batch size changes
    nothing (measured: 0 apart), and one open batch saves the second trace a
    short last batch would cost.
    """
    import tensorflow as tf

    # branches on Python values only: nothing for AutoGraph to convert, traced as written
    @tf.autograph.experimental.do_not_convert
    def run(pixels: tf.Tensor) -> tf.Tensor:
        batch = pixels if views == 1 else tf.concat([pixels, tf.reverse(pixels, [2])], 0)
        result = model(batch, training=False)
        if pool:
            result = tf.reduce_mean(result, axis=[1, 2])
        return tf.stack(tf.split(result, views), axis=1)

    traced: dict[tuple[Any, ...], Any] = {}

    def per_size(pixels: Any) -> Any:
        shape, dtype = tuple(pixels.shape[1:]), tf.as_dtype(pixels.dtype)
        if (shape, dtype) not in traced:
            spec = tf.TensorSpec((None, *shape), dtype)
            traced[shape, dtype] = tf.function(run, input_signature=[spec])
        return traced[shape, dtype](pixels)

    return per_size


class TensorFlowEngine:
    """Float32, bfloat16 and float16 extraction with TensorFlow (oneDNN on CPUs)."""

    name = "tensorflow"
    replicated = True

    def compile(self, backbone: keras.Model, metadata: dict[str, Any], precision: str, *,
                views: int, cut: str | None = None, context: Any = None) -> Any:
        """The folded copy in ``precision``: pooled, or its frozen stages' output at ``cut``."""
        from resnet_ft.models.unfreeze import split_backbone

        copy = folded(backbone, metadata, precision, context.identity if context else None)
        if cut is None:
            return pooled_features(copy, views)
        return Compiled(copy, view_outputs(split_backbone(copy, cut)[0], views, pool=False))


def folded(backbone: keras.Model, metadata: dict[str, Any], precision: str,
           identity: str | None) -> keras.Model:
    """The BN-folded copy of ``backbone`` in ``precision``: kept for ``identity`` (module doc)."""
    import tensorflow as tf

    from resnet_ft.models.folding import folded_copy
    from resnet_ft.models.precision import policy

    def build() -> keras.Model:
        with policy(precision):
            return folded_copy(backbone, metadata)

    if not identity or tf.distribute.has_strategy():
        return build()
    return _FOLDED.get((identity, precision), build)


ENGINE = TensorFlowEngine()
