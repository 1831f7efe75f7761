"""Options of every command: fields declared once, grouped in sections, validated alike.

:mod:`~resnet_ft.config.fields` is the machinery (declaring a field, merging YAML and
command-line layers, validation); :mod:`~resnet_ft.config.sections` the training and
distillation configs assembled from sections.
"""

from resnet_ft.config.fields import load_yaml
from resnet_ft.config.sections import DistillConfig, TrainConfig, make_config

__all__ = ["DistillConfig", "TrainConfig", "load_yaml", "make_config"]
