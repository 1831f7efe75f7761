"""``train``'s options come from TrainConfig: every field is settable, help shows real defaults."""

from __future__ import annotations

import dataclasses
import re

from resnet_ft.cli.options import config_layer
from resnet_ft.config import TrainConfig


def test_every_config_field_has_an_option_and_help_shows_its_default(cli):
    result = cli("train", "--help")
    assert result.code == 0
    text = " ".join(result.out.replace("│", " ").split())
    for field in dataclasses.fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        if field.name == "data_dir":
            assert "data_dir" in text.lower()
        elif field.name == "cache":
            assert "--no-cache" in text
        else:
            assert re.search(rf"{flag}\b", text), flag
    # defaults read from the dataclass, not typed into help strings
    assert "Epochs [20]." in text and "Batch size [16]." in text
    assert "crop (centre crop) or squash [crop]." in text  # brackets survive rich markup


def test_command_line_values_become_a_config_layer():
    options = {"epochs": 3, "lr": None, "no_augment": True, "no_cache": False, "strict": True,
               "train_bn": None}
    assert config_layer(options, TrainConfig) == {"epochs": 3, "augment": "none", "strict": True}
    assert config_layer({"no_cache": True}, TrainConfig) == {"cache": False}
