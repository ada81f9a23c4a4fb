"""Training a model that estimates its own noise level map (`noise_estimator`, CBDNet's design).

The encoder holds a small estimation network whose map the rest denoises by
(`networks.build_noise_estimator`, `networks.LevelMap`). Two things train it:
- the denoising loss, through the body that reads the map (end to end, as CBDNet);
- the absolute error of the estimate against the true map (`noise.level_map`), weighted
  by `ESTIMATE_WEIGHT`, so that the map means a noise std, and `--strength` and
  `--sigma` mean what they say.
For `ORACLE_SHARE` of the crops the model is given the true map instead of its estimate
(scale 0, the map as offset), as `--sigma` gives a level: the body learns what a level
means apart from the estimator's errors.

How it fits Keras' `fit`: training fits `training_model`, the autoencoder with its raw
estimate as a second output (the same layers and weights), so each step runs the
estimator once, and Keras adds the two outputs' losses (`losses`). The pipeline gives
each batch its targets by output (`estimator_pair`). The autoencoder itself, which is
what is saved, validated and shipped, keeps its one output.
"""

from __future__ import annotations

from dae_cli.backend import keras, tf
from dae_cli.models.networks import ESTIMATE_LAYER
from dae_cli.noise import level_map, with_level_controls

ORACLE_SHARE = 0.25
ESTIMATE_WEIGHT = 1.0  # the estimate's absolute error beside the image's
DENOISED, ESTIMATE = "denoised", "estimate"  # the outputs of `training_model`


def estimator_pair(noisy: tf.Tensor, clean: tf.Tensor, seed: tf.Tensor) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """(model input, targets of `training_model`'s outputs) for a batch of noisy crops and their clean images."""
    true_map = level_map(noisy, clean)
    oracle = tf.cast(tf.random.stateless_uniform(tf.shape(noisy)[:1], seed + 13) < ORACLE_SHARE, tf.float32)
    inputs = with_level_controls(noisy, 1.0 - oracle, true_map * oracle[:, None, None, None])
    return inputs, {DENOISED: clean, ESTIMATE: true_map}


def estimating_input(noisy, strength: float = 1.0):
    """What a noise-estimating model is given to denoise `noisy` by its own estimate times `strength`."""
    return with_level_controls(noisy, strength, 0.0)


def training_model(autoencoder: keras.Model) -> keras.Model:
    """The model `dae train` fits: `autoencoder`'s layers, its output as `DENOISED` and
    the encoder's raw level estimate (before `--strength` or `--sigma`) as `ESTIMATE`.

    It shares every weight with `autoencoder`, in the same order, so an optimizer built
    for either serves both: `autoencoder` is saved with the optimizer this model trains.
    """
    encoder, decoder = autoencoder.get_layer("encoder"), autoencoder.get_layer("decoder")
    latent_and_estimate = keras.Model(
        encoder.input, [encoder.output, encoder.get_layer(ESTIMATE_LAYER).output], name="encoder_and_estimate"
    )
    inputs = keras.Input(shape=autoencoder.input_shape[1:], name="autoencoder_input")
    latent, estimate = latent_and_estimate(inputs)
    return keras.Model(inputs, {DENOISED: decoder(latent), ESTIMATE: estimate}, name="autoencoder_and_estimate")


def losses(image_loss: str) -> tuple[dict[str, str], dict[str, float]]:
    """(losses, loss weights) of `training_model`'s outputs: `image_loss` ("mae" or "mse")
    for the image, plus `ESTIMATE_WEIGHT` times the estimate's absolute error."""
    return {DENOISED: image_loss, ESTIMATE: "mae"}, {DENOISED: 1.0, ESTIMATE: ESTIMATE_WEIGHT}


def estimator_model(autoencoder: keras.Model) -> keras.Model:
    """The encoder's input to its raw level estimate (before `--strength` or `--sigma`), sharing the weights."""
    encoder = autoencoder.get_layer("encoder")
    return keras.Model(encoder.input, encoder.get_layer(ESTIMATE_LAYER).output, name="noise_estimate")


@keras.saving.register_keras_serializable(package="dae", name="EstimatorLoss")
class FormerEstimatorLoss(keras.losses.Loss):
    """The loss noise-estimating models were compiled with until training ran the
    estimator once a step (this loss ran it a second time). Models and checkpoints saved
    then name it in their compile config, so it stays registered under its name: they
    load with their optimizer's state, and `dae train --resume` goes on from them. It
    never trains: resuming compiles `training_model` with `losses` instead.
    """

    def __init__(self, channels: int = 3, squared: bool = False, name: str = "estimator_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.channels, self.squared = channels, squared

    def call(self, y_true, y_pred):
        raise TypeError("this loss only reads older saved models; training compiles noise_estimation.losses")

    def get_config(self) -> dict:
        return {"channels": self.channels, "squared": self.squared, "name": self.name}
