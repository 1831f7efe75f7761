"""resnet-ft: transfer learning with ResNet on TensorFlow/Keras 3.

The public API is imported lazily so that ``import resnet_ft`` (and the CLI's
``--help``) does not pay for importing TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "build_resnet": "resnet_ft.architectures",
    "FAMILIES": "resnet_ft.architectures",
    "convert": "resnet_ft.convert",
    "load_backbone": "resnet_ft.model_io",
    "load_imagenet_classifier": "resnet_ft.model_io",
    "summarize": "resnet_ft.summary",
    "load_classifier": "resnet_ft.classifier",
    "train": "resnet_ft.training",
    "TrainConfig": "resnet_ft.config",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'resnet_ft' has no attribute {name!r}")
