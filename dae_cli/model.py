"""The reference encoder, decoder and their composition, as Keras models.

The design is the Keras MNIST denoising-autoencoder example: strided `Conv2D` blocks
and a Dense latent vector; a Dense layer, `Reshape` and `Conv2DTranspose` blocks with
a sigmoid output. With `batch_norm`, each block is Conv, BatchNormalization, ReLU, as
the example's own notes suggest for deeper networks.

Example:
    >>> autoencoder, encoder, decoder = build_autoencoder((28, 28, 1), latent_dim=16)
    >>> encoder.output_shape, decoder.output_shape
    ((None, 16), (None, 28, 28, 1))
"""

from __future__ import annotations

from dae_cli.backend import keras
from dae_cli.config import check_divisible

layers = keras.layers


def _block(x, layer, filters, kernel_size, batch_norm, strides=2):
    if not batch_norm:
        return layer(filters, kernel_size, strides=strides, activation="relu", padding="same")(x)
    x = layer(filters, kernel_size, strides=strides, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.Activation("relu")(x)


def build_encoder(image_shape, latent_dim=16, layer_filters=(32, 64), kernel_size=3, batch_norm=False):
    """Image (h, w, c) -> latent vector (latent_dim,)."""
    check_divisible(tuple(image_shape[:2]), list(layer_filters))
    inputs = keras.Input(shape=tuple(image_shape), name="encoder_input")
    x = inputs
    for filters in layer_filters:
        x = _block(x, layers.Conv2D, filters, kernel_size, batch_norm)
    x = layers.Flatten()(x)
    # float32 even under mixed precision: latents are an output, and the decoder's input.
    latent = layers.Dense(latent_dim, name="latent_vector", dtype="float32")(x)
    return keras.Model(inputs, latent, name="encoder")


def build_decoder(image_shape, latent_dim=16, layer_filters=(32, 64), kernel_size=3, batch_norm=False):
    """Latent vector (latent_dim,) -> image (h, w, c) in [0, 1]."""
    height, width, channels = image_shape
    factor = 2 ** len(layer_filters)
    inner_shape = (height // factor, width // factor, layer_filters[-1])
    inputs = keras.Input(shape=(latent_dim,), name="decoder_input")
    x = layers.Dense(inner_shape[0] * inner_shape[1] * inner_shape[2])(inputs)
    x = layers.Reshape(inner_shape)(x)
    for filters in reversed(layer_filters):
        x = _block(x, layers.Conv2DTranspose, filters, kernel_size, batch_norm)
    x = layers.Conv2DTranspose(channels, kernel_size, padding="same")(x)
    # float32 output even under mixed precision, so the loss and images stay exact.
    outputs = layers.Activation("sigmoid", name="decoder_output", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="decoder")


def build_autoencoder(image_shape, latent_dim=16, layer_filters=(32, 64), kernel_size=3, batch_norm=False):
    """Returns (autoencoder, encoder, decoder); the autoencoder is decoder(encoder(x))."""
    options = dict(latent_dim=latent_dim, layer_filters=layer_filters, kernel_size=kernel_size, batch_norm=batch_norm)
    encoder = build_encoder(image_shape, **options)
    decoder = build_decoder(image_shape, **options)
    inputs = keras.Input(shape=tuple(image_shape), name="autoencoder_input")
    autoencoder = keras.Model(inputs, decoder(encoder(inputs)), name="autoencoder")
    return autoencoder, encoder, decoder


def split_autoencoder(autoencoder):
    """The encoder and decoder sub-models of a loaded autoencoder."""
    return autoencoder.get_layer("encoder"), autoencoder.get_layer("decoder")
