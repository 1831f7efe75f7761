"""resnet-ft: transfer learning with ResNet on TensorFlow/Keras 3.

The public API, importable as ``resnet_ft.<name>``::

    resnet_ft.convert("resnet_v1_101.ckpt", "backbone.keras")
    resnet_ft.convert("timm/resnet50.tv2_in1k", "backbone.keras")  # a preset, fetched once
    result = resnet_ft.train(resnet_ft.TrainConfig(data_dir="photos",
                                                   backbone="backbone.keras"), "runs/a")
    resnet_ft.predict("runs/a", ["photo.jpg"])        # [{"label": ..., "top_k": ...}]
    resnet_ft.evaluate("runs/a", "test_photos")         # metrics, written to runs/a/eval/
    resnet_ft.predict("runs/a", ["photos/"], precision="auto")  # bulk: bfloat16 where it pays
    resnet_ft.export("runs/a", "exported/a")            # SavedModel (or .tflite)
    resnet_ft.summarize("runs/a")                       # parameters per stage
    model, labels = resnet_ft.load_classifier("runs/a")

Names are imported lazily, so ``import resnet_ft`` (and the CLI's ``--help``)
does not pay for importing TensorFlow. No subpackage or module directly under
``resnet_ft`` shares a name with a public function: importing a submodule
binds its name on the package, which would replace the function.

Importing the package registers the export formats (:mod:`resnet_ft.exports.formats`)
with the inference loaders, so every way of loading a model knows every format.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "convert": "resnet_ft.presets.api",
    "list_presets": "resnet_ft.presets.api",
    "load_backbone": "resnet_ft.models.files",
    "load_imagenet_classifier": "resnet_ft.models.files",
    "load_classifier": "resnet_ft.runs.run",
    "train": "resnet_ft.training.run",
    "TrainConfig": "resnet_ft.config",
    "distill": "resnet_ft.training.distill",
    "DistillConfig": "resnet_ft.config",
    "predict": "resnet_ft.inference.predict",
    "load_predictor": "resnet_ft.inference.loaders",
    "evaluate": "resnet_ft.evaluation.evaluate",
    "export": "resnet_ft.exports",
    "load_exported": "resnet_ft.exports",
    "summarize": "resnet_ft.runs.run",
    "build_resnet": "resnet_ft.models.architectures",
    "FAMILIES": "resnet_ft.models.families",
}

__all__ = ["__version__", *_API]

importlib.import_module("resnet_ft.exports.formats")  # registers the formats' loaders


def __getattr__(name: str) -> Any:
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value  # imported once; later lookups skip __getattr__
        return value
    raise AttributeError(f"module 'resnet_ft' has no attribute {name!r}")
