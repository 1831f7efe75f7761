"""The classification head and the full pixels -> probabilities model.

Head: global average pool -> Dropout -> Dense(units, ReLU) -> Dropout ->
Dense(N, softmax). The ReLU matters: two stacked Dense layers without an
activation collapse into one linear map (the reference tutorial's bug).

The head is its own small model over pooled features, so it can be trained
on cached features; the saved classifier wires the *same* layer objects
after the frozen backbone, so the weights trained on features are the
weights of the model that is saved.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from resnet_ft.architectures import FEATURE_CHANNELS
from resnet_ft.errors import InputError
from resnet_ft.model_io import load_model
from resnet_ft.runs import LABELS_FILE, model_path

if TYPE_CHECKING:
    import keras


def build_head(num_classes: int, *, units: int, dropout: float) -> keras.Model:
    """Pooled features (N, 2048) -> class probabilities (N, num_classes)."""
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input((FEATURE_CHANNELS,), name="features"),
            layers.Dropout(dropout, name="head.dropout1"),
            layers.Dense(units, activation="relu", name="head.dense"),
            layers.Dropout(dropout, name="head.dropout2"),
            # float32 output even under a mixed-precision policy
            layers.Dense(num_classes, activation="softmax", dtype="float32", name="head.probs"),
        ],
        name="head",
    )


def assemble(
    backbone: keras.Model,
    head: keras.Model,
    image_size: int,
    trainable: str = "head",
    *,
    train_bn: bool = False,
) -> keras.Model:
    """Backbone (inference mode) + pooling + head, taking raw RGB images.

    ``trainable`` records which stages were fine-tuned, so ``summary`` of the
    saved model reports the trained/frozen split of the run.
    """
    import keras
    from keras import layers

    from resnet_ft.finetune import set_trainable

    set_trainable(backbone, trainable, train_bn=train_bn)
    pixels = keras.Input((image_size, image_size, 3), name="pixels")
    features = backbone(pixels, training=False)
    pooled = layers.GlobalAveragePooling2D(name="head.pool")(features)
    return keras.Model(pixels, head(pooled), name="classifier")


def load_classifier(run_dir: str | Path) -> tuple[keras.Model, list[str]]:
    """A trained run's model (pixels in [0, 255] -> probabilities) and its labels."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"run directory not found: {run_dir}")
    path = model_path(run_dir)
    if not path.is_file():
        raise InputError(f"no trained model in {run_dir} (missing {path.name})")
    return load_model(path), read_labels(run_dir)


def read_labels(run_dir: Path) -> list[str]:
    """Class names in output order."""
    try:
        labels = json.loads((run_dir / LABELS_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read {run_dir / LABELS_FILE}: {exc}") from exc
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise InputError(f"{run_dir / LABELS_FILE} must be a JSON list of class names")
    return labels
