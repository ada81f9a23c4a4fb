"""Camera noise for training (poisson-gaussian, camera): its statistics, its settings and
`dae noise --noise camera` (issue 16). The built-in `photo`, trained on a mixture that
holds it, is tested on camera noise in test_builtin_models.py."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SHIPPED, assert_clean_error, run_dae, shipped
from PIL import Image

from dae_cli.noise import NoiseSpec, add_noise, noise_levels


def flat(value: float, channels: int = 3, count: int = 64) -> np.ndarray:
    return np.full((count, 64, 64, channels), value, np.float32)


@pytest.mark.parametrize("value", [0.2, 0.6])
@pytest.mark.parametrize("shot, read", [(0.001, 0.0), (0.004, 0.02), (0.01, 0.05)])
def test_poisson_gaussian_has_the_variance_it_claims_per_channel_and_level(value, shot, read):
    spec = NoiseSpec("poisson-gaussian", shot_range=(shot, shot), read_range=(read, read))
    noisy = add_noise(flat(value), np.array([3, 4]), spec).numpy()
    expected = shot * value + read**2
    for channel in range(3):
        measured = noisy[..., channel].var()
        assert abs(measured - expected) < 0.03 * expected, (channel, measured, expected)
        assert abs(noisy[..., channel].mean() - value) < 0.002


def test_poisson_gaussian_levels_vary_per_image_and_channel_within_their_ranges():
    spec = NoiseSpec("poisson-gaussian", shot_range=(0.001, 0.01), read_range=(0.0, 0.0), channel_spread=0.3)
    noisy = add_noise(flat(0.5, count=32), np.array([5, 6]), spec).numpy()
    stds = (noisy - 0.5).std(axis=(1, 2))  # (images, channels)
    low, high = np.sqrt(0.001 * 0.5) * 0.7, np.sqrt(0.01 * 0.5) * 1.3
    assert stds.min() > low * 0.95 and stds.max() < high * 1.05
    assert stds.std(axis=0).min() > 0.005  # differs between images
    assert np.abs(stds[:, 0] - stds[:, 2]).max() > 0.005  # and between channels


@pytest.mark.parametrize("jpeg", [None, (70, 95)])
def test_camera_noise_is_seeded_reproducible_signal_dependent_and_correlated(jpeg):
    spec = NoiseSpec("camera", shot_range=(0.005, 0.005), read_range=(0.002, 0.002), jpeg_range=jpeg)
    photo = shipped("astronaut", "RGB").astype(np.float32)[:256, :256]
    first = add_noise(photo, np.array([1, 2]), spec).numpy()
    np.testing.assert_array_equal(first, add_noise(photo, np.array([1, 2]), spec).numpy())
    assert not np.array_equal(first, add_noise(photo, np.array([1, 3]), spec).numpy())
    assert first.shape == photo.shape and first.min() >= 0 and first.max() <= 1
    # Signal-dependent: more noise on a mid-gray than on a dark one.
    dark, mid = (add_noise(flat(v, count=8), np.array([1, 2]), spec).numpy() - v for v in (0.05, 0.5))
    assert mid.std() > 1.5 * dark.std()
    # Demosaiced: neighbouring pixels' noise is correlated (white noise would give ~0).
    noise = mid[..., 1]
    correlation = np.corrcoef(noise[:, :, :-1].ravel(), noise[:, :, 1:].ravel())[0, 1]
    assert correlation > 0.2


def test_camera_noise_keeps_a_gray_image_gray_in_one_channel():
    gray = shipped("camera").astype(np.float32)[:128, :128, None]
    noisy = add_noise(gray, np.array([0, 1]), NoiseSpec("camera")).numpy()
    assert noisy.shape == gray.shape and np.abs(noisy - gray).mean() > 0.002


def test_a_camera_noise_level_is_the_measured_rms_noise():
    spec = NoiseSpec("poisson-gaussian", shot_range=(0.004, 0.004), read_range=(0.0, 0.0))
    clean = flat(0.5, count=4)
    noisy = add_noise(clean, np.array([0, 9]), spec)
    levels = noise_levels(clean, np.array([0, 9]), spec, noisy).numpy()
    np.testing.assert_allclose(levels, np.sqrt(0.004 * 0.5), rtol=0.03)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (("--noise", "camera", "--noise-shot-range", "0.01,0.001"), "noise_shot_range must be two numbers"),
        (("--noise", "camera", "--noise-read-range", "-0.01,0.02"), "noise_read_range must all be 0 or more"),
        (("--noise", "camera", "--noise-shot-range", "0,0.01"), "noise_shot_range must all be positive"),
        (("--noise", "camera", "--noise-jpeg-range", "90,101"), "noise_jpeg_range must all be between 1 and 100"),
        (
            (
                "--noise-channel-spread",
                "1.5",
            ),
            "noise_channel_spread must be between 0 and 1",
        ),
        (
            (
                "--noise-shot-range",
                "0.01",
            ),
            "--noise-shot-range must be LOW,HIGH",
        ),
        (
            ("--arch", "conv", "--noise", "camera", "--noise-level-input"),
            "noise_level_input needs a noise with a level",
        ),
        (("--targets", "somewhere"), "targets needs data"),
        (("--self-supervised", "--dataset", "mnist-sample"), "self_supervised needs data"),
    ],
)
def test_bad_noise_and_noisy_data_settings_are_one_line_usage_errors(tmp_path, args, fragment):
    result = run_dae("train", *args, "--out", tmp_path / "m")
    assert_clean_error(result, 2, fragment)
    assert not (tmp_path / "m").exists()


def test_dae_noise_makes_camera_noise_files(tmp_path):
    result = run_dae(
        "noise",
        SHIPPED / "coins.png",
        "--noise",
        "camera",
        "--noise-jpeg-range",
        "80,90",
        "--seed",
        "3",
        "-o",
        tmp_path / "a.png",
    )
    assert result.returncode == 0, result.stderr
    again = run_dae(
        "noise",
        SHIPPED / "coins.png",
        "--noise",
        "camera",
        "--noise-jpeg-range",
        "80,90",
        "--seed",
        "3",
        "-o",
        tmp_path / "b.png",
    )
    assert again.returncode == 0, again.stderr
    a, b = (np.asarray(Image.open(tmp_path / name)) for name in ("a.png", "b.png"))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a.astype(float) - np.asarray(Image.open(SHIPPED / "coins.png").convert("L"))).mean() > 1
