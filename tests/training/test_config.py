"""RunConfig: recipes as data, validation, and the flags named in messages."""

import dataclasses
import math

import pytest

from keras_imsvd import cli
from keras_imsvd.training import RECIPES
from keras_imsvd.training import RunConfig
from keras_imsvd.training import UsageError
from keras_imsvd.training import resolve_config


def test_recipes_fill_the_unset_fields():
    config = resolve_config(dataset="cifar10", epochs=800)
    for field, value in RECIPES["cifar10"].items():
        assert getattr(config, field) == value, field
    assert resolve_config(data_dir="/images").architecture == "resnet50"
    assert resolve_config(data_dir="/images").output_dir.endswith("folder")
    # A run shorter than the recipe's warm-up warms up for a tenth of itself.
    assert resolve_config(epochs=2).warmup_epochs == 0.2
    assert resolve_config(epochs=5).warmup_epochs == 2
    assert resolve_config(epochs=2, warmup_epochs=1).warmup_epochs == 1


def test_config_is_frozen_and_lists_its_training_settings():
    config = resolve_config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.epochs = 3
    settings = config.training_settings()
    assert settings["projector"] == "512-512" and "output_dir" not in settings
    assert set(settings) == set(RunConfig.TRAINING_FIELDS)


@pytest.mark.parametrize(
    "settings, needle",
    [
        ({"base_learning_rate": math.nan}, "base_learning_rate must be a finite"),
        ({"temperature": math.inf}, "temperature must be a finite number > 0"),
        ({"weight_decay": -1e-4}, "weight_decay must be a finite number >= 0"),
        ({"validation_size": 0}, "validation_size must be an integer >= 1"),
        ({"eval_every": 0}, "eval_every must be an integer >= 1"),
        ({"bin_size": 1}, "bin_size must be an integer >= 2"),
        ({"bin_size": 5}, "bin_size must divide the embedding size"),
        ({"batch_size": 1}, "batch_size must be an integer >= 2"),
        ({"limit": 10, "batch_size": 64}, "limit must be an integer >= 64"),
        ({"epochs": 4, "warmup_epochs": 4}, "warmup_epochs must be smaller"),
        ({"architecture": "vgg"}, "architecture must be one of"),
        ({"resume": True, "overwrite": True}, "overwrite cannot be combined"),
    ],
)
def test_bad_settings_are_refused_with_the_value(settings, needle):
    with pytest.raises(UsageError, match=needle) as info:
        resolve_config(**settings)
    value = next(iter(settings.values()))
    assert f"Received: {value!r}" in str(info.value)
    assert info.value.field in settings


def test_messages_name_the_flag_the_user_typed():
    for field, message, expected in [
        (
            "validation_size",
            "validation_size must be >= 1",
            "--validation-size must be >= 1",
        ),
        ("base_learning_rate", "base_learning_rate must be", "--base-lr must be"),
        ("temperature", "temperature must be", "--t must be"),
        ("output_dir", "output_dir /x holds a run", "--output-dir /x holds a run"),
        (None, "settings (base_learning_rate, epochs)", "settings (--base-lr, epochs)"),
    ]:
        assert cli._in_flags(message, field) == expected
