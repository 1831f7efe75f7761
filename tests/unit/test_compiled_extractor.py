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


def test_folded_copies_are_kept_per_identity_and_precision_outside_strategies(monkeypatch):
    """A second featurizer of the same weights (same content identity, precision) reuses the
    folded, traced copy; weights without an identity, a third identity's eviction of the
    oldest, and a strategy's scope each fold again."""
    from types import SimpleNamespace

    import tensorflow as tf

    from resnet_ft.features.engines import tensorflow as engine
    from resnet_ft.models import folding
    from resnet_ft.util.recent import LastUsed

    folds: list[str] = []
    monkeypatch.setattr(folding, "folded_copy", lambda *_: folds.append("x") or _small_model())
    monkeypatch.setattr(engine, "_FOLDED", LastUsed(engine.RECENT_FOLDED))

    def compile_(identity, precision="float32"):
        return engine.ENGINE.compile(None, {}, precision, views=1,
                                     context=SimpleNamespace(identity=identity))

    first = compile_("a")
    assert compile_("a").function is first.function and len(folds) == 1
    compile_("a", "mixed_bfloat16")
    compile_(None)
    compile_(None)
    assert len(folds) == 4
    compile_("b")  # the third kept copy: ("a", float32) is the least recent, and goes
    assert len(folds) == 5
    assert list(engine._FOLDED.values) == [("a", "mixed_bfloat16"), ("b", "float32")]
    assert compile_("a").function is not first.function and len(folds) == 6
    with tf.distribute.MirroredStrategy(["/cpu:0"]).scope():
        compile_("c")
        compile_("c")
    assert len(folds) == 8 and ("c", "float32") not in engine._FOLDED.values


def test_features_do_not_depend_on_the_sizes_computed_before(backbone50):
    """bfloat16 on oneDNN rounds differently in a graph whose height and width are open: one
    graph relaxed to any size by a call at another size gave pooled features 0.04 apart, and
    ``evaluate`` then disagreed with the training run it repeats (seen only when an int8
    module's fallback had run at 96 px before in the same process)."""
    from resnet_ft.features.engines.tensorflow import view_outputs
    from resnet_ft.models.files import backbone_metadata, load_backbone
    from resnet_ft.models.folding import folded_copy
    from resnet_ft.models.precision import policy

    with policy("mixed_bfloat16"):
        copy = folded_copy(load_backbone(backbone50), backbone_metadata(backbone50))
    pixels = np.random.default_rng(0).uniform(0, 255, (8, 48, 48, 3)).astype(np.float32)
    fresh = np.asarray(view_outputs(copy, 2, pool=True)(pixels))
    used = view_outputs(copy, 2, pool=True)
    used(np.zeros((4, 96, 96, 3), np.float32))
    used(pixels[:3])  # another batch size
    assert np.array_equal(np.asarray(used(pixels)), fresh)
    assert fresh.shape == (8, 2, 2048)
