"""The compiled-extractor cache must not keep backbones alive.

Every run builds a fresh BN-folded backbone; a cache entry that held its model
strongly kept each one (and its weights) for the life of the process: the suite's
pytest process grew past the machine's memory and was killed.
"""

from __future__ import annotations

import gc
import weakref

import numpy as np


def _small_model():
    import keras

    pixels = keras.Input((16, 16, 3))
    return keras.Model(pixels, keras.layers.Conv2D(4, 3)(pixels))


def test_a_dropped_backbone_is_freed_with_its_compiled_function():
    from resnet_ft.features.engines.tensorflow import pooled_features

    model = _small_model()
    run = pooled_features(model, 2)
    assert pooled_features(model, 2).function is run.function  # compiled once per model, views
    assert run(np.zeros((3, 16, 16, 3), np.float32)).shape == (3, 2, 4)
    alive = weakref.ref(model)
    del model, run
    gc.collect()
    assert alive() is None


def test_the_function_keeps_a_model_built_for_the_call_alive():
    """``pooled_features(folded_copy(...), 1)``: nothing else holds the model. With the cache
    holding it weakly, the cyclic collector freed it and the next call raised ReferenceError
    (``predict --precision auto`` failed that way)."""
    from resnet_ft.features.engines.tensorflow import pooled_features

    run = pooled_features(_small_model(), 1)
    alive = weakref.ref(run.model)
    gc.collect()
    assert run(np.zeros((2, 16, 16, 3), np.float32)).shape == (2, 1, 4)
    del run
    gc.collect()
    assert alive() is None
