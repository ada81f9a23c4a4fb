"""`dae train`: build or resume the autoencoder, fit it, and save the model directory.

Training state between runs lives in `<out>.checkpoint/` beside the model directory:
`autoencoder.keras` (weights and optimizer state) and `state.json` (config, epochs
done, history). It is rewritten atomically after every epoch and when Ctrl-C or SIGTERM
stops a run, so `dae train --resume` continues to the same epoch count, and it is
removed once the finished model directory is in place. An earlier model at `<out>` is
never touched until the new one is complete.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import signal
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from dae_cli import artifacts, data, evaluation, image_io
from dae_cli.config import STRATEGIES, Config
from dae_cli.errors import DaeError, TrainingInterrupted, UsageError
from dae_cli.files import check_writable_directory, commit_directory, staging_directory

ARCHITECTURE_KEYS = (
    "architecture", "latent_dim", "layer_filters", "kernel_size", "batch_norm",
    "downsampling", "upsampling", "blocks_per_level", "skips", "residual",
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


def checkpoint_path(out: Path) -> Path:
    return out.with_name(out.name + ".checkpoint")


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
    `tensorboard` is a folder for TensorBoard logs (see `dae_cli.tensorboard`).
    """
    reporter = reporter or Reporter()
    out = Path(out)
    _check_destination(out, resume=resume, overwrite=overwrite)
    resume_state = _find_resume_state(out) if resume else None
    if resume_state:
        config = _resume_config(resume_state["config"], config_file, overrides)
    else:
        config = Config.resolve(config_file, overrides)

    training_data = data.load_training_data(config, warn=reporter.message)
    image_shape = training_data.image_shape
    from dae_cli.config import check_divisible

    check_divisible(image_shape[:2], config.size_multiple)

    from dae_cli.backend import keras, tf
    from dae_cli.model import build_model, split_autoencoder
    from dae_cli.noise import NoiseSpec

    distribution = make_strategy(strategy)  # first: multi-worker must precede any op
    keras.utils.set_random_seed(config.seed)
    keras.mixed_precision.set_global_policy(precision_policy(config.precision))
    replicas = distribution.num_replicas_in_sync
    global_batch = config.batch_size * replicas
    steps_per_epoch = math.ceil(training_data.samples_per_epoch / global_batch)

    with distribution.scope():
        if resume_state:
            autoencoder = artifacts.load_keras_model(resume_state["keras_path"])
        else:
            autoencoder, _, _ = build_model(config, image_shape)
            autoencoder.compile(
                optimizer=keras.optimizers.Adam(_learning_rate(config, steps_per_epoch, replicas)),
                loss=config.loss,
                jit_compile=config.jit_compile,
            )
    encoder, decoder = split_autoencoder(autoencoder)

    noise = NoiseSpec.from_config(config)
    train_stream = data.training_dataset(
        training_data.x_train, global_batch, noise, config.seed, patch_size=training_data.patch_size
    )
    # The same seeded noisy images `dae evaluate --seed SEED` scores, so the figures agree.
    val_noisy, val_clean = evaluation.noisy_set(training_data.x_val, noise, config.seed)

    history = list(resume_state["history"]) if resume_state else []
    initial_epoch = resume_state["epochs_done"] if resume_state else 0
    if initial_epoch >= config.epochs:
        raise UsageError(
            f"{out} is already trained for {initial_epoch} epochs; pass --epochs N with "
            f"N > {initial_epoch} to train further"
        )
    previous_seconds = resume_state["training_seconds"] if resume_state else 0.0
    # Only the chief of a multi-worker run writes under `out`; the others keep their
    # checkpoints in a temporary directory that goes when they finish.
    is_chief = distribution.extended.should_checkpoint
    worker_scratch = None if is_chief else Path(tempfile.mkdtemp(prefix="dae-worker-"))
    checkpoint = checkpoint_path(out) if is_chief else worker_scratch / "checkpoint"
    if strategy == "multi-worker":
        # A restarted job goes on from the last epoch: BackupAndRestore restores each
        # worker's weights and epoch, and the chief's checkpoint holds the history so far.
        resolver = distribution.cluster_resolver
        backup = out.with_name(f"{out.name}.backup-{resolver.task_type}-{resolver.task_id}")
        if is_chief and not resume_state and backup.exists() and (checkpoint / STATE).exists():
            state = json.loads((checkpoint / STATE).read_text())
            history, previous_seconds = list(state["history"]), state["training_seconds"]
        restore = [keras.callbacks.BackupAndRestore(str(backup))]
    else:
        restore = []
    recorder = _epoch_recorder(history, reporter, checkpoint, config, image_shape, training_data.source, previous_seconds)
    if tensorboard is not None and is_chief:
        from dae_cli import tensorboard as board

        logging = board.callbacks(tensorboard, val_noisy, val_clean, global_batch, SAMPLE_COUNT)
    else:
        logging = []

    reporter.start(config.epochs, steps_per_epoch, initial_epoch)
    fixes = _multi_worker_fixes(autoencoder) if strategy == "multi-worker" else contextlib.nullcontext()
    with _interrupt_flag() as interrupted, distribution.scope(), fixes:
        recorder.interrupted = interrupted
        try:
            autoencoder.fit(
                train_stream,
                epochs=config.epochs,
                initial_epoch=initial_epoch,
                steps_per_epoch=steps_per_epoch,
                validation_data=(val_noisy, val_clean),
                validation_batch_size=global_batch,
                # The backup is written before the epoch is reported or checkpointed.
                callbacks=[*restore, recorder, *logging, *(callbacks or [])],
                shuffle=False,  # the tf.data stream shuffles itself
                verbose=0,
            )
        finally:
            reporter.finish()
    if recorder.diverged:
        raise DaeError(
            f"training diverged: the loss became NaN or infinite in epoch {len(history) + 1}; "
            "nothing was saved (try a lower --learning-rate)"
        )
    if interrupted():
        recorder.save_checkpoint(autoencoder)
        raise TrainingInterrupted(
            f"interrupted after {len(history)} complete epoch(s); checkpoint saved to "
            f"{checkpoint}; continue with 'dae train --resume --out {out}'"
        )
    if not all(np.all(np.isfinite(w)) for w in autoencoder.get_weights()):
        raise DaeError("training produced non-finite weights; nothing was saved")

    predict_started = time.perf_counter()
    denoised = autoencoder.predict(val_noisy, batch_size=global_batch, verbose=0)
    predict_seconds = time.perf_counter() - predict_started
    from dae_cli.metrics import quality_report

    metrics = {
        "val_loss": float(np.mean((denoised - val_clean) ** 2)),
        **quality_report(val_clean, val_noisy, denoised),  # the same figures as `dae evaluate`
        "images_per_second": len(val_noisy) / predict_seconds if predict_seconds > 0 else None,
    }
    manifest = {
        "versions": artifacts.versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": config.to_dict(),
        "data_source": training_data.source,
        **model_shapes(config, image_shape, encoder),
        "value_range": [0.0, 1.0],
        "epochs_done": len(history),
        "training_seconds": round(recorder.training_seconds, 3),
        "replicas": replicas,
        "metrics": metrics,
    }
    samples = image_io.grid_png([val_clean[:SAMPLE_COUNT], val_noisy[:SAMPLE_COUNT], denoised[:SAMPLE_COUNT]])

    if not is_chief:
        shutil.rmtree(worker_scratch, ignore_errors=True)
        return TrainResult(out, manifest)
    with staging_directory(out) as staging:
        manifest = artifacts.write_model_dir(staging, autoencoder, encoder, decoder, manifest, history, samples)
        commit_directory(staging, out)
    shutil.rmtree(checkpoint, ignore_errors=True)
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
    }


def make_strategy(name: str):
    """The `tf.distribute` strategy for `--strategy`."""
    from dae_cli.backend import tf

    if name == "one":
        return tf.distribute.get_strategy()
    if name == "multi-worker":
        # Configured from TF_CONFIG; must come before anything initialises TensorFlow.
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored":
        devices = gpus or tf.config.list_logical_devices("CPU")  # see DAE_CPU_DEVICES
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    if name == "auto":
        return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    raise UsageError(f"--strategy must be one of {', '.join(STRATEGIES)}, got {name!r}")


def precision_policy(name: str) -> str:
    """The Keras dtype policy for `precision`; `auto` is bfloat16 mixed precision where
    the CPU computes bfloat16 natively (AVX512-BF16 or AMX, used by oneDNN) and no GPU
    is visible, else float32 (emulated bfloat16 is slower than float32)."""
    if name != "auto":
        return name
    from dae_cli.backend import tf

    if tf.config.list_physical_devices("GPU"):
        return "float32"
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "float32"
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
    return "mixed_bfloat16" if {"avx512_bf16", "amx_bf16"} & set(flags) else "float32"


@contextlib.contextmanager
def _multi_worker_fixes(model):
    """Works around two Keras 3 bugs that break `fit` under MultiWorkerMirroredStrategy.

    Upstream: https://github.com/keras-team/keras/issues/20585 (open; every Keras 3
    release is affected, so there is no working version to pin).
    1. `fit` reduces a per-replica data batch with `strategy.reduce` to build the model
       symbolically, which fails across workers. The model is already built, so the
       strategy is left for `fit` to find from the enclosing `strategy.scope()`.
    2. Step outputs (scalar losses) are reduced with `axis=0`, invalid for scalars; they
       are reduced with `axis=None` instead.
    Both touch private Keras code, so they are applied only for `--strategy multi-worker`,
    only during `fit`, and undone after.
    """
    from keras.src.backend.tensorflow import trainer

    original_reduce = trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        def reduce_one(value):
            local = strategy.experimental_local_results(value) if trainer._is_per_replica_instance(value) else [value]
            if all(getattr(t, "shape", None) is not None and t.shape.rank == 0 for t in local):
                return strategy.reduce("MEAN", value, axis=None)
            return original_reduce(value, strategy, reduction)

        from dae_cli.backend import tf

        return tf.nest.map_structure(reduce_one, values)

    saved_strategy = model._distribute_strategy
    model._distribute_strategy = None
    trainer.reduce_per_replica = reduce_per_replica
    try:
        yield
    finally:
        trainer.reduce_per_replica = original_reduce
        model._distribute_strategy = saved_strategy


def _learning_rate(config: Config, steps_per_epoch: int, replicas: int = 1):
    """The configured rate, times the replica count with `scale_learning_rate` (the
    global batch grows with the replicas), on the configured schedule."""
    rate = config.learning_rate * (replicas if config.scale_learning_rate else 1)
    if config.lr_schedule == "cosine":
        from dae_cli.backend import keras

        return keras.optimizers.schedules.CosineDecay(rate, decay_steps=config.epochs * steps_per_epoch, alpha=0.01)
    return rate


def _check_destination(out: Path, resume: bool, overwrite: bool) -> None:
    check_writable_directory(out.parent)  # before hours of training, not after
    if resume or not out.exists():
        return
    if not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a model directory")
    is_model = (out / artifacts.MANIFEST).exists()
    if not is_model and any(out.iterdir()):
        raise UsageError(f"--out {out} is a non-empty directory that is not a dae model; refusing to replace it")
    if is_model and not overwrite:
        raise UsageError(f"model directory {out} exists; pass --overwrite to replace it or --resume to continue it")


def _find_resume_state(out: Path) -> dict[str, Any]:
    checkpoint = checkpoint_path(out)
    if (checkpoint / STATE).exists():
        state = json.loads((checkpoint / STATE).read_text())
        return {**state, "keras_path": checkpoint / artifacts.KERAS_MODEL}
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
    base = Config.from_dict(saved, source="saved config")
    changes = Config.from_toml(config_file).to_dict() if config_file else {}
    changes.update({k: v for k, v in overrides.items() if v is not None})
    changed_architecture = [k for k in ARCHITECTURE_KEYS if k in changes and changes[k] != saved[k]]
    if changed_architecture:
        raise UsageError(f"--resume cannot change the architecture ({', '.join(changed_architecture)})")
    config = Config.from_dict({**base.to_dict(), **changes}, source="flags")
    config.validate()
    return config


@contextlib.contextmanager
def _interrupt_flag():
    """Turns the first SIGINT/SIGTERM into a flag; a second one interrupts at once."""
    state = {"hit": False}
    previous = {}

    def handler(signum, frame):
        if state["hit"]:
            signal.signal(signum, previous[signum])
            raise KeyboardInterrupt
        state["hit"] = True

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


def _epoch_recorder(*args):
    """An `EpochRecorder` (a Keras callback, so defined once TensorFlow is imported)."""
    from dae_cli.backend import keras

    class EpochRecorder(_EpochRecorderMixin, keras.callbacks.Callback):
        pass

    return EpochRecorder(*args)


class _EpochRecorderMixin:
    """Records history, reports progress, and checkpoints after every complete epoch."""

    def __init__(self, history, reporter, checkpoint, config, image_shape, source, previous_seconds):
        super().__init__()
        self.history, self.reporter, self.checkpoint = history, reporter, checkpoint
        self.config, self.image_shape, self.source = config, image_shape, source
        self.training_seconds = previous_seconds
        self.interrupted = lambda: False
        self.diverged = False

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            # What keras.callbacks.TerminateOnNaN does, minus its print to stdout.
            self.diverged = True
            self.model.stop_training = True
        if self.interrupted():
            self.model.stop_training = True
        self.reporter.batch(batch + 1, logs or {})

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self.started
        if self.interrupted() or self.diverged:
            return  # an epoch cut short is not recorded, and is run again on resume
        logs = logs or {}
        self.training_seconds += seconds
        row = {"epoch": epoch + 1, "loss": float(logs.get("loss", math.nan)), "val_loss": float(logs.get("val_loss", math.nan)), "seconds": round(seconds, 3)}
        self.history.append(row)
        if epoch + 1 < self.config.epochs:
            self.save_checkpoint(self.model)  # before the epoch is reported as done
        self.reporter.epoch(epoch + 1, self.config.epochs, row, seconds)

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
