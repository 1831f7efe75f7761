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
    from resnet_ft.features.extract import pooled_features

    model = _small_model()
    run = pooled_features(model, 2)
    assert pooled_features(model, 2) is run  # compiled once per model and view count
    assert run(np.zeros((3, 16, 16, 3), np.float32)).shape == (3, 2, 4)
    alive = weakref.ref(model)
    del model, run
    gc.collect()
    assert alive() is None
