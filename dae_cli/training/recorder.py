"""The Keras callback that keeps a run's record, epoch by epoch.

After every complete epoch `EpochRecorder` validates the model, adds the epoch to the
history, checkpoints and then reports it; it stops training when the loss is no longer
finite. `LiveEpochRecorder` also reports every step, for a live progress bar.

This module imports Keras at the top: only `trainer.fit` imports it, once a run has
started, never code that `dae --help` loads.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from dae_cli.backend import keras
from dae_cli.config import Config
from dae_cli.training.checkpoints import Checkpoint
from dae_cli.training.manifest import validation_loss


class EpochRecorder(keras.callbacks.Callback):
    """Validates, records history, reports progress, and checkpoints after every
    complete epoch; stops training when the loss is no longer finite.

    Args:
        autoencoder: the model to validate and checkpoint (Keras' `self.model` is the
            one `fit` runs, which may have a second output: `model_setup.compile_model`).
        history: the run's epochs so far; each complete epoch is appended to it.
        reporter: a `trainer.Reporter`, told of each epoch once it is checkpointed.
        checkpoint: where each epoch is saved.
        config: the run's config (its epoch count and loss).
        training_seconds: the seconds of the epochs in `history`; grows with each epoch.
        validation: (model inputs, targets, batch size) to validate on after every
            epoch, keeping the predictions for `finish`; None when Keras validates.
    """

    def __init__(
        self,
        autoencoder: keras.Model,
        history: list[dict],
        reporter,
        checkpoint: Checkpoint,
        config: Config,
        training_seconds: float,
        validation: tuple[np.ndarray, np.ndarray, int] | None = None,
    ):
        super().__init__()
        self.autoencoder = autoencoder
        self.history, self.reporter, self.checkpoint, self.config = history, reporter, checkpoint, config
        self.training_seconds = training_seconds
        self.validation = validation
        # Set by `fit` to its Ctrl-C flag: an epoch that ends because of it is not kept.
        self.interrupted: Callable[[], bool] = lambda: False
        self.diverged = False
        self.predictions: np.ndarray | None = None  # the last validation's, for `finish`
        self.predict_seconds: float | None = None

    def diverge(self) -> None:
        # What keras.callbacks.TerminateOnNaN does, minus its print to stdout.
        self.diverged = True
        self.model.stop_training = True

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        if not math.isfinite(float(logs.get("loss", 0.0))):
            self.diverge()  # the epoch's mean loss: a NaN in any step shows here
        if self.interrupted() or self.diverged:
            return  # an epoch cut short is not recorded, and is run again on resume
        if self.validation is not None:
            self.validate(logs)
        seconds = time.perf_counter() - self.started
        self.training_seconds += seconds
        row = {
            "epoch": epoch + 1,
            "loss": float(logs.get("loss", math.nan)),
            "val_loss": float(logs.get("val_loss", math.nan)),
            "seconds": round(seconds, 3),
        }
        self.history.append(row)
        self.save_checkpoint()  # every epoch, the last too, before it is reported
        self.reporter.epoch(epoch + 1, self.config.epochs, row, seconds)

    def validate(self, logs: dict) -> None:
        """val_loss into `logs`, as Keras' own validation would; keeps the predictions."""
        inputs, targets, batch_size = self.validation
        # When the steps ended, for callbacks that time them apart (the benchmark's);
        # not in `logs`, which TensorBoard would chart.
        started = self.model.dae_validation_started = time.perf_counter()
        self.predictions = None  # the old ones go before the new ones come
        self.predictions = self.autoencoder.predict(inputs, batch_size=batch_size, verbose=0)
        self.predict_seconds = time.perf_counter() - started
        logs["val_loss"] = validation_loss(self.config.loss, self.predictions, targets)

    def save_checkpoint(self) -> None:
        """Checkpoints the model after the epochs in `history`."""
        self.checkpoint.save(self.autoencoder, self.history, self.training_seconds)


class LiveEpochRecorder(EpochRecorder):
    """An `EpochRecorder` that also reports every step, for a live progress bar.

    It hooks the end of every step from Keras' callback thread (`async_safe`), so
    training never waits for it: a batch-end hook run in line makes Keras fetch each
    step's loss before the next step starts. That is also why the plain recorder has
    no batch hook at all.
    """

    async_safe = True

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.diverge()
        self.reporter.batch(batch + 1, logs or {})
