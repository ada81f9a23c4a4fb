"""`dae export --format onnx`: three ONNX files that ONNX Runtime runs as dae does."""

import numpy as np
import onnxruntime as ort  # the onnx extra
import pytest
from conftest import assert_clean_error, cli_env, json_lines, run_dae, run_dae_process, save_gray
from PIL import Image

from dae_cli.models.denoiser import load_denoiser


def session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_onnx_export_matches_dae_encode_and_denoise(trained_model, tmp_path, mnist_test_images):
    _, noisy = mnist_test_images
    paths = [save_gray(noisy[i], tmp_path / f"n{i}.png") for i in range(5)]
    exported = tmp_path / "onnx"
    result = run_dae("export", trained_model, "--format", "onnx", "-o", exported)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(exported)
    assert sorted(p.name for p in exported.iterdir()) == ["decoder.onnx", "denoiser.onnx", "encoder.onnx"]

    encoder, decoder, denoiser = (session(exported / f"{name}.onnx") for name in ("encoder", "decoder", "denoiser"))
    shapes = lambda values: {value.name: value.shape for value in values}  # noqa: E731
    assert shapes(encoder.get_inputs()) == {"images": ["batch", 28, 28, 1]}
    assert shapes(encoder.get_outputs()) == {"latents": ["batch", 16]}
    assert shapes(decoder.get_inputs()) == {"latents": ["batch", 16]}
    assert shapes(decoder.get_outputs()) == {"images": ["batch", 28, 28, 1]}
    assert shapes(denoiser.get_outputs()) == {"denoised": ["batch", 28, 28, 1]}

    images = np.stack([np.asarray(Image.open(p), np.float32)[..., None] / 255 for p in paths])
    # The numbers `dae denoise` computes before it writes PNGs, and the PNGs it writes.
    model = load_denoiser(trained_model)
    np.testing.assert_allclose(denoiser.run(None, {"images": images})[0], model.denoise(images), atol=1e-4)
    written = run_dae("denoise", *paths, "-m", trained_model, "-o", tmp_path / "den").stdout.split()
    pngs = np.stack([np.asarray(Image.open(p), np.float32)[..., None] / 255 for p in written])
    np.testing.assert_allclose(np.round(denoiser.run(None, {"images": images})[0] * 255) / 255, pngs, atol=1.01 / 255)
    # `dae encode` prints its latents in full: the same within 1e-4; any batch size.
    latents = np.array(
        [r["latent"] for r in json_lines(run_dae("encode", *paths, "-m", trained_model).stdout)], np.float32
    )
    np.testing.assert_allclose(encoder.run(None, {"images": images})[0], latents, atol=1e-4)
    np.testing.assert_allclose(encoder.run(None, {"images": images[:1]})[0], latents[:1], atol=1e-4)
    np.testing.assert_allclose(decoder.run(None, {"latents": latents})[0], model.decode(latents), atol=1e-4)

    refused = run_dae("export", trained_model, "--format", "onnx", "-o", exported)
    assert refused.returncode == 2 and "--overwrite" in refused.stderr
    wrong = run_dae("export", trained_model, "--format", "tflite", "-o", tmp_path / "x")
    assert_clean_error(wrong, 2, "--format must be one of saved-model, onnx")


def conv_encoder_decoder(keras, channels=1):
    """A small fully convolutional U-Net-like pair: the encoder returns two feature maps."""
    layers = keras.layers
    images = keras.Input((None, None, channels))
    skip = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(images)
    skip = layers.BatchNormalization()(skip)
    deep = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(skip)
    encoder = keras.Model(images, [skip, deep], name="encoder")
    skip_in, deep_in = keras.Input((None, None, 8)), keras.Input((None, None, 16))
    x = layers.Conv2DTranspose(8, 3, strides=2, padding="same", activation="relu")(deep_in)
    x = layers.Concatenate()([x, skip_in])
    x = layers.Conv2DTranspose(channels, 3, strides=2, padding="same")(x)
    decoder = keras.Model([skip_in, deep_in], layers.Activation("sigmoid", dtype="float32")(x), name="decoder")
    return encoder, decoder


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_onnx_export_of_a_fully_convolutional_pair_with_two_latents(tmp_path, policy):
    from dae_cli.backend import keras
    from dae_cli.models.onnx_export import float32_copy, write_onnx

    keras.mixed_precision.set_global_policy(policy)
    try:
        encoder, decoder = conv_encoder_decoder(keras, channels=3)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert write_onnx(encoder, decoder, tmp_path) == ["encoder.onnx", "decoder.onnx", "denoiser.onnx"]
    enc, dec, den = (session(tmp_path / f"{name}.onnx") for name in ("encoder", "decoder", "denoiser"))
    assert [(v.name, v.shape[0], v.shape[3]) for v in enc.get_outputs()] == [
        ("latents_0", "batch", 8),
        ("latents_1", "batch", 16),
    ]
    assert [v.name for v in dec.get_inputs()] == ["latents_0", "latents_1"]

    exact_encoder, exact_decoder = float32_copy(encoder), float32_copy(decoder)
    rng = np.random.default_rng(1)
    for batch, height, width in [(1, 16, 24), (3, 40, 32)]:  # batch, height and width all dynamic
        images = rng.random((batch, height, width, 3), dtype=np.float32)
        latents = enc.run(["latents_0", "latents_1"], {"images": images})
        for onnx_latent, keras_latent in zip(latents, exact_encoder(images)):
            np.testing.assert_allclose(onnx_latent, np.asarray(keras_latent), atol=1e-4)
        denoised = den.run(None, {"images": images})[0]
        assert denoised.shape == (batch, height, width, 3)
        np.testing.assert_allclose(denoised, np.asarray(exact_decoder(exact_encoder(images))), atol=1e-4)
        decoded = dec.run(None, {"latents_0": latents[0], "latents_1": latents[1]})[0]
        np.testing.assert_allclose(decoded, denoised, atol=1e-5)
        # ONNX Runtime has no bfloat16 convolutions: the float32 copy holds the same weights.
        np.testing.assert_allclose(
            denoised, np.asarray(decoder(encoder(images)), np.float32), atol=0.02 if policy != "float32" else 1e-4
        )


def test_onnx_without_the_extra_is_a_one_line_error(trained_model, tmp_path):
    blocker = tmp_path / "site"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text("import sys\nsys.modules['tf2onnx'] = None\n")
    result = run_dae_process(
        "export", trained_model, "--format", "onnx", "-o", tmp_path / "o", env=cli_env(PYTHONPATH=str(blocker))
    )
    assert_clean_error(result, 1, 'pip install "dae-cli[onnx]"', "tf2onnx")
    assert len(result.stderr.splitlines()) == 1 and not (tmp_path / "o").exists()
