"""Training state between runs, and what `dae train --resume` reads back.

A run's checkpoint is `<out>.checkpoint/`: `autoencoder.keras` (weights and optimizer
state) and `state.json` (config, epochs done, history, seconds). `Checkpoint.save`
rewrites it atomically. `find_resume_state` reads a run back from its checkpoint, or
from a finished model at `<out>`; `resume_config` says what a resumed run may change.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dae_cli.config import Config
from dae_cli.errors import UsageError
from dae_cli.io.files import commit_directory, staging_directory
from dae_cli.models import artifacts

if TYPE_CHECKING:
    import keras

STATE = "state.json"

ARCHITECTURE_KEYS = (
    "architecture",
    "latent_dim",
    "layer_filters",
    "kernel_size",
    "batch_norm",
    "downsampling",
    "upsampling",
    "blocks_per_level",
    "skips",
    "residual",
    "noise_level_input",
)
# The precision may change: a resumed model is rebuilt under the run's dtype policy
# (`model_setup.in_run_policy`).
FIXED_ON_RESUME = ARCHITECTURE_KEYS
# Settings of the optimizer and its schedule: changing one with --resume starts a new
# schedule for the epochs still to run (see `optimizer_settings_changed`).
OPTIMIZER_KEYS = ("epochs", "batch_size", "learning_rate", "lr_schedule", "scale_learning_rate")


def checkpoint_path(out: Path) -> Path:
    """The checkpoint directory of a run whose model goes to `out`."""
    return out.with_name(out.name + ".checkpoint")


def read_state(directory: Path) -> dict[str, Any]:
    """The `state.json` of the checkpoint in `directory`."""
    return json.loads((directory / STATE).read_text())


@dataclasses.dataclass
class Checkpoint:
    """Where a run checkpoints, and the facts about the run that every `state.json` repeats."""

    directory: Path
    config: Config
    image_shape: tuple[int, int, int]
    data_source: str

    def save(self, model: keras.Model, history: list[dict], training_seconds: float) -> None:
        """Replaces the checkpoint with `model` after `history`'s epochs, atomically."""
        state = {
            "config": self.config.to_dict(),
            "epochs_done": len(history),
            "history": history,
            "image_shape": list(self.image_shape),
            "data_source": self.data_source,
            "training_seconds": training_seconds,
        }
        with staging_directory(self.directory) as staging:
            model.save(staging / artifacts.KERAS_MODEL)
            (staging / STATE).write_text(json.dumps(state, indent=2))
            commit_directory(staging, self.directory)


@dataclasses.dataclass
class ResumeState:
    """A run to go on with: its saved config (a dict), progress, and Keras model file."""

    config: dict[str, Any]
    epochs_done: int
    history: list[dict]
    training_seconds: float
    keras_path: Path
    # From a checkpoint, which may hold every epoch with only `finish` left to do; not
    # from a finished model, which needs more epochs to be worth resuming.
    in_checkpoint: bool = False


def find_resume_state(out: Path) -> ResumeState:
    """The state to resume the run for `out` from: its checkpoint, else the model at `out`."""
    checkpoint = checkpoint_path(out)
    if (checkpoint / STATE).exists():
        state = read_state(checkpoint)
        return ResumeState(
            config=state["config"],
            epochs_done=state["epochs_done"],
            history=state["history"],
            training_seconds=state["training_seconds"],
            keras_path=checkpoint / artifacts.KERAS_MODEL,
            in_checkpoint=True,
        )
    if (out / artifacts.KERAS_MODEL).exists():
        manifest = artifacts.read_manifest(out)
        artifacts.verify_files(out, manifest, (artifacts.KERAS_MODEL,))
        return ResumeState(
            config=manifest["config"],
            epochs_done=manifest["epochs_done"],
            history=artifacts.read_history(out / artifacts.HISTORY),
            training_seconds=manifest.get("training_seconds", 0.0),
            keras_path=out / artifacts.KERAS_MODEL,
        )
    raise UsageError(f"nothing to resume: neither {checkpoint} nor a model at {out}")


def resume_config(saved: dict, config_file: str | None, overrides: dict[str, Any]) -> Config:
    """The saved config with what the file sets (only its own keys) and the flags given."""
    base = Config.from_dict(saved, source="saved config")
    changes = Config.read_toml(config_file) if config_file else {}
    changes.update({k: v for k, v in overrides.items() if v is not None})
    fixed = [k for k in FIXED_ON_RESUME if k in changes and changes[k] != base.to_dict()[k]]
    if fixed:
        raise UsageError(
            f"--resume cannot change {', '.join(fixed)} (the saved model was built with "
            f"{', '.join(f'{k}={base.to_dict()[k]!r}' for k in fixed)}); train a new model instead"
        )
    config = Config.from_dict({**base.to_dict(), **changes}, source="flags")
    config.validate()
    return config


def optimizer_settings_changed(saved: dict, config: Config) -> bool:
    """Whether `--resume` was given optimizer settings (or a new epoch count) that the
    saved optimizer's schedule was not made for. Then a new schedule starts: from
    `learning_rate` over the epochs still to run. Otherwise the saved optimizer goes on
    exactly where it stopped."""
    current = config.to_dict()
    return any(saved.get(key) != current[key] for key in OPTIMIZER_KEYS)
