"""Config: defaults equal configs/mnist.toml, precedence, validation."""

from pathlib import Path

import pytest

from dae_cli.config import Config
from dae_cli.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]


def test_mnist_toml_is_the_default_config():
    assert Config.from_toml(ROOT / "configs" / "mnist.toml") == Config()
    defaults = Config()
    assert (defaults.latent_dim, defaults.layer_filters, defaults.kernel_size) == (16, [32, 64], 3)
    assert (defaults.batch_size, defaults.epochs) == (128, 30)
    assert (defaults.noise, defaults.noise_mean, defaults.noise_std) == ("gaussian", 0.5, 0.5)


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.toml")), ids=lambda path: path.name)
def test_every_shipped_config_file_loads_and_validates(path):
    config = Config.from_toml(path)
    config.validate()


def test_flags_override_file_and_file_overrides_defaults(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("epochs = 5\nlatent_dim = 8\n")
    config = Config.resolve(path, {"epochs": 2, "seed": None})
    assert config.epochs == 2  # flag beats file
    assert config.latent_dim == 8  # file beats default
    assert config.batch_size == 128  # default


def test_unknown_keys_are_an_error_listing_the_valid_ones(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("epoch = 5\n")
    with pytest.raises(UsageError, match=r"unknown key\(s\) epoch; valid keys: .*epochs"):
        Config.from_toml(path)


@pytest.mark.parametrize(
    "text, message",
    [
        ('epochs = "ten"', "epochs must be an integer"),
        ("epochs = true", "epochs must be an integer"),
        ("layer_filters = [32, 'x']", "layer_filters must be a list of integers"),
        ("learning_rate = 'fast'", "learning_rate must be a number"),
        ("epochs = [", "invalid TOML"),
    ],
)
def test_wrong_types_are_usage_errors(tmp_path, text, message):
    path = tmp_path / "c.toml"
    path.write_text(text + "\n")
    with pytest.raises(UsageError, match=message):
        Config.resolve(path, {})


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"epochs": 0}, "epochs must be positive"),
        ({"batch_size": -1}, "batch_size must be positive"),
        ({"latent_dim": 0}, "latent_dim must be positive"),
        ({"layer_filters": []}, "layer_filters must not be empty"),
        ({"layer_filters": [32, 0]}, "layer_filters must all be positive"),
        ({"val_split": 1.0}, "val_split must be between 0 and 1"),
        ({"val_split": 0.0}, "val_split must be between 0 and 1"),
        ({"noise": "pink"}, "noise must be one of"),
        ({"limit": 0}, "limit must be positive"),
        ({"learning_rate": float("nan")}, "learning_rate must be positive"),
        ({"saturation_range": [2.0, 1.0], "channels": 3, "patch_size": 16}, "saturation_range must be two numbers"),
        ({"saturation_range": [-1.0, 1.0], "channels": 3, "patch_size": 16}, "saturation_range must all be 0 or more"),
        ({"saturation_range": [0.5, 1.5]}, "saturation_range needs channels = 3 and patch_size"),
    ],
)
def test_values_that_cannot_train_are_rejected(overrides, message):
    with pytest.raises(UsageError, match=message):
        Config.resolve(None, overrides)


def test_missing_config_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="config file not found"):
        Config.resolve(tmp_path / "nope.toml", {})
