"""`Config` is the one schema: every field is a flag, a checked TOML key and a validated value."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
from conftest import cli_env

from dae_cli import config as schema
from dae_cli.cli.entry import build_command
from dae_cli.config import Config
from dae_cli.errors import UsageError

# The options of `train` that are not settings of the model (where to write, how to run).
TRAIN_ONLY = {
    "config",
    "out",
    "resume",
    "overwrite",
    "strategy",
    "tensorboard",
    "json_output",
    "quiet",
    "verbose",
    "debug",
}


def options(command: str) -> dict:
    return {param.name: param for param in build_command().commands[command].params}


def test_every_config_field_is_a_train_option_and_nothing_else_is():
    train = options("train")
    assert set(train) - TRAIN_ONLY == set(Config.keys())
    for key in Config.keys():
        setting = schema.spec(key)
        assert train[key].rich_help_panel == setting.panel in schema.PANELS
        assert (setting.flag or "--" + key.replace("_", "-")).split("/")[0] in train[key].opts


def test_evaluate_and_noise_take_the_fields_that_name_them():
    for command in ("evaluate", "noise"):
        wanted = {key for key in Config.keys() if command in schema.spec(key).commands}
        assert wanted <= set(options(command))
        assert {"noise", "noise_std", "seed"} <= wanted


def test_help_shows_the_defaults_of_config_itself():
    train = options("train")
    defaults = Config()
    for key in ("epochs", "batch_size", "latent_dim", "noise", "lr_schedule", "precision"):
        assert f"(default: {getattr(defaults, key)}" in train[key].help, train[key].help
    assert "(default: 32,64" in train["layer_filters"].help
    assert "(default: off)" in train["batch_norm"].help and "(default: on)" in train["skips"].help


@pytest.mark.parametrize("key", Config.keys())
def test_every_field_is_type_checked_in_toml(key, tmp_path):
    base, _, _ = schema.value_type(key)
    wrong = '"text"' if base is not str else "3"
    path = tmp_path / "c.toml"
    path.write_text(f"{key} = {wrong}\n")
    with pytest.raises(UsageError, match=f"{key} must be "):
        Config.from_toml(path)


# Each mode and each range, refused by its flag; the same rule refuses the TOML value.
BAD_VALUES = {
    "dataset": ("cifar", '"cifar"'),
    "architecture": ("mlp", '"mlp"'),
    "downsampling": ("avg", '"avg"'),
    "upsampling": ("pixel", '"pixel"'),
    "loss": ("huber", '"huber"'),
    "lr_schedule": ("step", '"step"'),
    "precision": ("float16", '"float16"'),
    "noise": ("pink", '"pink"'),
    "channels": ("2", "2"),
    "val_split": ("1", "1.0"),
    "limit": ("0", "0"),
    "seed": ("-1", "-1"),
    "epochs": ("0", "0"),
    "noise_amount": ("1.5", "1.5"),
    "noise_peak": ("0", "0"),
    "layer_filters": ("32,0", "[32, 0]"),
    "noise_std": ("-1/255", "-0.1"),
    "learning_rate": ("0", "0"),
}


@pytest.mark.parametrize("key", sorted(BAD_VALUES))
def test_bad_values_are_refused_in_toml(key, tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(f"{key} = {BAD_VALUES[key][1]}\n")
    with pytest.raises(UsageError, match=key):
        Config.resolve(path, {})


def test_bad_flags_exit_2_at_parse_time_before_any_file_or_import(tmp_path):
    train = options("train")
    runs = [[train[key].opts[0], flag_value] for key, (flag_value, _) in BAD_VALUES.items()] + [
        ["--epochs", "two"],
        ["--noise-std", "x"],
        ["--strategy", "bogus"],
    ]
    script = f"""
import sys
from dae_cli.cli.entry import main
for args in {runs!r}:
    print(main(["train", "--dataset", "mnist", "--out", "x/y/z", *args]))
print("tensorflow" in sys.modules)
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=cli_env(KERAS_HOME=str(tmp_path / "keras")),
    )
    assert result.stdout.split() == ["2"] * len(runs) + ["False"], result.stderr
    errors = result.stderr.splitlines()
    assert len(errors) == len(runs) and all(line.startswith("error: Invalid value for '--") for line in errors), errors
    assert list(tmp_path.iterdir()) == []


def test_train_help_has_panels_choice_lists_and_plain_on_off_flags():
    result = subprocess.run(
        [sys.executable, "-m", "dae_cli", "train", "--help"], capture_output=True, text=True, env=cli_env(COLUMNS="200")
    )
    assert result.returncode == 0, result.stderr
    text = result.stdout
    for panel in schema.PANELS:
        assert f"─ {panel} ─" in text
    assert "<bool>" not in text
    for choices in (schema.NOISE_TYPES, schema.LR_SCHEDULES, schema.ARCHITECTURES, schema.PRECISIONS):
        assert "<" + "|".join(choices) + ">" in text
    assert "<auto|one|mirrored|multi-worker>" in text


def test_a_new_field_with_its_setting_is_a_flag_and_a_checked_key(monkeypatch, tmp_path):
    extended = dataclasses.make_dataclass(
        "Config",
        [("warmup_epochs", int, schema.setting(2, panel="Training", low=0, help="Epochs of warm-up."))],
        bases=(Config,),
    )
    monkeypatch.setattr(schema, "Config", extended)
    monkeypatch.setattr(schema, "_FIELDS", {field.name: field for field in dataclasses.fields(extended)})
    monkeypatch.setattr(schema, "_HINTS", {**schema._HINTS, "warmup_epochs": int})
    from dae_cli.cli.options import with_settings

    def command(settings: dict = None):
        return settings

    wrapped = with_settings("train")(command)
    import inspect

    option = inspect.signature(wrapped).parameters["warmup_epochs"].default
    assert option.param_decls == ("--warmup-epochs",) and "(default: 2; 0 or more)" in option.help
    path = tmp_path / "c.toml"
    path.write_text("warmup_epochs = -1\n")
    with pytest.raises(UsageError, match="warmup_epochs must be 0 or more"):
        extended.resolve(path, {})
    path.write_text('warmup_epochs = "x"\n')
    with pytest.raises(UsageError, match="warmup_epochs must be an integer"):
        extended.resolve(path, {})
