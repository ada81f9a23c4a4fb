"""The model a run trains, ready for `fit`: built from the config, loaded to resume, or
started from another model's weights (`initialize_from`); compiled with its loss and
its optimizer on the configured learning-rate schedule.

Call these inside the run's `strategy.scope()`, so the weights are made for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from dae_cli.config import Config
from dae_cli.errors import UsageError
from dae_cli.models import artifacts
from dae_cli.training.checkpoints import ResumeState, optimizer_settings_changed

# The level a blind model started from a level model inherits (see `initialize_from`):
# about what the built-in `photo-gaussian` needs for the camera noise of
# configs/photo-real.toml's training.
FOLD_LEVEL = 15 / 255
ESTIMATOR_PREFIX = "estimator_"  # the names of a noise estimator's layers (networks.build_noise_estimator)
# An optimizer's variables that a new schedule does not inherit (see `carry_moments`).
OWN_OPTIMIZER_STATE = ("iteration", "learning_rate")

if TYPE_CHECKING:
    import keras

    ModelAndOptimizer = tuple[keras.Model, keras.optimizers.Optimizer]


def new_model(
    config: Config, image_shape: tuple[int, int, int], steps: int, replicas: int, tell: Callable[[str], None]
) -> ModelAndOptimizer:
    """The untrained autoencoder `config` describes, or the one it starts from
    (`init_from`), and its optimizer with a schedule over `steps` steps."""
    from dae_cli.models.networks import build_model

    autoencoder, _, _ = build_model(config, image_shape)  # the one place a model is built
    if config.init_from:
        initialize_from(autoencoder, config.init_from, tell)
    return autoencoder, optimizer(config, steps, replicas)


def resumed_model(
    state: ResumeState, config: Config, image_shape: tuple[int, int, int], steps_left: int, replicas: int
) -> ModelAndOptimizer:
    """The saved autoencoder of `state`, and its optimizer: the saved one, which goes on
    where it stopped, or a new one over the `steps_left` if its settings or the precision
    changed (which keeps the saved one's moment estimates, `carry_moments`).

    A run may move to a machine where another precision is fast (`precision = "auto"`
    resolves per machine): the saved model is then rebuilt under the run's dtype policy
    with the same float32 weights (`in_run_policy`).
    """
    from dae_cli.training import neighbor2neighbor, noise_estimation  # noqa: F401 - register their losses with Keras

    saved = artifacts.load_keras_model(state.keras_path, compile=True)
    autoencoder = in_run_policy(saved, config, image_shape)
    saved_optimizer = saved.optimizer
    if saved_optimizer is None:
        return autoencoder, optimizer(config, steps_left, replicas)
    if autoencoder is not saved or optimizer_settings_changed(state.config, config):
        # A new schedule over the epochs still to run, from --learning-rate.
        fresh = optimizer(config, steps_left, replicas)
        carry_moments(saved_optimizer, fresh, autoencoder.trainable_variables)
        return autoencoder, fresh
    return autoencoder, saved_optimizer


def in_run_policy(saved: keras.Model, config: Config, image_shape: tuple[int, int, int]) -> keras.Model:
    """`saved` itself if it computes in the dtype policy this run set, else the same
    network built anew under that policy (`build_model`, which keeps the layers that must
    stay float32 so) holding `saved`'s weights. Mixed-precision layers keep their weights
    in float32, so either way round nothing is lost."""
    from dae_cli.backend import keras
    from dae_cli.models.networks import build_model

    # A mixed-precision model has float32 layers too (its outputs); any other policy of
    # a layer with weights is the one it was built under. (Input layers and nested models
    # take the policy of the process that loads them, so they do not say.)
    built_under = {layer.dtype_policy.name for layer in _layers_with_weights(saved)} - {"float32"}
    if built_under == ({keras.mixed_precision.global_policy().name} - {"float32"}):
        return saved
    rebuilt, _, _ = build_model(config, image_shape)
    rebuilt.set_weights(saved.get_weights())
    return rebuilt


def _layers_with_weights(model: keras.Model) -> list:
    """The layers that hold weights in `model` and in the models nested in it."""
    found = []
    for layer in model.layers:
        if hasattr(layer, "layers"):
            found.extend(_layers_with_weights(layer))
        elif layer.weights:
            found.append(layer)
    return found


def carry_moments(saved: keras.optimizers.Optimizer, fresh: keras.optimizers.Optimizer, weights: list) -> None:
    """Builds `fresh` for `weights` and gives it the per-weight state of `saved` (Adam's
    first and second moments), leaving its step count and learning rate its own.

    A fresh Adam's first steps move every weight by about the learning rate, whatever its
    gradient's size, which shakes a trained model. With the moments kept and the step
    count restarted, Adam's bias correction instead makes the first steps small and lets
    them grow to the full rate over the first few thousand steps (beta_2 = 0.999): a warm-up.
    """
    fresh.build(weights)
    kept = {_slot_name(variable): variable for variable in saved.variables}
    for variable in fresh.variables:
        name = _slot_name(variable)
        source = kept.get(name)
        if name not in OWN_OPTIMIZER_STATE and source is not None and source.shape == variable.shape:
            variable.assign(source)


def _slot_name(variable) -> str:
    """An optimizer variable's name without the optimizer's own ("adam_1/dense_kernel_momentum" -> "dense_kernel_momentum")."""
    return variable.path.split("/", 1)[-1]


def compile_model(
    autoencoder: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    config: Config,
    channels: int,
    steps_per_execution: int,
) -> keras.Model:
    """Compiles for training, with the configured loss and with XLA where `runtime.use_xla`
    says (`jit_compile`, or emulated bfloat16), the model `fit` runs, and returns it:
    `autoencoder` itself, or for a `noise_estimator` model the autoencoder with its level
    estimate as a second output (`noise_estimation.training_model`). That one shares
    the weights and `optimizer`; `autoencoder` is compiled with the optimizer too, so that
    what is saved of it (a checkpoint, `autoencoder.keras`) holds the optimizer's state."""
    from dae_cli.training.runtime import use_xla

    if config.noise_estimator:
        from dae_cli.training import noise_estimation

        fitted = noise_estimation.training_model(autoencoder)
        losses, weights = noise_estimation.losses(config.loss)
        autoencoder.compile(optimizer=optimizer)
    else:
        fitted, losses, weights = autoencoder, loss(config, autoencoder, channels), None
    fitted.compile(
        optimizer=optimizer,
        loss=losses,
        loss_weights=weights,
        jit_compile=use_xla(config),
        steps_per_execution=steps_per_execution,
    )
    return fitted


def loss(config: Config, autoencoder: keras.Model, channels: int) -> str | keras.losses.Loss:
    """The autoencoder's configured loss; self-supervised, Neighbor2Neighbor's over it
    (which runs the model)."""
    if not config.self_supervised:
        return config.loss
    from dae_cli.training.neighbor2neighbor import Neighbor2NeighborLoss

    neighbor_loss = Neighbor2NeighborLoss(channels=channels, squared=config.loss == "mse")
    neighbor_loss.model = autoencoder
    return neighbor_loss


def learning_rate(
    config: Config, decay_steps: int, replicas: int = 1
) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """The configured rate, times the replica count with `scale_learning_rate` (the
    global batch grows with the replicas), on the configured schedule over `decay_steps`."""
    rate = config.learning_rate * (replicas if config.scale_learning_rate else 1)
    if config.lr_schedule == "cosine":
        from dae_cli.backend import keras

        return keras.optimizers.schedules.CosineDecay(rate, decay_steps=max(1, decay_steps), alpha=0.01)
    return rate


def optimizer(config: Config, decay_steps: int, replicas: int) -> keras.optimizers.Optimizer:
    """Adam at `learning_rate`."""
    from dae_cli.backend import keras

    return keras.optimizers.Adam(learning_rate(config, decay_steps, replicas))


def initialize_from(autoencoder: keras.Model, model: str, tell: Callable[[str], None] = lambda message: None) -> None:
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
    source_weights = artifacts.load_keras_model(directory / artifacts.KERAS_MODEL).weights
    source = [np.asarray(weight) for weight in source_weights]
    target = autoencoder.weights
    if not any(weight.path.startswith(ESTIMATOR_PREFIX) for weight in source_weights):
        # A noise-estimating model started from one without an estimator: that starts fresh.
        estimator = [weight for weight in target if weight.path.startswith(ESTIMATOR_PREFIX)]
        target = [weight for weight in target if not weight.path.startswith(ESTIMATOR_PREFIX)]
        if estimator:
            tell(f"its noise estimator ({len(estimator)} weights) starts fresh")
    if len(source) != len(target):
        raise UsageError(
            f"--init-from {model}: its layers differ from this config's ({len(source)} weights against "
            f"{len(target)}); give the same layer_filters, blocks_per_level and skips"
        )
    folded = _fold_level_channel(source, target[0].shape[2])
    fresh = 0
    for mine, theirs in zip(target, source):
        theirs = _with_new_inputs(theirs, tuple(mine.shape))
        if tuple(mine.shape) == theirs.shape:
            mine.assign(theirs.astype(mine.dtype))
        else:
            fresh += 1
    tell(
        f"initialized from {directory}: {len(target) - fresh} of {len(target)} weights copied"
        + (f", its noise level input folded in at sigma {FOLD_LEVEL * 255:g}" if folded else "")
        + (f", {fresh} of other shapes start fresh" if fresh else "")
    )


def _with_new_inputs(kernel: np.ndarray, shape: tuple) -> np.ndarray:
    """A convolution kernel given more input channels (`shape`) than it has: zeros for the
    new ones, so the layer computes what it did until training finds a use for them (a
    noise estimator's level map beside the image, for one). Anything else as it is."""
    if kernel.ndim != 4 or len(shape) != 4 or kernel.shape[:2] != shape[:2] or kernel.shape[3] != shape[3]:
        return kernel
    if shape[2] <= kernel.shape[2]:
        return kernel
    return np.concatenate([kernel, np.zeros((*shape[:2], shape[2] - kernel.shape[2], shape[3]), kernel.dtype)], axis=2)


def _fold_level_channel(source: list[np.ndarray], input_channels: int) -> bool:
    """Folds the noise level channel of `source`'s first convolution into its bias at
    `FOLD_LEVEL`, in place, if it has one channel more than the target's (the level
    channel is the last input channel). Returns whether it did."""
    kernel, bias = source[0], source[1]
    if not (kernel.ndim == 4 and kernel.shape[2] == input_channels + 1):
        return False
    source[0] = kernel[:, :, :-1, :]
    source[1] = bias + FOLD_LEVEL * kernel[:, :, -1, :].sum(axis=(0, 1))
    return True
