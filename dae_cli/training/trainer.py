"""`dae train`: build or resume the autoencoder, fit it, and save the model directory.

`train` runs a `Trainer` through its three steps: `prepare` checks every setting and
the destination (before anything is created, loaded or imported), then loads the data,
builds or loads the model and makes the datasets; `fit` trains; `finish` scores the
model and commits its directory.

Training state between runs lives in `<out>.checkpoint/` beside the model directory
(see `checkpoints`). It is rewritten atomically after every epoch, the last included,
and when Ctrl-C or SIGTERM stops a run, so `dae train --resume` continues to the same
epoch count (or only finishes, if every epoch was trained), and it is removed once the
finished model directory is in place. An earlier model at `<out>` is never touched
until the new one is complete.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dae_cli.config import STRATEGIES, Config, check_divisible
from dae_cli.errors import DaeError, TrainingInterrupted, UsageError
from dae_cli.io import image_io
from dae_cli.io.files import (
    check_writable_directory,
    commit_directory,
    keep_aside,
    remove_stale_staging,
    staging_directory,
)
from dae_cli.models import artifacts
from dae_cli.training import data
from dae_cli.training.checkpoints import (
    STATE,
    Checkpoint,
    ResumeState,
    checkpoint_path,
    find_resume_state,
    read_state,
    resume_config,
)
from dae_cli.training.interrupts import interrupt_flag
from dae_cli.training.manifest import run_manifest, validation_metrics
from dae_cli.training.model_setup import compile_model, new_model, resumed_model
from dae_cli.training.runtime import Runtime, pool_cpu_memory, start_runtime, steps_per_execution

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

    from dae_cli.training.recorder import EpochRecorder

SAMPLE_COUNT = 8  # validation images in samples.png (and TensorBoard's grid)


class Reporter:
    """Receives training progress; the CLI's output layer draws it. Silent by default."""

    def start(self, epochs: int, steps: int, initial_epoch: int) -> None: ...
    def batch(self, step: int, logs: dict) -> None: ...
    def epoch(self, epoch: int, epochs: int, logs: dict, seconds: float) -> None: ...
    def finish(self) -> None: ...
    def message(self, text: str) -> None: ...


@dataclasses.dataclass
class TrainResult:
    """The model directory a run wrote, and its manifest."""

    model_dir: Path
    manifest: dict[str, Any]


@dataclasses.dataclass
class Progress:
    """How far a run has come: its epochs so far, and the seconds they took.

    `history` is the list each complete epoch is appended to. `fit` starts at
    `initial_epoch`, the epochs done when the run was resumed (a restarted multi-worker
    job leaves it at 0 and lets Keras' `BackupAndRestore` skip the epochs done).
    """

    history: list[dict]
    initial_epoch: int = 0
    training_seconds: float = 0.0


@dataclasses.dataclass
class Validation:
    """The validation images, float32: `inputs` is what the model takes (the noisy
    images, and the level map if it takes one), `clean` its targets."""

    inputs: np.ndarray
    clean: np.ndarray
    noisy: np.ndarray


@dataclasses.dataclass
class Predictions:
    """The model's output for the validation inputs, and the seconds it took."""

    denoised: np.ndarray
    seconds: float


def train(
    config_file: str | None,
    overrides: dict[str, Any],
    out: Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    strategy: str = "auto",
    reporter: Reporter | None = None,
    callbacks: list | None = None,
    tensorboard: Path | None = None,
) -> TrainResult:
    """Trains a model as configured and writes its directory to `out`.

    `callbacks` are extra Keras callbacks, run after dae's own (the benchmark uses them).
    `tensorboard` is a folder for TensorBoard logs (see `dae_cli.training.tensorboard`).
    """
    trainer = Trainer(out, resume=resume, overwrite=overwrite, strategy=strategy, reporter=reporter)
    trainer.prepare(config_file, overrides)
    extra = list(callbacks or [])
    if tensorboard is not None and trainer.runtime.is_chief:
        from dae_cli.training import tensorboard as board

        shown = trainer.validation
        board_callbacks = board.callbacks(
            tensorboard, trainer.model, shown.inputs, shown.clean, trainer.global_batch, SAMPLE_COUNT
        )
        extra = [*board_callbacks, *extra]
    trainer.fit(extra)
    return trainer.finish()


class Trainer:
    """One `dae train` run to `out`, in three steps: `prepare`, `fit` and `finish`.

    Each step leaves what the next one needs in the attributes below.
    """

    # Set by `prepare`.
    config: Config
    progress: Progress
    training_data: data.TrainingData
    runtime: Runtime
    model: keras.Model  # the autoencoder, compiled: what is validated, checkpointed and saved
    fitted: keras.Model  # what `fit` trains: `model`, or it with a second output (`model_setup.compile_model`)
    train_stream: tf.data.Dataset  # endless (noisy, clean) batches
    validation: Validation
    checkpoint: Checkpoint
    worker_scratch: Path | None  # a multi-worker non-chief's temporary checkpoint folder
    restore: list[keras.callbacks.Callback]  # Keras' BackupAndRestore, for a multi-worker job
    # Set by `fit`: the last epoch's validation, reused by `finish`.
    predictions: Predictions | None = None

    def __init__(
        self,
        out: Path,
        *,
        resume: bool = False,
        overwrite: bool = False,
        strategy: str = "auto",
        reporter: Reporter | None = None,
    ):
        if strategy not in STRATEGIES:
            raise UsageError(f"--strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
        self.out = Path(out)
        self.resume, self.overwrite, self.strategy = resume, overwrite, strategy
        self.reporter = reporter or Reporter()

    @property
    def global_batch(self) -> int:
        """Images per step over all replicas (`batch_size` is per replica)."""
        return self.config.batch_size * self.runtime.replicas

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.training_data.samples_per_epoch / self.global_batch)

    # --- prepare ------------------------------------------------------------------------

    def prepare(self, config_file: str | None, overrides: dict[str, Any]) -> None:
        """Checks every setting, then loads the data and builds (or loads) the model.

        Flags, config and destination are checked before anything is created, downloaded
        or imported: a usage error leaves no trace.
        """
        pool_cpu_memory()
        resumed = self._resolve_config(config_file, overrides)
        self.training_data = data.load_training_data(self.config, warn=self.reporter.message)
        check_divisible(self.training_data.image_shape[:2], self.config.size_multiple)
        self.runtime = start_runtime(self.strategy, self.config)
        if self.runtime.is_chief:
            remove_stale_staging(self.out)
        self.model, self.fitted = self._compiled_model(resumed)
        self._make_datasets()
        self._place_checkpoint(resumed)

    def _resolve_config(self, config_file: str | None, overrides: dict[str, Any]) -> ResumeState | None:
        """Sets `config` and `progress`, and checks the destination and the epochs left.

        Resumed, the config is the saved one with the changes given. Returns the state
        resumed from, or None for a new run.
        """
        resumed = find_resume_state(self.out) if self.resume else None
        if resumed is not None:
            self.config = resume_config(resumed.config, config_file, overrides)
        else:
            self.config = Config.resolve(config_file, overrides)
        _check_destination(self.out, resume=self.resume, overwrite=self.overwrite)
        if resumed is None:
            self.progress = Progress(history=[])
            return None
        self.progress = Progress(list(resumed.history), resumed.epochs_done, resumed.training_seconds)
        done, epochs = resumed.epochs_done, self.config.epochs
        # A checkpoint of every epoch has only `finish` left; a finished model needs more epochs.
        if done > epochs or (done == epochs and not resumed.in_checkpoint):
            raise UsageError(
                f"{self.out} is already trained for {done} epochs; pass --epochs N with N > {done} to train further"
            )
        return resumed

    def _compiled_model(self, resumed: ResumeState | None) -> tuple[keras.Model, keras.Model]:
        """The autoencoder to train, made in the strategy's scope and compiled: the
        resumed one, or a new one (started from `init_from`'s weights if given); and
        the model `fit` runs for it."""
        config, replicas = self.config, self.runtime.replicas
        strategy = self.runtime.strategy
        step_group = steps_per_execution(self.steps_per_epoch, strategy)  # outside the scope: see there
        with strategy.scope():
            if resumed is not None:
                steps_left = (config.epochs - self.progress.initial_epoch) * self.steps_per_epoch
                model, optimizer = resumed_model(resumed, config, self.training_data.image_shape, steps_left, replicas)
            else:
                steps = config.epochs * self.steps_per_epoch
                model, optimizer = new_model(
                    config, self.training_data.image_shape, steps, replicas, self.reporter.message
                )
            fitted = compile_model(model, optimizer, config, self.training_data.image_shape[-1], step_group)
        return model, fitted

    def _make_datasets(self) -> None:
        """Sets `train_stream`, the noisy batches to train on, and `validation`."""
        from dae_cli.noise import NoiseSpec

        config, loaded = self.config, self.training_data
        noise = NoiseSpec.from_config(config)
        self.train_stream = data.training_dataset(
            loaded.x_train,
            self.global_batch,
            noise,
            config.seed,
            patch_size=loaded.patch_size,
            noise_level_input=config.noise_level_input,
            gray_fraction=config.gray_fraction,
            kind=loaded.kind,
            noise_estimator=config.noise_estimator,
            saturation_range=config.saturation_range,
        )
        # For clean data, the same seeded noisy images `dae evaluate` scores (it defaults to this seed).
        inputs, clean, noisy, _ = data.validation_set(
            loaded, noise, config.seed, config.noise_level_input, config.noise_estimator
        )
        self.validation = Validation(inputs, clean, noisy)

    def _place_checkpoint(self, resumed: ResumeState | None) -> None:
        """Sets `checkpoint`, `worker_scratch` and `restore`.

        Only the chief of a multi-worker run writes under `out`; the others keep their
        checkpoints in a temporary directory that goes when they finish.
        """
        if self.runtime.is_chief:
            self.worker_scratch = None
            directory = checkpoint_path(self.out)
        else:
            self.worker_scratch = Path(tempfile.mkdtemp(prefix="dae-worker-"))
            directory = self.worker_scratch / "checkpoint"
        self.checkpoint = Checkpoint(directory, self.config, self.training_data.image_shape, self.training_data.source)
        self.restore = self._backup_and_restore(resumed) if self.runtime.is_multi_worker else []

    def _backup_and_restore(self, resumed: ResumeState | None) -> list[keras.callbacks.Callback]:
        """Keras' `BackupAndRestore`, so a restarted multi-worker job goes on from its
        last epoch: it restores each worker's weights and epoch, and the chief's
        checkpoint holds the history so far, which `progress` takes back here."""
        from dae_cli.backend import keras

        resolver = self.runtime.strategy.cluster_resolver
        backup = self.out.with_name(f"{self.out.name}.backup-{resolver.task_type}-{resolver.task_id}")
        restarted = resumed is None and backup.exists() and (self.checkpoint.directory / STATE).exists()
        if self.runtime.is_chief and restarted:
            state = read_state(self.checkpoint.directory)
            self.progress.history = list(state["history"])
            self.progress.training_seconds = state["training_seconds"]
        return [keras.callbacks.BackupAndRestore(str(backup))]

    # --- fit ----------------------------------------------------------------------------

    def fit(self, callbacks: list[keras.callbacks.Callback]) -> None:
        """Trains from `progress.initial_epoch` to `config.epochs`, checkpointing every epoch.

        Every complete epoch, the last one included, is checkpointed before it is reported,
        so nothing that `finish` does can lose it. Ctrl-C or SIGTERM stops after the
        current step with a checkpoint (`TrainingInterrupted`); a NaN or infinite loss stops
        with nothing saved. `callbacks` run after dae's own.
        """
        config, progress = self.config, self.progress
        if progress.initial_epoch >= config.epochs:
            return  # a checkpoint of a run whose last epoch was trained: only `finish` is left
        if config.self_supervised:
            from dae_cli.training.neighbor2neighbor import gamma_schedule

            callbacks = [gamma_schedule(self.fitted.loss, config.epochs), *callbacks]
        recorder = self._recorder()
        # Without a validation of its own, the recorder leaves it to Keras.
        keras_validation = None if recorder.validation is not None else (self.validation.inputs, self.validation.clean)
        self.reporter.start(config.epochs, self.steps_per_epoch, progress.initial_epoch)
        # Ctrl-C stops fit after the steps under way: no per-step check is needed.
        stop = lambda: setattr(self.fitted, "stop_training", True)  # noqa: E731
        with interrupt_flag(stop) as interrupted, self.runtime.strategy.scope(), self.runtime.fit_fixes(self.fitted):
            recorder.interrupted = interrupted
            try:
                self.fitted.fit(
                    self.train_stream,
                    epochs=config.epochs,
                    initial_epoch=progress.initial_epoch,
                    steps_per_epoch=self.steps_per_epoch,
                    validation_data=keras_validation,
                    validation_batch_size=self.global_batch,
                    # The backup is written before the epoch is reported or checkpointed.
                    callbacks=[*self.restore, recorder, *callbacks],
                    shuffle=False,  # the tf.data stream shuffles itself
                    verbose=0,
                )
            finally:
                self.reporter.finish()
        self._take_record(recorder, interrupted())

    def _recorder(self) -> EpochRecorder:
        """The `EpochRecorder` of this run, live if the reporter draws every step.

        It validates itself and keeps the last epoch's predictions for `finish`. Under
        multi-worker, Keras validates as before and `finish` predicts again: a predict
        inside a multi-worker fit is not tested here.
        """
        from dae_cli.training.recorder import EpochRecorder, LiveEpochRecorder

        live = getattr(self.reporter, "live", False)
        validation = None
        if not self.runtime.is_multi_worker:
            validation = (self.validation.inputs, self.validation.clean, self.global_batch)
        return (LiveEpochRecorder if live else EpochRecorder)(
            self.model,
            self.progress.history,
            self.reporter,
            self.checkpoint,
            self.config,
            self.progress.training_seconds,
            validation=validation,
        )

    def _take_record(self, recorder: EpochRecorder, interrupted: bool) -> None:
        """Takes the seconds and predictions of a finished `fit`; raises if it was cut short."""
        self.progress.training_seconds = recorder.training_seconds
        if recorder.predictions is not None:
            self.predictions = Predictions(recorder.predictions, recorder.predict_seconds)
        epochs_done = len(self.progress.history)
        if recorder.diverged:
            raise DaeError(
                f"training diverged: the loss became NaN or infinite in epoch {epochs_done + 1}; "
                "nothing was saved (try a lower --learning-rate)"
            )
        if interrupted:
            recorder.save_checkpoint()
            raise TrainingInterrupted(
                f"interrupted after {epochs_done} complete epoch(s); checkpoint saved to "
                f"{self.checkpoint.directory}; continue with 'dae train --resume --out {self.out}'"
            )

    # --- finish -------------------------------------------------------------------------

    def finish(self) -> TrainResult:
        """Scores the trained model and commits its directory to `out`.

        A failure here keeps the checkpoint of the last epoch, so `--resume` finishes the
        run without training again.
        """
        if not all(np.all(np.isfinite(w)) for w in self.model.get_weights()):
            raise DaeError("training produced non-finite weights; nothing was saved")
        from dae_cli.models.networks import split_autoencoder

        encoder, decoder = split_autoencoder(self.model)
        # The last epoch's validation is of these very weights; multi-worker, or a
        # resumed run that had only `finish` left, predicts now.
        predictions = self.predictions if self.predictions is not None else self._predict()
        validation = self.validation
        metrics = validation_metrics(
            self.out,
            self.config,
            self.training_data,
            validation.noisy,
            validation.clean,
            predictions.denoised,
            predictions.seconds,
        )
        written = run_manifest(
            self.config,
            self.training_data,
            encoder,
            decoder,
            epochs_done=len(self.progress.history),
            training_seconds=self.progress.training_seconds,
            replicas=self.runtime.replicas,
            metrics=metrics,
        )
        shown = [part[:SAMPLE_COUNT] for part in (validation.clean, validation.noisy, predictions.denoised)]
        samples = image_io.grid_png(shown)
        if not self.runtime.is_chief:
            shutil.rmtree(self.worker_scratch, ignore_errors=True)
            return TrainResult(self.out, written)
        written = self._commit(encoder, decoder, written, samples)
        shutil.rmtree(self.checkpoint.directory, ignore_errors=True)
        return TrainResult(self.out, written)

    def _predict(self) -> Predictions:
        started = time.perf_counter()
        denoised = self.model.predict(self.validation.inputs, batch_size=self.global_batch, verbose=0)
        return Predictions(denoised, time.perf_counter() - started)

    def _commit(
        self, encoder: keras.Model, decoder: keras.Model, written: dict[str, Any], samples: bytes
    ) -> dict[str, Any]:
        """Writes the model directory and puts it at `out`; returns its manifest.

        `out` is checked once more: a model or other data that appeared there meanwhile
        is never replaced without `--overwrite`, and if the new model cannot take its
        place it is kept beside it, and the error says where.
        """
        out = self.out
        with staging_directory(out) as staging:
            written = artifacts.write_model_dir(
                staging, self.model, encoder, decoder, written, self.progress.history, samples
            )
            try:
                _check_destination(out, resume=self.resume, overwrite=self.overwrite, at_commit=True)
                commit_directory(staging, out, replace=self.overwrite or self.resume)
            except (DaeError, OSError) as error:
                kept = keep_aside(staging, out)
                reason = str(error) if isinstance(error, DaeError) else f"{out}: {error.strerror or error}"
                weights = self.checkpoint.directory
                where = f"the new model is kept at {kept}" if kept else f"the trained weights are in {weights}"
                raise DaeError(f"{reason}; {where}") from None
        return written


def _check_destination(out: Path, resume: bool, overwrite: bool, at_commit: bool = False) -> None:
    """Refuses an `out` that must not be replaced; checked at start and at commit time."""
    if not at_commit:
        check_writable_directory(out.parent)  # before hours of training, not after
    if resume and at_commit and out.exists() and not (out / artifacts.MANIFEST).exists() and any(out.iterdir()):
        raise DaeError(
            f"--out {out} became a non-empty directory that is not a dae model while training; refusing to replace it"
        )
    if resume or not out.exists():
        return
    if not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a model directory")
    is_model = (out / artifacts.MANIFEST).exists()
    if not is_model and any(out.iterdir()):
        raise UsageError(f"--out {out} is a non-empty directory that is not a dae model; refusing to replace it")
    if is_model and not overwrite:
        if at_commit:
            raise DaeError(f"model directory {out} appeared while training; not replaced without --overwrite")
        raise UsageError(f"model directory {out} exists; pass --overwrite to replace it or --resume to continue it")
