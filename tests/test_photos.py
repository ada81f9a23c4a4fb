"""A fully convolutional model trained on photographs: denoising whole images of any size
and tiled ones alike, feature-map latents, exports, resuming, colour.

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
from conftest import assert_clean_error, photo_folders, run_dae, shipped
from PIL import Image

SIGMA = 25 / 255


def psnr(clean: np.ndarray, other: np.ndarray) -> float:
    return float(10 * np.log10(1 / np.mean((clean.astype(np.float64) - other) ** 2)))


def read_png(path) -> np.ndarray:
    return np.asarray(Image.open(path), np.float64) / 255


def noisy_png(clean: np.ndarray, path: Path, seed: int = 0, sigma: float = SIGMA) -> Path:
    noisy = np.clip(clean + np.random.default_rng(seed).normal(0, sigma, clean.shape), 0, 1)
    Image.fromarray(np.rint(noisy * 255).astype(np.uint8)).save(path)
    return path


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
