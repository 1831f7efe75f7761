"""The TensorFlow engine: the BN-folded backbone, in a Keras precision policy, compiled once.

Extraction runs a copy of the backbone with BatchNorm folded into its
convolutions (:mod:`resnet_ft.models.folding`: the same function, a third
fewer ops), built from the float32 weights under the precision's dtype
policy, so float32, ``mixed_bfloat16`` and ``mixed_float16`` all run the
same graph. The function is traced once per model and view count (tracing
a 300-layer graph costs seconds); both views of a batch go through the
model as one batch, which is faster than two calls.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


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
    """
    import tensorflow as tf

    # branches on Python values only: nothing for AutoGraph to convert, traced as written
    @tf.function(reduce_retracing=True)
    @tf.autograph.experimental.do_not_convert
    def run(pixels: tf.Tensor) -> tf.Tensor:
        batch = pixels if views == 1 else tf.concat([pixels, tf.reverse(pixels, [2])], 0)
        result = model(batch, training=False)
        if pool:
            result = tf.reduce_mean(result, axis=[1, 2])
        return tf.stack(tf.split(result, views), axis=1)

    return run


class TensorFlowEngine:
    """Float32, bfloat16 and float16 extraction with TensorFlow (oneDNN on CPUs)."""

    name = "tensorflow"
    replicated = True

    def compile(self, backbone: keras.Model, metadata: dict[str, Any], precision: str, *,
                views: int, cut: str | None = None, context: Any = None) -> Any:
        """The folded copy in ``precision``: pooled, or its frozen stages' output at ``cut``."""
        from resnet_ft.models.folding import folded_copy
        from resnet_ft.models.precision import policy
        from resnet_ft.models.unfreeze import split_backbone

        with policy(precision):
            folded = folded_copy(backbone, metadata)
        if cut is None:
            return pooled_features(folded, views)
        return Compiled(folded, view_outputs(split_backbone(folded, cut)[0], views, pool=False))


ENGINE = TensorFlowEngine()
