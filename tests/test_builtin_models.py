"""The models that ship with dae (mnist, photo, photo-gray, photo-real): found by name,
verified by hash, and denoising what they were trained for.

The photographs are the public-domain ones shipped in `tests/data`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_clean_error, run_dae, shipped
from PIL import Image

from dae_cli.noise import NoiseSpec, add_noise


def psnr(clean: np.ndarray, other: np.ndarray) -> float:
    return float(10 * np.log10(1 / np.mean((clean.astype(np.float64) - other) ** 2)))


def read_png(path) -> np.ndarray:
    return np.asarray(Image.open(path), np.float64) / 255


def noisy_png(clean: np.ndarray, path: Path, seed: int = 0, sigma: float = 25 / 255) -> Path:
    noisy = np.clip(clean + np.random.default_rng(seed).normal(0, sigma, clean.shape), 0, 1)
    Image.fromarray(np.rint(noisy * 255).astype(np.uint8)).save(path)
    return path


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
    assert "std 0 to 55 (0-255 scale), one per image" in text and "noise level" in text
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


def test_built_in_photo_real_verifies_keeps_colour_and_gray_and_beats_photo_on_colour_camera_noise(tmp_path):
    import json

    from dae_cli.apply.metrics import psnr

    info = run_dae("--json", "info", "photo-real")
    assert info.returncode == 0, info.stderr
    manifest = json.loads(info.stdout)["manifest"]
    assert manifest["config"]["noise"] == "camera" and manifest["noise_level_input"] is False
    assert manifest["image_shape"] == [None, None, 3] and "photos-color/train" in manifest["data_source"]
    spec = NoiseSpec("camera", shot_range=(0.004, 0.004), read_range=(0.004, 0.004), jpeg_range=(90, 90))
    for kind, mode, name in (("colour", "RGB", "astronaut"), ("gray", "L", "camera")):
        clean = shipped(name, mode).astype(np.float32)[:192, :192]
        pixels = clean if mode == "RGB" else clean[..., None]
        noisy = add_noise(pixels, np.array([7, 7]), spec).numpy()
        noisy = np.rint(noisy * 255).astype(np.uint8)
        path = tmp_path / f"{kind}.png"
        Image.fromarray(noisy if mode == "RGB" else noisy[..., 0]).save(path)
        scores = {}
        for model in ("photo-real", "photo"):
            out = tmp_path / f"{kind}-{model}.png"
            result = run_dae("denoise", path, "-m", model, "-o", out)  # no flag
            assert result.returncode == 0, result.stderr
            denoised = Image.open(out)
            assert denoised.mode == mode  # a colour photo never comes back gray
            scores[model] = psnr(pixels[None], (np.asarray(denoised, np.float32) / 255).reshape(pixels.shape)[None])[0]
        noisy_score = psnr(pixels[None], (noisy.astype(np.float32) / 255)[None])[0]
        assert scores["photo-real"] > noisy_score + 3, (kind, noisy_score, scores)
        if kind == "colour":  # demosaiced, JPEG-compressed colour noise: what photo-real is for
            assert scores["photo-real"] > scores["photo"] + 2, (kind, scores)
