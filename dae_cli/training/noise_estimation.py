"""Training a model that estimates its own noise level map (`noise_estimator`, CBDNet's design).

The encoder holds a small estimation network whose map the rest denoises by
(`networks.build_noise_estimator`, `networks.LevelMap`). Two things train it:
- the denoising loss, through the body that reads the map (end to end, as CBDNet);
- `EstimatorLoss`'s second term, the absolute error of the estimate against the true
  map (`noise.level_map`), so that the map means a noise std, and `--strength` and
  `--sigma` mean what they say.
For `ORACLE_SHARE` of the crops the model is given the true map instead of its estimate
(scale 0, the map as offset), as `--sigma` gives a level: the body learns what a level
means apart from the estimator's errors.

How it fits Keras' `fit`: the pipeline packs into the target what the loss needs, the
clean image, the true map and the model's input (`pack_target`); the loss unpacks it
and runs the estimator (`loss.estimator`, which `dae train` sets) on the input.
"""

from __future__ import annotations

from dae_cli.backend import keras, tf
from dae_cli.noise import level_map, with_level_controls

ORACLE_SHARE = 0.25
ESTIMATE_WEIGHT = 1.0  # the estimate's absolute error beside the image's


def estimator_pair(noisy: tf.Tensor, clean: tf.Tensor, seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(model input, packed target) for a batch of noisy crops and their clean images."""
    true_map = level_map(noisy, clean)
    oracle = tf.cast(tf.random.stateless_uniform(tf.shape(noisy)[:1], seed + 13) < ORACLE_SHARE, tf.float32)
    inputs = with_level_controls(noisy, 1.0 - oracle, true_map * oracle[:, None, None, None])
    return inputs, pack_target(clean, true_map, inputs)


def estimating_input(noisy, strength: float = 1.0):
    """What a noise-estimating model is given to denoise `noisy` by its own estimate times `strength`."""
    return with_level_controls(noisy, strength, 0.0)


def pack_target(clean, true_map, inputs):
    return tf.concat([clean, true_map, inputs], axis=-1)


@keras.saving.register_keras_serializable(package="dae")
class EstimatorLoss(keras.losses.Loss):
    """The image's error (absolute or squared) plus `ESTIMATE_WEIGHT` times the absolute
    error of the estimated level map, given the packed target.

    Args:
        channels: the image channels.
        squared: squared error for the image (`loss = "mse"`), else absolute.

    Set `estimator` (the encoder's input to its raw estimate, `estimator_model`) before
    training.
    """

    def __init__(self, channels: int = 3, squared: bool = False, name: str = "estimator_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.channels = channels
        self.squared = squared
        self.estimator = None

    def call(self, packed: tf.Tensor, output: tf.Tensor) -> tf.Tensor:
        c = self.channels
        packed = tf.cast(packed, tf.float32)
        clean, true_map, inputs = packed[..., :c], packed[..., c : 2 * c], packed[..., 2 * c :]
        difference = tf.cast(output, tf.float32) - clean
        image_error = tf.square(difference) if self.squared else tf.abs(difference)
        estimate = tf.cast(self.estimator(inputs, training=True), tf.float32)
        estimate_error = tf.abs(estimate - true_map)
        return tf.reduce_mean(image_error, axis=[1, 2, 3]) + ESTIMATE_WEIGHT * tf.reduce_mean(
            estimate_error, axis=[1, 2, 3]
        )

    def get_config(self) -> dict:
        return {"channels": self.channels, "squared": self.squared, "name": self.name}


def estimator_model(autoencoder: keras.Model) -> keras.Model:
    """The encoder's input to its raw level estimate (before `--strength` or `--sigma`), sharing the weights."""
    encoder = autoencoder.get_layer("encoder")
    return keras.Model(encoder.input, encoder.get_layer("estimator_unfold").output, name="noise_estimate")
