"""Serve a SavedModel written by ``resnet-ft export`` with TensorFlow alone, in a fresh process.

Usage: ``python -I export_worker.py SAVED_MODEL IMAGE...``; prints one JSON object with
the ``serving_default`` outputs for the images' bytes and the loaded modules of interest.

Keras is made unimportable before TensorFlow is imported (``sys.modules[name] = None``
is how Python marks a module as absent). That is needed for the check to mean anything:
``import tensorflow`` 2.21 itself imports Keras 3 whenever it is installed, so "keras
not in sys.modules" is never true in this project's environment. Nothing imports
resnet_ft here either; the test asserts it stayed out.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
for _absent in ("keras", "tf_keras"):
    sys.modules[_absent] = None  # type: ignore[assignment]

import tensorflow as tf  # noqa: E402 - Keras must be blocked and the log level set first


def main(argv: list[str]) -> None:
    """Load the SavedModel, classify the files, print JSON."""
    model_dir, *images = argv
    loaded = tf.saved_model.load(model_dir)  # keep a reference: it owns the variables
    outputs = loaded.signatures["serving_default"](
        images=tf.constant([Path(path).read_bytes() for path in images])
    )
    watched = ("resnet_ft", "keras", "tf_keras")
    print(json.dumps({
        "probabilities": outputs["probabilities"].numpy().tolist(),
        "top_k_labels": [[s.decode() for s in row] for row in outputs["top_k_labels"].numpy()],
        "top_k_scores": outputs["top_k_scores"].numpy().tolist(),
        "modules": sorted(name for name, module in sys.modules.items()
                          if module is not None and name.split(".")[0] in watched),
    }))


if __name__ == "__main__":
    main(sys.argv[1:])
