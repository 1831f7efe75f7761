"""A small CNN saved as a resnet-ft run: export and report mechanics without a ResNet.

Exporting the stand-in ResNet-101 run takes tens of seconds on 2 cores; what does not
depend on the network (atomicity, refusals, sizes, skipped images) is tested on this.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path


def write_tiny_run(images: Path, run: Path, widths: tuple[int, ...], epochs: int = 0) -> Path:
    """A seeded CNN (3x3 convolutions of ``widths`` channels) over 24-pixel inputs, saved as
    ``run`` with the class-per-folder ``images`` as its split: every fourth file, in sorted
    order, is a validation image.

    ``epochs`` > 0 fits it on all the images first: an untrained model's probabilities are
    near-uniform, so any rounding flips its top class (quantised exports need a decided one).
    """
    import keras
    import numpy as np
    from keras import layers

    from resnet_ft.data.preprocessing import Preprocessing, image_dataset
    from resnet_ft.models.files import save_model

    run.mkdir(parents=True, exist_ok=True)
    labels = sorted(p.name for p in images.iterdir())
    keras.utils.set_random_seed(0)
    pixels = keras.Input((24, 24, 3), name="pixels")
    x = layers.Rescaling(1 / 255)(pixels)
    for width in widths:
        x = layers.Conv2D(width, 3, activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    model = keras.Model(pixels, layers.Dense(len(labels), activation="softmax")(x))
    if epochs:
        files = sorted(images.rglob("*.jpg"))
        inputs = np.stack([p.numpy() for p, _ in image_dataset([str(f) for f in files],
                                                                Preprocessing(24))])
        targets = np.array([labels.index(f.parent.name) for f in files])
        model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
        model.fit(inputs, targets, epochs=epochs, batch_size=8, verbose=0)
    save_model(model, run / "model.keras", {"kind": "classifier", "labels": labels,
                                            "preprocessing": Preprocessing(24).to_dict()})
    (run / "labels.json").write_text(json.dumps(labels))
    with (run / "split.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "label", "subset"])
        for index, path in enumerate(sorted(images.rglob("*.jpg"))):
            writer.writerow([path, path.parent.name, "val" if index % 4 == 0 else "train"])
    return run
