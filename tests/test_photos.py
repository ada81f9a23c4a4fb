"""The fully convolutional architecture for photographs: any size, feature-map latents,
whole and tiled denoising, blind noise, colour, and the example's pooling alternatives.

The training tests use the public-domain photographs shipped in `tests/data` (see its
README), so they run on a fresh clone with nothing beside it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import FLOAT32, assert_clean_error, photo_folders, run_dae, shipped
from PIL import Image

from dae_cli.config import Config

SIGMA = 25 / 255


def conv_config(**changes) -> Config:
    values = dict(architecture="conv", layer_filters=[8, 16, 16], blocks_per_level=1)
    return Config.from_dict({**values, **changes})


def psnr(clean: np.ndarray, other: np.ndarray) -> float:
    return float(10 * np.log10(1 / np.mean((clean.astype(np.float64) - other) ** 2)))


def read_png(path) -> np.ndarray:
    return np.asarray(Image.open(path), np.float64) / 255


def noisy_png(clean: np.ndarray, path: Path, seed: int = 0, sigma: float = SIGMA) -> Path:
    noisy = np.clip(clean + np.random.default_rng(seed).normal(0, sigma, clean.shape), 0, 1)
    Image.fromarray(np.rint(noisy * 255).astype(np.uint8)).save(path)
    return path


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


def test_padding_reflects_to_the_multiple_and_crops_back():
    from dae_cli.models.windows import Tiling, pad_to_multiple

    pixels = np.random.default_rng(0).random((37, 53, 3), dtype=np.float32)
    padded = pad_to_multiple(pixels, 8)
    assert padded.shape == (40, 56, 3)
    np.testing.assert_array_equal(padded[37, :53], pixels[35])  # reflection, not zeros
    shapes = []

    def identity(batch):
        shapes.append(batch.shape)
        return batch

    np.testing.assert_array_equal(Tiling.padded(pixels, 8).apply(identity), pixels)
    assert shapes == [(1, 40, 56, 3)]  # whole, padded, in one call


def test_windows_blend_a_model_that_is_not_the_identity_without_seams():
    """Windows of a local (3x3 mean) filter, blended, equal the filter on the whole image."""
    from dae_cli.models.windows import CROSS_FADE, Tiling

    rng = np.random.default_rng(1)
    pixels = rng.random((300, 410, 1)).astype(np.float32)
    calls = []

    def box_filter(batch):
        calls.append(batch.shape)
        padded = np.pad(batch, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
        return (
            sum(padded[:, dy : dy + batch.shape[1], dx : dx + batch.shape[2]] for dy in range(3) for dx in range(3)) / 9
        )

    whole = box_filter(pixels[None])[0]
    calls.clear()
    tiled = Tiling.tiled(pixels, (100, 100), 16, CROSS_FADE, multiple=4).apply(box_filter)
    assert len(calls) > 9 and all(shape[1:3] == (100, 100) for shape in calls)  # one window a call
    assert tiled.shape == pixels.shape
    # A window's edge pixels (padded there, not the image's neighbours) are faded out
    # under its neighbour's. Only the far border differs, where `dae` pads by reflection.
    inner = np.abs(tiled - whole)[:-4, :-4]
    assert np.median(inner) < 1e-6 and inner.max() < 0.02
    assert psnr(whole[:-4, :-4], tiled[:-4, :-4]) > 55
    seams = Tiling.tiled(pixels, (100, 100), 0, CROSS_FADE, multiple=4).apply(box_filter)
    assert psnr(whole[:-4, :-4], seams[:-4, :-4]) < 40  # what the blending removes


def test_blind_noise_draws_one_std_per_image_in_the_range():
    from dae_cli.backend import tf
    from dae_cli.noise import NoiseSpec, add_noise

    clean = np.full((64, 32, 32, 1), 0.5, np.float32)
    spec = NoiseSpec("gaussian", mean=0.0, std_range=(0.02, 0.2))
    noisy = add_noise(clean, tf.constant([3, 4]), spec).numpy()
    stds = (noisy - clean).reshape(64, -1).std(axis=1)
    assert 0.015 < stds.min() and stds.max() < 0.21
    assert stds.max() - stds.min() > 0.1  # not one std for all
    again = add_noise(clean, tf.constant([3, 4]), spec).numpy()
    np.testing.assert_array_equal(noisy, again)  # seeded


def test_noise_std_takes_the_0_255_scale(tmp_path):
    clean = np.full((40, 40), 128, np.uint8)
    Image.fromarray(clean).save(tmp_path / "flat.png")
    result = run_dae("noise", tmp_path / "flat.png", "--noise-mean", "0", "--noise-std", "25/255", "--seed", "1")
    assert result.returncode == 0, result.stderr
    noise = read_png(tmp_path / "flat.noisy.png") - 128 / 255
    assert abs(noise.std() - 25 / 255) < 0.01


@pytest.mark.parametrize(
    "flags, fragment",
    [
        (["--arch", "wavelet"], "'wavelet' is not one of 'dense', 'conv'"),
        (["--noise-std-range", "0.2,0.1"], "noise_std_range"),
        (["--noise-std-range", "-0.1,0.1"], "noise_std_range"),
        (["--noise-std-range", "0.1"], "LOW,HIGH"),
        (["--noise-std", "25/0"], "--noise-std"),
        (["--downsampling", "avgpool"], "'avgpool' is not one of 'strided', 'maxpool'"),
        (["--loss", "huber"], "'huber' is not one of 'mse', 'mae'"),
    ],
)
def test_bad_photo_flags_are_usage_errors(tmp_path, flags, fragment):
    result = run_dae("train", "--dataset", "mnist-sample", *FLOAT32, "--out", tmp_path / "m", *flags)
    assert_clean_error(result, 2, fragment)
    assert not (tmp_path / "m").exists()


@pytest.fixture(scope="session")
def photo_model(tmp_path_factory):
    """A small conv model trained briefly on gray crops of three shipped photographs."""
    root = tmp_path_factory.mktemp("photo")
    train, val = photo_folders(root, ("astronaut", "chelsea", "coins"), "L")
    out = root / "model"
    result = run_dae(
        "train",
        "--arch",
        "conv",
        "--filters",
        "16,32,32",
        "--blocks-per-level",
        "1",
        "--loss",
        "mae",
        "--data",
        train,
        "--val-data",
        val,
        "--patch-size",
        "32",
        "--batch-size",
        "16",
        "--epochs",
        "4",
        "--learning-rate",
        "0.002",
        "--noise-mean",
        "0",
        "--noise-std",
        "25/255",
        "--precision",
        "float32",
        "--out",
        out,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    return out


def test_short_photo_training_beats_the_noisy_input(photo_model, tmp_path):
    manifest = json.loads((photo_model / "dae.json").read_text())
    assert manifest["architecture"] == "conv" and manifest["image_shape"] == [None, None, 1]
    metrics = manifest["metrics"]
    assert metrics["psnr_denoised"]["mean"] > metrics["psnr_noisy"]["mean"] + 1.0
    # and on a photograph it never saw, of an odd size, whole
    clean = shipped("camera")[:171, :203]  # not a training image
    noisy = noisy_png(clean, tmp_path / "odd.png")
    result = run_dae("denoise", noisy, "-m", photo_model, "-o", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    denoised = read_png(tmp_path / "out" / "odd.denoised.png")
    assert denoised.shape == clean.shape
    assert psnr(clean, denoised) > psnr(clean, read_png(noisy)) + 1.0


def test_tiled_equals_whole_within_a_tenth_of_a_db(photo_model, tmp_path):
    clean = shipped("camera")  # 512x512
    noisy = noisy_png(clean, tmp_path / "big.png")
    whole = run_dae("denoise", noisy, "-m", photo_model, "-o", tmp_path / "whole.png")
    tiled = run_dae("denoise", noisy, "-m", photo_model, "-o", tmp_path / "tiled.png", "--max-megapixels", "0.04")
    assert whole.returncode == 0 and tiled.returncode == 0, whole.stderr + tiled.stderr
    a, b = read_png(tmp_path / "whole.png"), read_png(tmp_path / "tiled.png")
    assert not np.array_equal(a, b)  # the tiled path really ran
    assert abs(psnr(clean, a) - psnr(clean, b)) < 0.1


def test_encode_then_decode_equals_denoise_for_feature_maps(photo_model, tmp_path):
    clean = shipped("camera")
    inputs = tmp_path / "in"
    inputs.mkdir()
    noisy_png(clean[:97, :130], inputs / "a.png", 1)
    noisy_png(clean[100:228, :128], inputs / "b.png", 2)
    assert run_dae("denoise", inputs, "-m", photo_model, "-o", tmp_path / "den").returncode == 0
    encoded = run_dae("encode", inputs, "-m", photo_model, "-o", tmp_path / "z.npz")
    assert encoded.returncode == 0, encoded.stderr
    with np.load(tmp_path / "z.npz") as archive:
        keys = sorted(k for k in archive.files if not k.startswith("dae:"))
        assert [Path(k).name for k in keys] == ["a.png", "b.png"]
        assert archive[keys[0]].shape[:2] == (25, 33)  # 97x130 padded to 100x132, over 4
    decoded = run_dae("decode", tmp_path / "z.npz", "-m", photo_model, "-o", tmp_path / "dec")
    assert decoded.returncode == 0, decoded.stderr
    for name in ("a", "b"):
        np.testing.assert_array_equal(
            read_png(tmp_path / "dec" / f"{name}.decoded.png"), read_png(tmp_path / "den" / f"{name}.denoised.png")
        )
    one = run_dae("encode", inputs / "b.png", "-m", photo_model, "-o", tmp_path / "b.npy")
    assert one.returncode == 0, one.stderr
    assert run_dae("decode", tmp_path / "b.npy", "-m", photo_model, "-o", tmp_path / "dec1").returncode == 0
    np.testing.assert_array_equal(
        read_png(tmp_path / "dec1" / "latent_00000.png"), read_png(tmp_path / "den" / "b.denoised.png")
    )


@pytest.mark.parametrize("target", ["z.csv", "z.json", None])
def test_feature_maps_to_text_formats_are_usage_errors_naming_npz(photo_model, tmp_path, target):
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(image)
    args = ["-o", tmp_path / target] if target else []
    result = run_dae("encode", image, "-m", photo_model, *args)
    assert_clean_error(result, 2, ".npz")
    assert result.stdout == ""


def test_conv_saved_models_load_with_tensorflow_alone(photo_model):
    script = f"""
import numpy as np, tensorflow as tf
encoder = tf.saved_model.load({str(photo_model / "encoder")!r})
decoder = tf.saved_model.load({str(photo_model / "decoder")!r})
for size in ((32, 48), (64, 36)):
    latent = encoder.serve(np.zeros((2, *size, 1), np.float32))
    print(latent.shape, decoder.serve(latent).shape)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split("\n")
    assert lines[0].endswith("(2, 32, 48, 1)") and lines[1].endswith("(2, 64, 36, 1)")


def test_colour_conv_model_trains_and_denoises(tmp_path):
    rng = np.random.default_rng(0)
    data = tmp_path / "rgb"
    data.mkdir()
    yy, xx = np.mgrid[0:48, 0:64] / 64
    for i in range(12):
        image = np.stack([np.sin(xx * (i + 2)), np.cos(yy * (i + 3)), xx * yy], -1) * 0.4 + 0.5
        image = image + rng.normal(0, 0.01, image.shape)
        Image.fromarray(np.rint(np.clip(image, 0, 1) * 255).astype(np.uint8)).save(data / f"{i}.png")
    out = tmp_path / "model"
    trained = run_dae(
        "train",
        "--arch",
        "conv",
        "--filters",
        "8,16",
        "--blocks-per-level",
        "1",
        "--data",
        data,
        "--channels",
        "3",
        "--patch-size",
        "32",
        "--epochs",
        "2",
        "--noise-mean",
        "0",
        "--noise-std",
        "0.1",
        "--precision",
        "float32",
        "--out",
        out,
        timeout=600,
    )
    assert trained.returncode == 0, trained.stderr
    assert json.loads((out / "dae.json").read_text())["image_shape"] == [None, None, 3]
    result = run_dae("denoise", data / "3.png", "-m", out, "-o", tmp_path / "d.png")
    assert result.returncode == 0, result.stderr
    assert np.asarray(Image.open(tmp_path / "d.png")).shape == (48, 64, 3)


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


def test_conv_model_exports_for_serving_and_onnx(photo_model, tmp_path):
    """Both exports take any image size and agree with `dae denoise`'s model output."""
    import onnxruntime

    from dae_cli.models.denoiser import load_denoiser

    rng = np.random.default_rng(5)
    images = rng.random((2, 44, 60, 1), dtype=np.float32)
    expected = load_denoiser(photo_model).denoise(images)
    assert run_dae("export", photo_model, "--format", "saved-model", "-o", tmp_path / "sm").returncode == 0
    assert run_dae("export", photo_model, "--format", "onnx", "-o", tmp_path / "onnx").returncode == 0
    script = f"""
import numpy as np, tensorflow as tf
served = tf.saved_model.load({str(tmp_path / "sm")!r})
np.save({str(tmp_path / "served.npy")!r}, served.denoise(np.load({str(tmp_path / "x.npy")!r})).numpy())
"""
    np.save(tmp_path / "x.npy", images)
    assert subprocess.run([sys.executable, "-c", script], timeout=300).returncode == 0
    np.testing.assert_allclose(np.load(tmp_path / "served.npy"), expected, atol=1e-4)
    session = onnxruntime.InferenceSession(str(tmp_path / "onnx" / "denoiser.onnx"))
    (onnx_out,) = session.run(None, {session.get_inputs()[0].name: images})
    np.testing.assert_allclose(onnx_out, expected, atol=1e-4)


def test_a_conv_model_resumes_and_trains_further(photo_model, tmp_path):
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(photo_model, copy)
    result = run_dae("train", "--resume", "--out", copy, "--epochs", "5", timeout=600)
    assert result.returncode == 0, result.stderr
    assert json.loads((copy / "dae.json").read_text())["epochs_done"] == 5


@pytest.mark.parametrize("name", ["photo", "photo-gray"])
def test_built_in_photo_model_verifies_says_how_it_was_trained_and_keeps_colour_and_gray(tmp_path, name):
    info = run_dae("--json", "info", name)
    assert info.returncode == 0, info.stderr
    manifest = json.loads(info.stdout)["manifest"]
    assert manifest["architecture"] == "conv" and manifest["noise_level_input"] is True
    assert manifest["image_shape"] == [None, None, 3] and manifest["inference_precision"] == "float32"
    low, high = manifest["config"]["noise_std_range"]
    assert low == 0 and high * 255 >= 50  # every level from 0 to 50
    assert "photos-color/train" in manifest["data_source"]
    text = run_dae("info", name).stdout
    assert "std 0 to 55 (0-255 scale), one per image" in text and "noise level input" in text
    for kind, clean in (("colour", shipped("astronaut", "RGB")[:200, :200]), ("gray", shipped("camera")[:200, :200])):
        for sigma in (15, 40):
            noisy = noisy_png(clean, tmp_path / f"{kind}-{sigma}.png", sigma=sigma / 255)
            result = run_dae("--json", "denoise", noisy, "-m", name)  # no flag: the level is estimated
            assert result.returncode == 0, result.stderr
            record = json.loads(result.stdout)
            assert record["sigma_estimated"] and record["sigma"] == pytest.approx(sigma, rel=0.15)
            denoised = Image.open(record["output"])
            assert denoised.mode == ("RGB" if kind == "colour" else "L")  # never a gray result for colour
            gain = psnr(clean, read_png(record["output"])) - psnr(clean, read_png(noisy))
            assert gain > (6 if sigma == 40 else 4), (kind, sigma, gain)


def test_built_in_mnist_model_denoises_digits(tmp_path, mnist_test_images):
    from conftest import save_gray

    clean, noisy = mnist_test_images
    save_gray(noisy[0], tmp_path / "digit.png")
    result = run_dae("denoise", tmp_path / "digit.png", "-m", "mnist", "-o", tmp_path / "out.png")
    assert result.returncode == 0, result.stderr
    denoised = read_png(tmp_path / "out.png")
    assert psnr(clean[0, ..., 0], denoised) > psnr(clean[0, ..., 0], read_png(tmp_path / "digit.png")) + 6


def test_an_existing_path_wins_over_a_built_in_name_and_unknown_names_list_them(tmp_path):
    (tmp_path / "mnist").mkdir()
    shadowed = run_dae("info", "mnist", cwd=tmp_path)
    assert_clean_error(shadowed, 1, "mnist is not a dae model directory")
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(image)
    for unknown in (run_dae("info", "nosuch", cwd=tmp_path), run_dae("denoise", image, "-m", "nosuch", cwd=tmp_path)):
        assert_clean_error(unknown, 1, "built-in models: mnist, photo, photo-real, photo-gray")


def test_a_changed_built_in_model_is_refused(tmp_path):
    import shutil

    from dae_cli.models.builtin_models import builtin_path

    copy = tmp_path / "photo"
    shutil.copytree(builtin_path("photo"), copy)
    with open(copy / "decoder" / "saved_model.pb", "ab") as handle:
        handle.write(b"\0")
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(image)
    assert_clean_error(run_dae("denoise", image, "-m", copy), 1, "does not match the sha256")
