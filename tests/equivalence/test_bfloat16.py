"""bfloat16 extraction (what ``--precision auto`` picks on CPUs with bfloat16 units) keeps the
features and the trained head's decisions.

Thresholds from the performance issue: per image, cosine(bfloat16 pooled features, float32
pooled features) >= 0.999 (measured >= 0.99996 on the stand-in ResNet-101 at 224 px); a head
trained on bfloat16 features predicts the class that one trained on float32 features predicts
for >= 99 % of validation images.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

import resnet_ft
from resnet_ft.data.preprocessing import Preprocessing, image_dataset
from resnet_ft.models.files import backbone_metadata, load_backbone
from resnet_ft.models.folding import folded_copy
from resnet_ft.models.precision import policy


def _pooled(model, pixels):
    return np.asarray(tf.reduce_mean(tf.cast(model(pixels, training=False), tf.float32), [1, 2]))


def test_bfloat16_pooled_features_keep_their_direction(backbone101, flowers):
    paths = sorted(str(p) for p in flowers.rglob("*.jpg"))[::4]
    pixels = np.stack([p.numpy() for p, _ in image_dataset(paths, Preprocessing(96))])
    backbone = load_backbone(backbone101)
    reference = _pooled(backbone, pixels)  # the unfolded float32 model: the exact path
    with policy("mixed_bfloat16"):
        extractor = folded_copy(backbone, backbone_metadata(backbone101))
    assert extractor.layers[-1].compute_dtype == "bfloat16"
    ours = _pooled(extractor, pixels)
    cosine = (ours * reference).sum(1) / (np.linalg.norm(ours, axis=1)
                                          * np.linalg.norm(reference, axis=1))
    assert cosine.min() >= 0.999, cosine.min()
    assert np.abs(ours - reference).max() > 0  # it really computed in bfloat16


def test_heads_trained_on_bfloat16_and_float32_features_agree(backbone101, flowers, tmp_path):
    # a converged head (as the export tests' "confident" run): an unconverged one is chaotic
    # on the stand-in's large random features, whatever the precision
    base = {"data_dir": str(flowers), "backbone": str(backbone101), "epochs": 40, "lr": 1e-3,
            "image_size": 48, "batch_size": 8, "val_split": 0.25, "cache_dir": str(tmp_path)}
    runs = {}
    for precision in ("float32", "mixed_bfloat16"):
        runs[precision] = tmp_path / precision
        resnet_ft.train({**base, "precision": precision}, runs[precision])
    val = [line.split(",")[0] for line in (runs["float32"] / "split.csv").read_text()
           .splitlines()[1:] if line.endswith(",val")]
    assert len(val) == 10
    labels = {p: [r["label"] for r in resnet_ft.predict(run, val)] for p, run in runs.items()}
    agreement = np.mean([a == b for a, b in zip(*labels.values(), strict=True)])
    assert agreement >= 0.99, labels
