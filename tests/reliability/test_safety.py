"""Safe loading, exit codes, --debug, and property tests of the config loader."""

from __future__ import annotations

import keras
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.cli import assert_one_line_error

from resnet_ft.config import TrainConfig, make_config
from resnet_ft.errors import InputError


def test_keras_file_with_lambda_layer_is_refused(tmp_path, cli):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    path = tmp_path / "evil.keras"
    model.save(path)
    result = cli("summary", path)
    assert_one_line_error(result, "cannot load model", "safe_mode")


def test_debug_shows_the_traceback(tmp_path, cli, capsys, monkeypatch):
    import pytest

    from resnet_ft.cli import main

    with pytest.raises(InputError):
        main(["summary", str(tmp_path / "missing.keras"), "--debug"])
    monkeypatch.setenv("RESNET_FT_DEBUG", "1")
    with pytest.raises(InputError):
        main(["summary", str(tmp_path / "missing.keras")])


def test_usage_error_exit_code(cli):
    result = cli("train", "--epochs", "many", "-o", "x")
    assert_one_line_error(result, "--epochs", "resnet-ft train --help")
    assert_one_line_error(cli("frobnicate"), "frobnicate")


def test_config_with_python_object_tag_is_refused(tmp_path, cli):
    path = tmp_path / "config.yaml"
    path.write_text("epochs: !!python/object/apply:os.system ['echo owned']\n")
    assert_one_line_error(cli("train", "--config", path, "-o", tmp_path / "run"),
                          "not valid YAML")


VALUES = st.one_of(st.none(), st.booleans(), st.integers(-5, 5000), st.floats(allow_nan=True),
                   st.text(max_size=8), st.lists(st.integers(), max_size=2))
KEYS = st.one_of(st.sampled_from([f.name for f in TrainConfig.__dataclass_fields__.values()]),
                 st.text(max_size=8))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(KEYS, VALUES, max_size=6))
def test_random_configs_load_or_fail_cleanly(config):
    try:
        resolved = make_config(config)
    except InputError as exc:
        message = str(exc)
        assert message.startswith("config: ") and "\n" not in message
        return
    assert isinstance(resolved, TrainConfig)
    assert resolved.epochs >= 1 and resolved.batch_size >= 1 and resolved.lr > 0
    assert 0 < resolved.val_split < 1 and resolved.image_size >= 32


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_random_yaml_text_never_crashes(tmp_path_factory, text):
    from resnet_ft.config import load_yaml

    path = tmp_path_factory.mktemp("yaml") / "c.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        data = load_yaml(path)
        make_config(data)
    except InputError as exc:
        assert "\n" not in str(exc)
    else:
        assert isinstance(data, dict)
    yaml.safe_dump(data if "data" in locals() else {})
