"""`dae train`: build or resume the autoencoder, fit it, and save the model directory.

Three steps: `prepare` checks every setting and the destination (before anything is
created, loaded or imported), then loads the data and builds or loads the model; `fit`
trains; `finish` scores the model and commits its directory.

Training state between runs lives in `<out>.checkpoint/` beside the model directory:
`autoencoder.keras` (weights and optimizer state) and `state.json` (config, epochs
done, history). It is rewritten atomically after every epoch, the last included, and
when Ctrl-C or SIGTERM stops a run, so `dae train --resume` continues to the same epoch
count (or only finishes, if every epoch was trained), and it is removed once the
finished model directory is in place. An earlier model at `<out>` is never touched
until the new one is complete.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from dae_cli.apply import evaluation
from dae_cli.config import STRATEGIES, Config
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
from dae_cli.training.runtime import make_strategy, multi_worker_fixes, precision_policy, steps_per_execution

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
STATE = "state.json"
SAMPLE_COUNT = 8


class Reporter:
    """Receives training progress; the CLI's output layer draws it. Silent by default."""

    def start(self, epochs: int, steps: int, initial_epoch: int) -> None: ...
    def batch(self, step: int, logs: dict) -> None: ...
    def epoch(self, epoch: int, epochs: int, logs: dict, seconds: float) -> None: ...
    def finish(self) -> None: ...
    def message(self, text: str) -> None: ...


@dataclasses.dataclass
class TrainResult:
    model_dir: Path
    manifest: dict[str, Any]


# Settings of the optimizer and its schedule: changing one with --resume starts a new
# schedule for the epochs still to run (see `_optimizer_settings_changed`).
OPTIMIZER_KEYS = ("epochs", "batch_size", "learning_rate", "lr_schedule", "scale_learning_rate")
# The layers of a saved model keep the dtype policy they were built with.
FIXED_ON_RESUME = (*ARCHITECTURE_KEYS, "precision")


def checkpoint_path(out: Path) -> Path:
    return out.with_name(out.name + ".checkpoint")


@dataclasses.dataclass
class TrainingRun:
    """Everything `prepare` sets up for `fit` and `finish`."""

    out: Path
    config: Config
    strategy: str
    overwrite: bool
    resume: bool
    training_data: Any
    distribution: Any
    autoencoder: Any
    replicas: int
    global_batch: int
    steps_per_epoch: int
    train_stream: Any
    val_noisy: np.ndarray
    val_clean: np.ndarray
    val_inputs: np.ndarray  # what the model takes: the noisy images, and the level map if it takes one
    history: list
    initial_epoch: int
    previous_seconds: float
    is_chief: bool
    checkpoint: Path
    worker_scratch: Path | None
    restore: list
    training_seconds: float = 0.0
    # The last epoch's validation predictions and their seconds, reused by `finish`.
    predictions: np.ndarray | None = None
    predict_seconds: float | None = None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.training_data.image_shape


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
    reporter = reporter or Reporter()
    run = prepare(
        config_file, overrides, Path(out), resume=resume, overwrite=overwrite, strategy=strategy, reporter=reporter
    )
    extra = list(callbacks or [])
    if tensorboard is not None and run.is_chief:
        from dae_cli.training import tensorboard as board

        extra = board.callbacks(tensorboard, run.val_inputs, run.val_clean, run.global_batch, SAMPLE_COUNT) + extra
    fit(run, reporter, extra)
    return finish(run)


def prepare(
    config_file: str | None,
    overrides: dict[str, Any],
    out: Path,
    *,
    resume: bool,
    overwrite: bool,
    strategy: str,
    reporter: Reporter,
) -> TrainingRun:
    """Checks every setting, then loads the data and builds (or loads) the model.

    Flags, config and destination are checked before anything is created, downloaded
    or imported: a usage error leaves no trace.
    """
    if strategy not in STRATEGIES:
        raise UsageError(f"--strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    resume_state = _find_resume_state(out) if resume else None
    if resume_state:
        config = _resume_config(resume_state["config"], config_file, overrides)
    else:
        config = Config.resolve(config_file, overrides)
    _check_destination(out, resume=resume, overwrite=overwrite)
    history = list(resume_state["history"]) if resume_state else []
    initial_epoch = resume_state["epochs_done"] if resume_state else 0
    if initial_epoch > config.epochs or (initial_epoch == config.epochs and not resume_state.get("in_checkpoint")):
        raise UsageError(
            f"{out} is already trained for {initial_epoch} epochs; pass --epochs N with "
            f"N > {initial_epoch} to train further"
        )

    training_data = data.load_training_data(config, warn=reporter.message)
    image_shape = training_data.image_shape
    from dae_cli.config import check_divisible

    check_divisible(image_shape[:2], config.size_multiple)

    from dae_cli.backend import keras
    from dae_cli.noise import NoiseSpec

    distribution = make_strategy(strategy)  # first: multi-worker must precede any op
    is_chief = distribution.extended.should_checkpoint
    if is_chief:
        remove_stale_staging(out)
    keras.utils.set_random_seed(config.seed)
    keras.mixed_precision.set_global_policy(precision_policy(config.precision))
    replicas = distribution.num_replicas_in_sync
    global_batch = config.batch_size * replicas
    steps_per_epoch = math.ceil(training_data.samples_per_epoch / global_batch)

    step_group = steps_per_execution(steps_per_epoch, distribution)  # outside the scope: see there
    with distribution.scope():
        if resume_state:
            autoencoder = artifacts.load_keras_model(resume_state["keras_path"])
            optimizer = autoencoder.optimizer
            if _optimizer_settings_changed(resume_state["config"], config) or optimizer is None:
                # A new schedule over the epochs still to run, from --learning-rate.
                optimizer = _optimizer(config, (config.epochs - initial_epoch) * steps_per_epoch, replicas)
        else:
            autoencoder = _build_model(config, image_shape)
            if config.init_from:
                initialize_from(autoencoder, config.init_from, reporter.message)
            optimizer = _optimizer(config, config.epochs * steps_per_epoch, replicas)
        autoencoder.compile(
            optimizer=optimizer,
            loss=_loss(config, autoencoder, image_shape[-1]),
            jit_compile=config.jit_compile,
            steps_per_execution=step_group,
        )

    noise = NoiseSpec.from_config(config)
    train_stream = data.training_dataset(
        training_data.x_train,
        global_batch,
        noise,
        config.seed,
        patch_size=training_data.patch_size,
        noise_level_input=config.noise_level_input,
        gray_fraction=config.gray_fraction,
        kind=training_data.kind,
    )
    # For clean data, the same seeded noisy images `dae evaluate` scores (it defaults to this seed).
    val_inputs, val_clean, val_noisy, _ = data.validation_set(
        training_data, noise, config.seed, config.noise_level_input
    )

    previous_seconds = resume_state["training_seconds"] if resume_state else 0.0
    # Only the chief of a multi-worker run writes under `out`; the others keep their
    # checkpoints in a temporary directory that goes when they finish.
    worker_scratch = None if is_chief else Path(tempfile.mkdtemp(prefix="dae-worker-"))
    checkpoint = checkpoint_path(out) if is_chief else worker_scratch / "checkpoint"
    restore = []
    if strategy == "multi-worker":
        # A restarted job goes on from the last epoch: BackupAndRestore restores each
        # worker's weights and epoch, and the chief's checkpoint holds the history so far.
        resolver = distribution.cluster_resolver
        backup = out.with_name(f"{out.name}.backup-{resolver.task_type}-{resolver.task_id}")
        if is_chief and not resume_state and backup.exists() and (checkpoint / STATE).exists():
            state = json.loads((checkpoint / STATE).read_text())
            history, previous_seconds = list(state["history"]), state["training_seconds"]
        restore = [keras.callbacks.BackupAndRestore(str(backup))]
    return TrainingRun(
        out=out,
        config=config,
        strategy=strategy,
        overwrite=overwrite,
        resume=resume,
        training_data=training_data,
        distribution=distribution,
        autoencoder=autoencoder,
        replicas=replicas,
        global_batch=global_batch,
        steps_per_epoch=steps_per_epoch,
        train_stream=train_stream,
        val_noisy=val_noisy,
        val_clean=val_clean,
        val_inputs=val_inputs,
        history=history,
        initial_epoch=initial_epoch,
        previous_seconds=previous_seconds,
        is_chief=is_chief,
        checkpoint=checkpoint,
        worker_scratch=worker_scratch,
        restore=restore,
        training_seconds=previous_seconds,
    )


def _loss(config: Config, autoencoder, channels: int):
    """The configured loss; self-supervised, Neighbor2Neighbor's over it (which runs the model)."""
    if not config.self_supervised:
        return config.loss
    from dae_cli.training.neighbor2neighbor import Neighbor2NeighborLoss

    loss = Neighbor2NeighborLoss(channels=channels, squared=config.loss == "mse")
    loss.model = autoencoder
    return loss


def _build_model(config: Config, image_shape: tuple[int, int, int]):
    """The untrained autoencoder `config` describes (the one place a model is built)."""
    from dae_cli.models.networks import build_model

    autoencoder, _, _ = build_model(config, image_shape)
    return autoencoder


# The level a blind model started from a level model inherits (see `initialize_from`):
# about what the built-in `photo` needs for the camera noise of `photo-real`'s training.
FOLD_LEVEL = 15 / 255


def initialize_from(autoencoder, model: str, tell=lambda message: None) -> None:
    """Copies the weights of `model` (a directory or built-in name) into `autoencoder`.

    Both are built by `dae_cli.models.networks` from their configs, so their weights come in the
    same order. A blind model started from one that takes the noise level gets the
    level channel's weights folded into the first convolution's bias at `FOLD_LEVEL`,
    so it starts as that model given that level (a first convolution started fresh
    instead left training stuck at the identity: BENCHMARKS.md, "Issue 16"). Any other
    weight whose shape differs keeps its fresh initial value, and `tell` says how many.
    Models of other layers are refused.
    """
    from dae_cli.models.builtin_models import resolve_model

    directory = resolve_model(model)
    if not (directory / artifacts.KERAS_MODEL).exists():
        raise UsageError(f"--init-from {model}: no model with {artifacts.KERAS_MODEL} there")
    source = [np.asarray(weight) for weight in artifacts.load_keras_model(directory / artifacts.KERAS_MODEL).weights]
    target = autoencoder.weights
    if len(source) != len(target):
        raise UsageError(
            f"--init-from {model}: its layers differ from this config's ({len(source)} weights against "
            f"{len(target)}); give the same layer_filters, blocks_per_level and skips"
        )
    kernel, bias = source[0], source[1]
    folded = kernel.ndim == 4 and kernel.shape[2] == target[0].shape[2] + 1
    if folded:  # the level channel is the last input channel
        source[0] = kernel[:, :, :-1, :]
        source[1] = bias + FOLD_LEVEL * kernel[:, :, -1, :].sum(axis=(0, 1))
    fresh = 0
    for mine, theirs in zip(target, source):
        if tuple(mine.shape) == theirs.shape:
            mine.assign(theirs.astype(mine.dtype))
        else:
            fresh += 1
    tell(
        f"initialized from {directory}: {len(target) - fresh} of {len(target)} weights copied"
        + (f", its noise level input folded in at sigma {FOLD_LEVEL * 255:g}" if folded else "")
        + (f", {fresh} of other shapes start fresh" if fresh else "")
    )


def fit(run: TrainingRun, reporter: Reporter, callbacks: list) -> None:
    """Trains from `run.initial_epoch` to `config.epochs`, checkpointing every epoch.

    Every complete epoch, the last one included, is checkpointed before it is reported,
    so nothing that `finish` does can lose it. Ctrl-C or SIGTERM stops after the
    current step with a checkpoint (`TrainingInterrupted`); a NaN or infinite loss stops
    with nothing saved.
    """
    config = run.config
    if run.initial_epoch >= config.epochs:
        return  # a checkpoint of a run whose last epoch was trained: only `finish` is left
    # The recorder validates itself and keeps the last epoch's predictions for `finish`.
    # Under multi-worker, Keras validates as before and `finish` predicts again: a
    # predict inside a multi-worker fit is not tested here.
    validation = None if run.strategy == "multi-worker" else (run.val_inputs, run.val_clean, run.global_batch)
    if config.self_supervised:
        from dae_cli.training.neighbor2neighbor import gamma_schedule

        callbacks = [gamma_schedule(run.autoencoder.loss, config.epochs), *callbacks]
    recorder = _epoch_recorder(
        run.history,
        reporter,
        run.checkpoint,
        config,
        run.image_shape,
        run.training_data.source,
        run.previous_seconds,
        validation=validation,
        live=getattr(reporter, "live", False),
    )
    reporter.start(config.epochs, run.steps_per_epoch, run.initial_epoch)
    fixes = multi_worker_fixes(run.autoencoder) if run.strategy == "multi-worker" else contextlib.nullcontext()
    # Ctrl-C stops fit after the steps under way: no per-step check is needed.
    stop = lambda: setattr(run.autoencoder, "stop_training", True)  # noqa: E731
    with _interrupt_flag(stop) as interrupted, run.distribution.scope(), fixes:
        recorder.interrupted = interrupted
        try:
            run.autoencoder.fit(
                run.train_stream,
                epochs=config.epochs,
                initial_epoch=run.initial_epoch,
                steps_per_epoch=run.steps_per_epoch,
                validation_data=None if validation else (run.val_inputs, run.val_clean),
                validation_batch_size=run.global_batch,
                # The backup is written before the epoch is reported or checkpointed.
                callbacks=[*run.restore, recorder, *callbacks],
                shuffle=False,  # the tf.data stream shuffles itself
                verbose=0,
            )
        finally:
            reporter.finish()
    run.training_seconds = recorder.training_seconds
    run.predictions, run.predict_seconds = recorder.predictions, recorder.predict_seconds
    if recorder.diverged:
        raise DaeError(
            f"training diverged: the loss became NaN or infinite in epoch {len(run.history) + 1}; "
            "nothing was saved (try a lower --learning-rate)"
        )
    if interrupted():
        recorder.save_checkpoint(run.autoencoder)
        raise TrainingInterrupted(
            f"interrupted after {len(run.history)} complete epoch(s); checkpoint saved to "
            f"{run.checkpoint}; continue with 'dae train --resume --out {run.out}'"
        )


def finish(run: TrainingRun) -> TrainResult:
    """Scores the trained model and commits its directory to `run.out`.

    A failure here keeps the checkpoint of the last epoch, so `--resume` finishes the
    run without training again. At commit time `out` is checked once more: a model or
    other data that appeared there meanwhile is never replaced without `--overwrite`,
    and if the new model cannot take its place it is kept beside it, and the error
    says where.
    """
    autoencoder, config, out = run.autoencoder, run.config, run.out
    if not all(np.all(np.isfinite(w)) for w in autoencoder.get_weights()):
        raise DaeError("training produced non-finite weights; nothing was saved")
    from dae_cli.models.networks import split_autoencoder

    encoder, decoder = split_autoencoder(autoencoder)
    if run.predictions is not None:  # the last epoch's validation, of these very weights
        denoised, predict_seconds = run.predictions, run.predict_seconds
    else:  # multi-worker, or a resumed run that had only `finish` left
        predict_started = time.perf_counter()
        denoised = autoencoder.predict(run.val_inputs, batch_size=run.global_batch, verbose=0)
        predict_seconds = time.perf_counter() - predict_started
    from dae_cli.apply.metrics import quality_report
    from dae_cli.noise import NoiseSpec

    val_noisy, val_clean = run.val_noisy, run.val_clean
    kind = run.training_data.kind
    fingerprint = evaluation.noisy_fingerprint(run.training_data.x_val, NoiseSpec.from_config(config), config.seed)
    cached = _cached_noisy_metrics(out, fingerprint) if kind == "clean" else None
    metrics = {
        "val_loss": float(np.mean((denoised - val_clean) ** 2)),
        # The same figures as `dae evaluate`; the noisy input's only once per noisy set.
        # Self-supervised there is nothing clean to score against: no PSNR or SSIM.
        **(quality_report(val_clean, val_noisy, denoised, cached) if kind != "noisy" else {}),
        "noisy_fingerprint": fingerprint if kind == "clean" else None,
        "images_per_second": len(val_noisy) / predict_seconds if predict_seconds > 0 else None,
    }
    manifest = {
        "versions": artifacts.versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": config.to_dict(),
        "data_source": run.training_data.source,
        **model_shapes(config, run.image_shape, encoder),
        "value_range": [0.0, 1.0],
        "epochs_done": len(run.history),
        "training_seconds": round(run.training_seconds, 3),
        "replicas": run.replicas,
        "metrics": metrics,
    }
    samples = image_io.grid_png([val_clean[:SAMPLE_COUNT], val_noisy[:SAMPLE_COUNT], denoised[:SAMPLE_COUNT]])

    if not run.is_chief:
        shutil.rmtree(run.worker_scratch, ignore_errors=True)
        return TrainResult(out, manifest)
    with staging_directory(out) as staging:
        manifest = artifacts.write_model_dir(staging, autoencoder, encoder, decoder, manifest, run.history, samples)
        try:
            _check_destination(out, resume=run.resume, overwrite=run.overwrite, at_commit=True)
            commit_directory(staging, out, replace=run.overwrite or run.resume)
        except (DaeError, OSError) as error:
            kept = keep_aside(staging, out)
            reason = str(error) if isinstance(error, DaeError) else f"{out}: {error.strerror or error}"
            where = f"the new model is kept at {kept}" if kept else f"the trained weights are in {run.checkpoint}"
            raise DaeError(f"{reason}; {where}") from None
    shutil.rmtree(run.checkpoint, ignore_errors=True)
    return TrainResult(out, manifest)


def model_shapes(config: Config, image_shape, encoder) -> dict[str, Any]:
    """The manifest's shapes: what the model takes and what its latent is.

    A `conv` model takes any height and width divisible by `size_multiple` (its
    `image_shape` is [null, null, channels]) and its latent is a feature map of
    `latent_channels` channels at 1/`size_multiple` of the image's size.
    """
    if config.architecture == "dense":
        return {"architecture": "dense", "image_shape": list(image_shape), "latent_dim": config.latent_dim}
    return {
        "architecture": "conv",
        "image_shape": [None, None, int(image_shape[-1])],
        "latent_dim": int(encoder.output_shape[-1]),
        "size_multiple": config.size_multiple,
        "trained_on": list(image_shape),
        "noise_level_input": bool(config.noise_level_input),
    }


def _cached_noisy_metrics(out: Path, fingerprint: str) -> dict | None:
    """The noisy input's PSNR and SSIM from the model at `out`, if it scored the same noisy set."""
    try:
        metrics = artifacts.read_manifest(out)["metrics"]
    except (DaeError, KeyError, TypeError):
        return None
    if metrics.get("noisy_fingerprint") != fingerprint:
        return None
    return {key: metrics[key] for key in ("psnr_noisy", "ssim_noisy")}


def _learning_rate(config: Config, decay_steps: int, replicas: int = 1):
    """The configured rate, times the replica count with `scale_learning_rate` (the
    global batch grows with the replicas), on the configured schedule over `decay_steps`."""
    rate = config.learning_rate * (replicas if config.scale_learning_rate else 1)
    if config.lr_schedule == "cosine":
        from dae_cli.backend import keras

        return keras.optimizers.schedules.CosineDecay(rate, decay_steps=max(1, decay_steps), alpha=0.01)
    return rate


def _optimizer(config: Config, decay_steps: int, replicas: int):
    from dae_cli.backend import keras

    return keras.optimizers.Adam(_learning_rate(config, decay_steps, replicas))


def _optimizer_settings_changed(saved: dict, config: Config) -> bool:
    """Whether `--resume` was given optimizer settings (or a new epoch count) that the
    saved optimizer's schedule was not made for. Then a new schedule starts: from
    `learning_rate` over the epochs still to run. Otherwise the saved optimizer goes on
    exactly where it stopped."""
    current = config.to_dict()
    return any(saved.get(key) != current[key] for key in OPTIMIZER_KEYS)


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


def _find_resume_state(out: Path) -> dict[str, Any]:
    checkpoint = checkpoint_path(out)
    if (checkpoint / STATE).exists():
        state = json.loads((checkpoint / STATE).read_text())
        return {**state, "keras_path": checkpoint / artifacts.KERAS_MODEL, "in_checkpoint": True}
    if (out / artifacts.KERAS_MODEL).exists():
        manifest = artifacts.read_manifest(out)
        artifacts.verify_files(out, manifest, (artifacts.KERAS_MODEL,))
        return {
            "config": manifest["config"],
            "epochs_done": manifest["epochs_done"],
            "history": artifacts.read_history(out / artifacts.HISTORY),
            "training_seconds": manifest.get("training_seconds", 0.0),
            "keras_path": out / artifacts.KERAS_MODEL,
        }
    raise UsageError(f"nothing to resume: neither {checkpoint} nor a model at {out}")


def _resume_config(saved: dict, config_file: str | None, overrides: dict[str, Any]) -> Config:
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


@contextlib.contextmanager
def _interrupt_flag(on_first=lambda: None):
    """Turns the first SIGINT/SIGTERM into a flag (and calls `on_first`); a second one
    interrupts at once."""
    state = {"hit": False}
    previous = {}

    def handler(signum, frame):
        if state["hit"]:
            signal.signal(signum, previous[signum])
            raise KeyboardInterrupt
        state["hit"] = True
        on_first()

    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[signum] = signal.signal(signum, handler)
        except ValueError:  # not in the main thread
            pass
    try:
        yield lambda: state["hit"]
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _epoch_recorder(*args, validation=None, live=False):
    """An `EpochRecorder` (a Keras callback, so defined once TensorFlow is imported).

    Only with a live progress bar does it hook the end of every step, and then from
    Keras' callback thread (`async_safe`), so training never waits for it: a batch-end
    hook run in line makes Keras fetch each step's loss before the next step starts.
    """
    from dae_cli.backend import keras

    class EpochRecorder(_EpochRecorderMixin, keras.callbacks.Callback):
        pass

    class LiveEpochRecorder(EpochRecorder):
        async_safe = True

        def on_train_batch_end(self, batch, logs=None):
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(float(loss)):
                self.diverge()
            self.reporter.batch(batch + 1, logs or {})

    return (LiveEpochRecorder if live else EpochRecorder)(*args, validation=validation)


class _EpochRecorderMixin:
    """Validates, records history, reports progress, and checkpoints after every
    complete epoch; stops training when the loss is no longer finite."""

    def __init__(self, history, reporter, checkpoint, config, image_shape, source, previous_seconds, validation=None):
        super().__init__()
        self.history, self.reporter, self.checkpoint = history, reporter, checkpoint
        self.config, self.image_shape, self.source = config, image_shape, source
        self.training_seconds = previous_seconds
        self.interrupted = lambda: False
        self.diverged = False
        self.validation = validation  # (noisy, clean, batch size), or None if Keras validates
        self.predictions, self.predict_seconds = None, None

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
        self.save_checkpoint(self.model)  # every epoch, the last too, before it is reported
        self.reporter.epoch(epoch + 1, self.config.epochs, row, seconds)

    def validate(self, logs: dict) -> None:
        """val_loss into `logs`, as Keras' own validation would; keeps the predictions."""
        noisy, clean, batch_size = self.validation
        # When the steps ended, for callbacks that time them apart (the benchmark's);
        # not in `logs`, which TensorBoard would chart.
        started = self.model.dae_validation_started = time.perf_counter()
        self.predictions = None  # the old ones go before the new ones come
        self.predictions = self.model.predict(noisy, batch_size=batch_size, verbose=0)
        self.predict_seconds = time.perf_counter() - started
        error = self.predictions - clean
        # The configured loss, as Keras' evaluate reports it (config.LOSSES).
        logs["val_loss"] = float(np.mean(np.abs(error) if self.config.loss == "mae" else error**2))

    def save_checkpoint(self, model) -> None:
        state = {
            "config": self.config.to_dict(),
            "epochs_done": len(self.history),
            "history": self.history,
            "image_shape": list(self.image_shape),
            "data_source": self.source,
            "training_seconds": self.training_seconds,
        }
        with staging_directory(self.checkpoint) as staging:
            model.save(staging / artifacts.KERAS_MODEL)
            (staging / STATE).write_text(json.dumps(state, indent=2))
            commit_directory(staging, self.checkpoint)
