"""The models that ship with dae (mnist, photo, photo-gaussian; photo-real and photo-gray
are other names for photo): found by name,
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


def gaussian_noise_cases(tmp_path: Path):
    """(kind, sigma, clean, noisy PNG) for a colour and a gray photograph at sigma 15 and 40."""
    for kind, clean in (("colour", shipped("astronaut", "RGB")[:200, :200]), ("gray", shipped("camera")[:200, :200])):
        for sigma in (15, 40):
            yield kind, sigma, clean, noisy_png(clean, tmp_path / f"{kind}-{sigma}.png", sigma=sigma / 255)


def test_built_in_photo_model_estimates_its_noise_map_and_denoises_gaussian_noise_colour_and_gray(tmp_path):
    name = "photo"
    info = run_dae("--json", "info", name)
    assert info.returncode == 0, info.stderr
    manifest = json.loads(info.stdout)["manifest"]
    assert manifest["architecture"] == "conv" and manifest["noise_estimator"] is True
    assert manifest["config"]["noise"] == "mixture" and manifest["noise_level_input"] is False
    assert manifest["image_shape"] == [None, None, 3] and manifest["inference_precision"] == "float32"
    assert manifest["gflops_per_megapixel"] <= 500  # issue 24's cost target
    assert "photos-color/train" in manifest["data_source"]
    assert "its own estimate, a map" in run_dae("info", name).stdout
    for kind, sigma, clean, noisy in gaussian_noise_cases(tmp_path):
        result = run_dae("--json", "denoise", noisy, "-m", name)  # no flag: the map is estimated
        assert result.returncode == 0, result.stderr
        record = json.loads(result.stdout)
        assert record["sigma_estimated"] and record["sigma"] == pytest.approx(sigma, rel=0.15)  # the map's median
        assert Image.open(record["output"]).mode == ("RGB" if kind == "colour" else "L")
        gain = psnr(clean, read_png(record["output"])) - psnr(clean, read_png(noisy))
        assert gain > (6 if sigma == 40 else 4), (kind, sigma, gain)


def test_built_in_photo_gaussian_takes_the_level_says_how_it_was_trained_and_keeps_colour_and_gray(tmp_path):
    info = run_dae("--json", "info", "photo-gaussian")
    assert info.returncode == 0, info.stderr
    manifest = json.loads(info.stdout)["manifest"]
    assert manifest["architecture"] == "conv" and manifest["noise_level_input"] is True
    assert manifest["image_shape"] == [None, None, 3] and manifest["inference_precision"] == "float32"
    low, high = manifest["config"]["noise_std_range"]
    assert low == 0 and high * 255 >= 50  # every level from 0 to 50
    assert "photos-color/train" in manifest["data_source"]
    text = run_dae("info", "photo-gaussian").stdout
    assert "std 0 to 55 (0-255 scale), one per image" in text and "noise level" in text
    for kind, sigma, clean, noisy in gaussian_noise_cases(tmp_path):
        result = run_dae("--json", "denoise", noisy, "-m", "photo-gaussian")  # no flag: the level is estimated
        assert result.returncode == 0, result.stderr
        record = json.loads(result.stdout)
        assert record["sigma_estimated"] and record["sigma"] == pytest.approx(sigma, rel=0.15)
        assert Image.open(record["output"]).mode == ("RGB" if kind == "colour" else "L")
        gain = psnr(clean, read_png(record["output"])) - psnr(clean, read_png(noisy))
        assert gain > (6 if sigma == 40 else 4), (kind, sigma, gain)


def test_built_in_photo_denoises_noise_saved_as_jpeg_where_a_gaussian_level_cannot(tmp_path):
    """Gaussian noise of sigma 25 saved as a quality-90 JPEG, as a noisy photo is usually
    shared: the JPEG smooths the noise, so the white-noise estimate of `photo-gaussian`
    reads almost nothing and gives the photo back; `photo` reads the map and denoises."""
    clean = shipped("astronaut", "RGB")[:200, :200]
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 25 / 255, clean.shape), 0, 1)
    path = tmp_path / "noisy.jpg"
    Image.fromarray(np.rint(noisy * 255).astype(np.uint8)).save(path, quality=90)
    gains = {}
    for model in ("photo", "photo-gaussian"):
        result = run_dae("denoise", path, "-m", model, "-o", tmp_path / f"{model}.png")
        assert result.returncode == 0, result.stderr
        gains[model] = psnr(clean, read_png(tmp_path / f"{model}.png")) - psnr(clean, read_png(path))
    assert gains["photo"] > 5 and gains["photo"] > gains["photo-gaussian"] + 4, gains


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
        assert_clean_error(unknown, 1, "built-in models: mnist, photo, photo-gaussian, photo-real, photo-gray")


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


def test_built_in_photo_denoises_camera_noise_colour_and_gray_where_a_gaussian_level_cannot(tmp_path):
    from dae_cli.apply.metrics import psnr

    name = "photo"
    spec = NoiseSpec("camera", shot_range=(0.004, 0.004), read_range=(0.004, 0.004), jpeg_range=(90, 90))
    for kind, mode, image in (("colour", "RGB", "astronaut"), ("gray", "L", "camera")):
        clean = shipped(image, mode).astype(np.float32)[:192, :192]
        pixels = clean if mode == "RGB" else clean[..., None]
        noisy = add_noise(pixels, np.array([7, 7]), spec).numpy()
        noisy = np.rint(noisy * 255).astype(np.uint8)
        path = tmp_path / f"{kind}.png"
        Image.fromarray(noisy if mode == "RGB" else noisy[..., 0]).save(path)
        scores = {}
        for model in (name, "photo-gaussian"):
            out = tmp_path / f"{kind}-{model}.png"
            result = run_dae("denoise", path, "-m", model, "-o", out)  # no flag
            assert result.returncode == 0, result.stderr
            denoised = Image.open(out)
            assert denoised.mode == mode  # a colour photo never comes back gray
            scores[model] = psnr(pixels[None], (np.asarray(denoised, np.float32) / 255).reshape(pixels.shape)[None])[0]
        noisy_score = psnr(pixels[None], (noisy.astype(np.float32) / 255)[None])[0]
        assert scores[name] > noisy_score + 3, (kind, noisy_score, scores)
        if kind == "colour":  # demosaiced, JPEG-compressed colour noise: white-noise estimates miss it
            assert scores[name] > scores["photo-gaussian"] + 2, (kind, scores)
