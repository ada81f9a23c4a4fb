"""The reference encoder/decoder design: shapes, layer names, composition."""

import numpy as np
import pytest

from dae_cli.errors import UsageError
from dae_cli.models.networks import build_autoencoder


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
