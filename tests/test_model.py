"""The network designs: the reference dense encoder/decoder (shapes, layer names,
composition, the example's alternatives) and the fully convolutional one for photographs
(any size, one feature map as latent)."""

import numpy as np
import pytest

from dae_cli.config import Config
from dae_cli.errors import UsageError
from dae_cli.models.networks import build_autoencoder


def conv_config(**changes) -> Config:
    values = dict(architecture="conv", layer_filters=[8, 16, 16], blocks_per_level=1)
    return Config.from_dict({**values, **changes})


def test_reference_shapes_and_layer_names():
    autoencoder, encoder, decoder = build_autoencoder((28, 28, 1), latent_dim=16, layer_filters=[32, 64])
    assert encoder.input_shape == (None, 28, 28, 1)
    assert encoder.output_shape == (None, 16)
    assert decoder.input_shape == (None, 16)
    assert decoder.output_shape == (None, 28, 28, 1)
    assert encoder.layers[0].name == "encoder_input"
    assert encoder.layers[-1].name == "latent_vector"
    assert decoder.layers[0].name == "decoder_input"
    assert decoder.layers[-1].name == "decoder_output"
    conv = [layer for layer in encoder.layers if layer.__class__.__name__ == "Conv2D"]
    assert [layer.filters for layer in conv] == [32, 64]
    assert all(layer.strides == (2, 2) for layer in conv)
    transposed = [layer for layer in decoder.layers if layer.__class__.__name__ == "Conv2DTranspose"]
    assert [layer.filters for layer in transposed] == [64, 32, 1]


def test_autoencoder_is_decoder_of_encoder():
    autoencoder, encoder, decoder = build_autoencoder((16, 24, 3), latent_dim=8, layer_filters=[4, 8, 8])
    x = np.random.default_rng(0).random((5, 16, 24, 3), dtype=np.float32)
    composed = decoder.predict(encoder.predict(x, verbose=0), verbose=0)
    np.testing.assert_allclose(autoencoder.predict(x, verbose=0), composed, atol=1e-6)
    assert composed.min() >= 0 and composed.max() <= 1  # sigmoid output


def test_batch_norm_variant_keeps_the_interface():
    _, encoder, decoder = build_autoencoder((28, 28, 1), latent_dim=32, layer_filters=[16, 32], batch_norm=True)
    names = [layer.__class__.__name__ for layer in encoder.layers]
    assert names.count("BatchNormalization") == 2
    assert encoder.output_shape == (None, 32) and decoder.output_shape == (None, 28, 28, 1)


def test_size_not_divisible_by_stride_product_is_a_clear_error():
    with pytest.raises(UsageError, match="not divisible by 8"):
        build_autoencoder((28, 28, 1), layer_filters=[8, 8, 8])


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize(
    "options", [{}, {"skips": False, "residual": False}, {"downsampling": "maxpool", "upsampling": "upsample"}]
)
def test_conv_model_takes_any_multiple_and_its_latent_is_one_feature_map(channels, options):
    from dae_cli.models.networks import build_model, split_autoencoder

    config = conv_config(**options)
    autoencoder, encoder, decoder = build_model(config, (None, None, channels))
    assert config.size_multiple == 4
    for height, width in ((8, 12), (36, 52)):
        x = np.random.default_rng(0).random((2, height, width, channels), dtype=np.float32)
        latent = encoder.predict(x, verbose=0)
        assert latent.shape[:3] == (2, height // 4, width // 4)
        assert latent.shape[-1] == encoder.output_shape[-1] == decoder.input_shape[-1]
        composed = decoder.predict(latent, verbose=0)
        assert composed.shape == x.shape
        np.testing.assert_allclose(autoencoder.predict(x, verbose=0), composed, atol=1e-5)
    assert [m.name for m in split_autoencoder(autoencoder)] == ["encoder", "decoder"]


@pytest.mark.parametrize("downsampling, upsampling", [("maxpool", "transpose"), ("strided", "upsample")])
def test_dense_design_offers_the_examples_alternatives(downsampling, upsampling):
    from dae_cli.models.networks import build_autoencoder

    autoencoder, encoder, decoder = build_autoencoder(
        (28, 28, 1), latent_dim=8, layer_filters=[8, 16], downsampling=downsampling, upsampling=upsampling
    )
    kinds = {layer.__class__.__name__ for model in (encoder, decoder) for layer in model.layers}
    assert ("MaxPooling2D" in kinds) == (downsampling == "maxpool")
    assert ("UpSampling2D" in kinds) == (upsampling == "upsample")
    assert encoder.output_shape == (None, 8) and autoencoder.output_shape == (None, 28, 28, 1)
