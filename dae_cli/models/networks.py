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

import numpy as np

from dae_cli.backend import keras
from dae_cli.config import check_divisible

layers = keras.layers


def _block(x, layer, filters, kernel_size, batch_norm, strides=2):
    if not batch_norm:
        return layer(filters, kernel_size, strides=strides, activation="relu", padding="same")(x)
    x = layer(filters, kernel_size, strides=strides, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.Activation("relu")(x)


def build_encoder(
    image_shape, latent_dim=16, layer_filters=(32, 64), kernel_size=3, batch_norm=False, downsampling="strided"
):
    """Image (h, w, c) -> latent vector (latent_dim,).

    `downsampling="maxpool"` halves with a stride-1 convolution and `MaxPooling2D`, the
    example's "faster but not as good" alternative to strided convolutions.
    """
    check_divisible(tuple(image_shape[:2]), 2 ** len(layer_filters))
    inputs = keras.Input(shape=tuple(image_shape), name="encoder_input")
    x = inputs
    for filters in layer_filters:
        if downsampling == "maxpool":
            x = layers.MaxPooling2D(2)(_block(x, layers.Conv2D, filters, kernel_size, batch_norm, strides=1))
        else:
            x = _block(x, layers.Conv2D, filters, kernel_size, batch_norm)
    x = layers.Flatten()(x)
    # float32 even under mixed precision: latents are an output, and the decoder's input.
    latent = layers.Dense(latent_dim, name="latent_vector", dtype="float32")(x)
    return keras.Model(inputs, latent, name="encoder")


def build_decoder(
    image_shape, latent_dim=16, layer_filters=(32, 64), kernel_size=3, batch_norm=False, upsampling="transpose"
):
    """Latent vector (latent_dim,) -> image (h, w, c) in [0, 1].

    `upsampling="upsample"` doubles with `UpSampling2D` and a stride-1 convolution, the
    example's alternative to strided `Conv2DTranspose`.
    """
    height, width, channels = image_shape
    factor = 2 ** len(layer_filters)
    inner_shape = (height // factor, width // factor, layer_filters[-1])
    inputs = keras.Input(shape=(latent_dim,), name="decoder_input")
    x = layers.Dense(inner_shape[0] * inner_shape[1] * inner_shape[2])(inputs)
    x = layers.Reshape(inner_shape)(x)
    for filters in reversed(layer_filters):
        if upsampling == "upsample":
            x = _block(layers.UpSampling2D(2)(x), layers.Conv2D, filters, kernel_size, batch_norm, strides=1)
        else:
            x = _block(x, layers.Conv2DTranspose, filters, kernel_size, batch_norm)
    x = layers.Conv2DTranspose(channels, kernel_size, padding="same")(x)
    # float32 output even under mixed precision, so the loss and images stay exact.
    outputs = layers.Activation("sigmoid", name="decoder_output", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="decoder")


def build_autoencoder(
    image_shape,
    latent_dim=16,
    layer_filters=(32, 64),
    kernel_size=3,
    batch_norm=False,
    downsampling="strided",
    upsampling="transpose",
):
    """Returns (autoencoder, encoder, decoder) of the reference design; the autoencoder is decoder(encoder(x))."""
    options = dict(latent_dim=latent_dim, layer_filters=layer_filters, kernel_size=kernel_size, batch_norm=batch_norm)
    encoder = build_encoder(image_shape, downsampling=downsampling, **options)
    decoder = build_decoder(image_shape, upsampling=upsampling, **options)
    return compose(encoder, decoder, image_shape), encoder, decoder


def compose(encoder, decoder, image_shape):
    """`Model(inputs, decoder(encoder(inputs)))`: the autoencoder of two separate models."""
    inputs = keras.Input(shape=tuple(image_shape), name="autoencoder_input")
    return keras.Model(inputs, decoder(encoder(inputs)), name="autoencoder")


def build_model(config, image_shape):
    """Returns (autoencoder, encoder, decoder) for `config.architecture`.

    `dense` is the reference design for `image_shape`; `conv` takes any height and
    width (divisible by `config.size_multiple`; `dae` pads by reflection to it).
    """
    shared = dict(
        layer_filters=list(config.layer_filters), kernel_size=config.kernel_size, batch_norm=config.batch_norm
    )
    if config.architecture == "dense":
        return build_autoencoder(
            image_shape,
            latent_dim=config.latent_dim,
            downsampling=config.downsampling,
            upsampling=config.upsampling,
            **shared,
        )
    channels = image_shape[-1]
    conv = dict(blocks=config.blocks_per_level, skips=config.skips, residual=config.residual, **shared)
    level = bool(config.noise_level_input)
    estimator = bool(config.noise_estimator)
    encoder = build_conv_encoder(
        channels, downsampling=config.downsampling, noise_level_input=level, noise_estimator=estimator, **conv
    )
    decoder = build_conv_decoder(channels, upsampling=config.upsampling, noise_estimator=estimator, **conv)
    return compose(encoder, decoder, (None, None, encoder_channels(channels, level, estimator))), encoder, decoder


def encoder_channels(channels: int, noise_level_input: bool = False, noise_estimator: bool = False) -> int:
    """The channels a conv encoder takes: the image's, then the level channel of a
    `noise_level_input` model, or the scale and offset channels of a `noise_estimator`
    model (see `LevelMap`)."""
    if noise_estimator:
        return 2 * channels + 1
    return channels + bool(noise_level_input)


# --- The fully convolutional architecture (`architecture = "conv"`) -------------------


class _BlockRearrange(layers.Layer):
    """A layer that moves `block` x `block` squares of pixels between space and channels."""

    def __init__(self, block: int, **kwargs):
        super().__init__(**kwargs)
        self.block = block

    def get_config(self):
        return {**super().get_config(), "block": self.block}


@keras.saving.register_keras_serializable(package="dae")
class SpaceToDepth(_BlockRearrange):
    """Folds each `block` x `block` square of pixels into channels: (h, w, c) -> (h/b, w/b, c*b*b).

    The conv encoder uses it to pack its feature maps of every scale into one latent
    tensor at the deepest scale; `DepthToSpace` undoes it exactly in the decoder.
    """

    def call(self, x):
        ops, b = keras.ops, self.block
        shape = ops.shape(x)
        h, w, c = shape[1], shape[2], x.shape[-1]
        x = ops.reshape(x, (-1, h // b, b, w // b, b, c))
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
        return ops.reshape(x, (-1, h // b, w // b, b * b * c))

    def compute_output_shape(self, shape):
        b = self.block
        return (
            shape[0],
            None if shape[1] is None else shape[1] // b,
            None if shape[2] is None else shape[2] // b,
            shape[3] * b * b,
        )


@keras.saving.register_keras_serializable(package="dae")
class SliceChannels(layers.Layer):
    """Channels `start` to `stop` of a feature map: the decoder's view of one latent part."""

    def __init__(self, start: int, stop: int, **kwargs):
        super().__init__(**kwargs)
        self.start, self.stop = start, stop

    def call(self, x):
        return x[..., self.start : self.stop]

    def compute_output_shape(self, shape):
        return (*shape[:-1], self.stop - self.start)

    def get_config(self):
        return {**super().get_config(), "start": self.start, "stop": self.stop}


@keras.saving.register_keras_serializable(package="dae")
class DepthToSpace(_BlockRearrange):
    """The inverse of `SpaceToDepth`: (h, w, c*b*b) -> (h*b, w*b, c)."""

    def call(self, x):
        ops, b = keras.ops, self.block
        shape = ops.shape(x)
        h, w, c = shape[1], shape[2], x.shape[-1] // (b * b)
        x = ops.reshape(x, (-1, h, w, b, b, c))
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
        return ops.reshape(x, (-1, h * b, w * b, c))

    def compute_output_shape(self, shape):
        b = self.block
        return (
            shape[0],
            None if shape[1] is None else shape[1] * b,
            None if shape[2] is None else shape[2] * b,
            shape[3] // (b * b),
        )


@keras.saving.register_keras_serializable(package="dae")
class LevelMap(layers.Layer):
    """The level map a noise-estimating encoder denoises by: `scale * estimate + offset`.

    The encoder's input is the image's `channels`, then a scale channel and `channels`
    offset channels, which say how to use the estimate: scale 1 and offset 0 take it as
    it is (`dae denoise`), scale S scales it (`--strength S`), scale 0 and an offset
    replace it (`--sigma`, or the true map while training). Called on
    `[encoder_input, estimate]`.
    """

    def __init__(self, channels: int, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels

    def call(self, inputs):
        encoder_input, estimate = inputs
        c = self.channels
        scale, offset = encoder_input[..., c : c + 1], encoder_input[..., c + 1 : 2 * c + 1]
        return scale * estimate + offset

    def compute_output_shape(self, shapes):
        return shapes[1]

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


ESTIMATOR_FILTERS = 64
ESTIMATOR_CONVS = 4
ESTIMATOR_FOLD = 4  # the estimator works on 4x4 squares folded into channels: 1/16 of the pixels
ESTIMATE_LAYER = "estimator_unfold"  # the estimator's last layer: its raw level map, before --strength or --sigma
# The estimate starts near this level everywhere (about 5/255): its last convolution starts
# with small weights (not zeros, which would hold back the layers before it). A ReLU keeps
# it at least 0 and, unlike a softplus started low, moves it at the learning rate's pace
# from the first step (a softplus at -4 has a slope of 0.018).
ESTIMATOR_START = 0.02
ESTIMATOR_LAST_STD = 0.001


def build_noise_estimator(image, channels: int):
    """The noise estimation network (CBDNet's, at 1/16 of the pixels): the image and its
    high-pass energy (`HighPassEnergy`), their 4x4 squares folded into channels,
    `ESTIMATOR_CONVS` convolutions, a ReLU (a level is never negative), and linear
    upsampling back to the image: a smooth (h, w, channels) map of the noise std on
    [0, 1]. Its layers are named `estimator_*`."""
    energy = HighPassEnergy(name="estimator_energy")(image)
    x = layers.Concatenate(name="estimator_input")([image, energy])
    x = SpaceToDepth(ESTIMATOR_FOLD, name="estimator_fold")(x)
    for index in range(ESTIMATOR_CONVS):
        x = layers.Conv2D(ESTIMATOR_FILTERS, 3, padding="same", activation="relu", name=f"estimator_conv{index}")(x)
    x = layers.Conv2D(
        channels,
        3,
        padding="same",
        activation="relu",
        kernel_initializer=keras.initializers.RandomNormal(stddev=ESTIMATOR_LAST_STD),
        bias_initializer=keras.initializers.Constant(ESTIMATOR_START),
        name="estimator_level",
    )(x)
    return SmoothUpsampling(ESTIMATOR_FOLD, name=ESTIMATE_LAYER, dtype="float32")(x)


@keras.saving.register_keras_serializable(package="dae")
class HighPassEnergy(layers.Layer):
    """The square of each channel's finest detail: a fixed 3x3 Laplacian, scaled so that
    white noise of std s gives s^2 on average. Flat areas show their noise alone, which
    is where classical estimators read it (Donoho's finest wavelet band, Immerkaer's
    Laplacian); the network learns to discount the picture's own edges and texture."""

    def call(self, x):
        ops = keras.ops
        laplacian = ops.convert_to_tensor([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]]) / np.sqrt(20.0)
        kernel = ops.tile(ops.reshape(ops.cast(laplacian, x.dtype), (3, 3, 1, 1)), (1, 1, x.shape[-1], 1))
        detail = ops.depthwise_conv(x, kernel, strides=1, padding="same")
        return ops.square(detail)


@keras.saving.register_keras_serializable(package="dae")
class SmoothUpsampling(layers.Layer):
    """Upsampling by `factor`: each pixel repeated, then a `factor` x `factor` box average,
    which is linear interpolation between the pixels' centres.

    Keras' bilinear `UpSampling2D` needs the height and width known when a model is
    saved; this works for any size, as the conv models take.
    """

    def __init__(self, factor: int, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        ops, f = keras.ops, self.factor
        x = ops.repeat(ops.repeat(x, f, axis=1), f, axis=2)
        return ops.average_pool(x, f, strides=1, padding="same")

    def compute_output_shape(self, shape):
        f = self.factor
        return (shape[0], *(None if d is None else d * f for d in shape[1:3]), shape[3])

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def _conv_block(x, filters, kernel_size, batch_norm, count):
    for _ in range(count):
        x = _block(x, layers.Conv2D, filters, kernel_size, batch_norm, strides=1)
    return x


def _downsample(x, filters, kernel_size, batch_norm, downsampling):
    if downsampling == "maxpool":
        return layers.MaxPooling2D(2)(x)
    return _block(x, layers.Conv2D, filters, kernel_size, batch_norm)


def _upsample(x, filters, kernel_size, batch_norm, upsampling):
    if upsampling == "upsample":
        return layers.UpSampling2D(2)(x)
    return _block(x, layers.Conv2DTranspose, filters, kernel_size, batch_norm)


def conv_latent_channels(channels, layer_filters, skips=True, residual=True, noise_estimator=False):
    """Channels of the conv encoder's latent: every scale folded to the deepest one."""
    depth = len(layer_filters) - 1
    total = layer_filters[-1] + (channels * 4**depth if noise_estimator else 0)
    if skips:
        total += sum(f * 4 ** (depth - level) for level, f in enumerate(layer_filters[:-1]))
    if residual:
        total += channels * 4**depth
    return total


def build_conv_encoder(
    channels,
    layer_filters=(64, 128, 256),
    kernel_size=3,
    batch_norm=False,
    blocks=2,
    downsampling="strided",
    skips=True,
    residual=True,
    noise_level_input=False,
    noise_estimator=False,
):
    """Image (h, w, c), any h and w divisible by 2^(levels-1) -> one latent feature map.

    With `noise_level_input` the input has one more channel, the noise level map (each
    pixel the noise std on [0, 1]), as FFDNet takes it; the latent's copy of the input
    (`residual`) holds the image's channels only, so the decoder is the same either way.
    With `noise_estimator` the encoder makes the level map itself
    (`build_noise_estimator`), steered by the scale and offset channels that follow the
    image (`LevelMap`); the map goes into the first convolution beside the image and
    into the latent (folded, after the input's copy), where `dae` reads it back.

    Level k (of `layer_filters`) runs `blocks` convolutions at 1/2^k of the image's size,
    then halves it. The latent is the deepest level's features, joined (with `skips`)
    by every shallower level's features and (with `residual`) the input itself, each
    folded to the deepest scale by `SpaceToDepth`: as a U-Net passes its skips, in one
    tensor of shape (h/2^d, w/2^d, conv_latent_channels(...)).
    """
    depth = len(layer_filters) - 1
    inputs = keras.Input(
        shape=(None, None, encoder_channels(channels, noise_level_input, noise_estimator)), name="encoder_input"
    )
    x, parts = _encoder_start(inputs, channels, depth, residual, noise_estimator)
    for level, filters in enumerate(layer_filters[:-1]):
        x = _conv_block(x, filters, kernel_size, batch_norm, blocks)
        if skips:
            fold = 2 ** (depth - level)
            parts.append(SpaceToDepth(fold, name=f"fold_level{level}")(x) if fold > 1 else x)
        x = _downsample(x, layer_filters[level + 1], kernel_size, batch_norm, downsampling)
    x = _conv_block(x, layer_filters[-1], kernel_size, batch_norm, blocks)
    parts.append(x)
    latent = (
        layers.Concatenate(name="latent_map", dtype="float32")(parts)
        if len(parts) > 1
        else layers.Activation("linear", name="latent_map", dtype="float32")(x)
    )
    return keras.Model(inputs, latent, name="encoder")


def _encoder_start(inputs, channels: int, depth: int, residual: bool, noise_estimator: bool):
    """(what the first convolution takes, the latent's first parts): the input as it is,
    or for a noise-estimating model the image beside its level map; the parts are the
    image's copy (`residual`) and the level map, each folded to the deepest scale."""
    image = SliceChannels(0, channels, name="image_channels")(inputs) if inputs.shape[-1] > channels else inputs
    x, parts, level_map = inputs, [], None
    if noise_estimator:
        level_map = LevelMap(channels, name="level_map", dtype="float32")(
            [inputs, build_noise_estimator(image, channels)]
        )
        x = layers.Concatenate(name="image_and_level")([image, level_map])
    for name, part, wanted in (("fold_input", image, residual), ("fold_level", level_map, noise_estimator)):
        if wanted:
            parts.append(SpaceToDepth(2**depth, name=name)(part) if depth else part)
    return x, parts


def build_conv_decoder(
    channels,
    layer_filters=(64, 128, 256),
    kernel_size=3,
    batch_norm=False,
    blocks=2,
    upsampling="transpose",
    skips=True,
    residual=True,
    noise_estimator=False,
):
    """The conv encoder's latent -> image (h, w, c).

    It unfolds the latent into the encoder's scales and climbs back up, joining each
    level's skip features. With `residual` the last convolution predicts the noise and
    the output is the input minus it (residual learning, as in DnCNN); else a sigmoid
    gives the image, as in the reference design. With `noise_estimator` the level map
    the encoder used joins the last convolution's input too.
    """
    depth = len(layer_filters) - 1
    latent_channels = conv_latent_channels(channels, layer_filters, skips, residual, noise_estimator)
    inputs = keras.Input(shape=(None, None, latent_channels), name="decoder_input")
    unfolded = _unfold_latent(inputs, channels, layer_filters, skips, residual, noise_estimator)
    x = unfolded["deepest"]
    for level in reversed(range(depth)):
        filters = layer_filters[level]
        x = _upsample(x, filters, kernel_size, batch_norm, upsampling)
        if skips:
            x = layers.Concatenate()([x, unfolded[f"level{level}"]])
        x = _conv_block(x, filters, kernel_size, batch_norm, blocks)
    if noise_estimator:
        x = layers.Concatenate(name="features_and_level")([x, unfolded["level"]])
    x = layers.Conv2D(channels, kernel_size, padding="same", dtype="float32", name="last_conv")(x)
    if residual:
        outputs = layers.Subtract(name="decoder_output", dtype="float32")([unfolded["input"], x])
    else:
        outputs = layers.Activation("sigmoid", name="decoder_output", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="decoder")


def _unfold_latent(inputs, channels: int, layer_filters, skips: bool, residual: bool, noise_estimator: bool) -> dict:
    """The conv latent cut into its parts, each at its own scale again: `input` (the
    image's copy), `level` (a noise estimator's map), `level0`... (the skips), `deepest`."""
    depth = len(layer_filters) - 1
    sizes = []
    if residual:
        sizes.append(("input", channels * 4**depth, 2**depth))
    if noise_estimator:
        sizes.append(("level", channels * 4**depth, 2**depth))
    if skips:
        sizes += [
            (f"level{level}", f * 4 ** (depth - level), 2 ** (depth - level))
            for level, f in enumerate(layer_filters[:-1])
        ]
    sizes.append(("deepest", layer_filters[-1], 1))
    offset, unfolded = 0, {}
    for name, size, fold in sizes:
        part = SliceChannels(offset, offset + size, name=f"slice_{name}")(inputs)
        unfolded[name] = DepthToSpace(fold, name=f"unfold_{name}")(part) if fold > 1 else part
        offset += size
    return unfolded


def split_autoencoder(autoencoder):
    """The encoder and decoder sub-models of a loaded autoencoder."""
    return autoencoder.get_layer("encoder"), autoencoder.get_layer("decoder")
