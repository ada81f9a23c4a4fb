"""Training from noisy images alone: Neighbor2Neighbor (Huang et al., CVPR 2021).

`dae train --self-supervised --data NOISY_DIR` needs no clean image. From each noisy
crop `y` a random neighbour sub-sampler makes two half-size images: in every 2x2 cell
of `y` one pixel goes to `g1(y)` and one of its horizontal or vertical neighbours to
`g2(y)`. Their noise is independent while their pictures nearly agree, so a network
`f` trained to map `g1(y)` to `g2(y)` learns to denoise (as Noise2Noise does with two
shots). The regulariser makes up for the pictures' small difference:

    loss = |f(g1(y)) - g2(y)|^2 + gamma * |f(g1(y)) - g2(y) - (g1(f(y)) - g2(f(y)))|^2

with `f(y)` computed without gradient, `gamma` rising from 0 to `GAMMA` over the
training (the authors' schedule). The same model then denoises whole images.

Chosen over blind-spot methods (Noise2Void and its kin) because the network sees every
input pixel, so the unchanged `dae` architectures train on it, and because its authors
report it within 0.3 dB of clean-target training at sigma 25, where blind-spot methods
lose 1-2 dB; our own measured gap is in BENCHMARKS.md ("Issue 16").

How it fits Keras' `fit`: the pipeline gives the model `g1(y)` as its input and packs
what the loss needs into the target, at the half size: `y` folded 2x2 into channels
(`space_to_depth`) and the two one-hot choices of each cell. `Neighbor2NeighborLoss`
unpacks it, runs the model on `y` for the regulariser, and needs the model itself
(`loss.model`), which `dae train` sets.
"""

from __future__ import annotations

from dae_cli.backend import keras, tf

GAMMA = 2.0  # the regulariser's final weight (the authors' setting)
CELL = 4  # pixels in a 2x2 cell, in space_to_depth's order: (0,0), (0,1), (1,0), (1,1)


def neighbor_pair(noisy: tf.Tensor, seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(g1(y), packed target) for a batch of noisy images `y` (n, h, w, c), h and w even.

    The packed target, (n, h/2, w/2, 4c + 8), holds `y` folded 2x2 into channels and the
    one-hot choice of g1's and of g2's pixel in each cell.
    """
    channels = noisy.shape[-1]
    folded = tf.nn.space_to_depth(noisy, 2)  # (n, h/2, w/2, 4c), cell pixel k in channels k*c..
    cells = tf.shape(folded)[:3]
    first = tf.random.stateless_uniform(cells, seed, 0, CELL, dtype=tf.int32)
    # A horizontal neighbour flips bit 0 of the cell index, a vertical one bit 1.
    which_neighbour = tf.random.stateless_uniform(cells, seed + 1, 1, 3, dtype=tf.int32)
    second = tf.bitwise.bitwise_xor(first, which_neighbour)
    choose_first, choose_second = tf.one_hot(first, CELL), tf.one_hot(second, CELL)
    sub_first = _pick(folded, choose_first, channels)
    return sub_first, tf.concat([folded, choose_first, choose_second], axis=-1)


def second_image(packed: tf.Tensor, channels: int) -> tf.Tensor:
    """g2(y) from a packed target: what the model's output of g1(y) is compared with."""
    folded, _, choose_second = _unpack(packed, channels)
    return _pick(folded, choose_second, channels)


def _unpack(packed, channels: int):
    folded = packed[..., : CELL * channels]
    return folded, packed[..., CELL * channels : CELL * channels + CELL], packed[..., CELL * channels + CELL :]


def _pick(folded, choice, channels: int):
    """The pixel `choice` (one-hot over the cell) of each 2x2 cell of a folded image."""
    shape = tf.concat([tf.shape(folded)[:3], [CELL, channels]], axis=0)
    return tf.reduce_sum(tf.reshape(folded, shape) * choice[..., None], axis=3)


@keras.saving.register_keras_serializable(package="dae")
class Neighbor2NeighborLoss(keras.losses.Loss):
    """The Neighbor2Neighbor loss of a model's output for g1(y), given the packed target.

    Args:
        channels: the image channels.
        squared: squared error (the method's own, which its theory needs) or, if False,
            absolute error.
        gamma: the regulariser's weight, a `keras.Variable` that `GammaSchedule` raises.

    Set `model` (the model being trained) before training: the regulariser runs it on y.
    """

    def __init__(self, channels: int = 1, squared: bool = True, name: str = "neighbor2neighbor", **kwargs):
        super().__init__(name=name, **kwargs)
        self.channels = channels
        self.squared = squared
        self.model = None
        self.gamma = keras.Variable(0.0, trainable=False, name="n2n_gamma", dtype="float32")

    def call(self, packed: tf.Tensor, output: tf.Tensor) -> tf.Tensor:
        channels = self.channels
        packed = tf.cast(packed, tf.float32)
        output = tf.cast(output, tf.float32)
        folded, choose_first, choose_second = _unpack(packed, channels)
        difference = output - _pick(folded, choose_second, channels)
        noisy = tf.nn.depth_to_space(folded, 2)
        denoised = tf.stop_gradient(tf.cast(self.model(noisy, training=False), tf.float32))
        denoised_folded = tf.nn.space_to_depth(denoised, 2)
        gap = _pick(denoised_folded, choose_first, channels) - _pick(denoised_folded, choose_second, channels)
        error = tf.square if self.squared else tf.abs

        def per_image(x):
            return tf.reduce_mean(error(x), axis=[1, 2, 3])

        return per_image(difference) + tf.cast(self.gamma, tf.float32) * per_image(difference - gap)

    def get_config(self) -> dict:
        return {"channels": self.channels, "squared": self.squared, "name": self.name}


def gamma_schedule(loss: Neighbor2NeighborLoss, epochs: int) -> keras.callbacks.Callback:
    """A Keras callback that sets the regulariser's weight at each epoch's start:
    GAMMA * epoch / epochs, from 0 at the first epoch (resumed runs included)."""

    class GammaSchedule(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            loss.gamma.assign(GAMMA * epoch / max(1, epochs))

    return GammaSchedule()
