"""Camera noise, training on noisy/target pairs, training from noisy images alone, and
starting from another model's weights (issue 16)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import FLOAT32, SHIPPED, assert_clean_error, run_dae, shipped
from PIL import Image

from dae_cli.noise import NoiseSpec, add_noise, noise_levels

SMALL_CONV = ("--arch", "conv", "--filters", "16,32", "--blocks-per-level", "1", "--batch-size", "8", *FLOAT32)


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
        (("--noise-channel-spread", "1.5",), "noise_channel_spread must be between 0 and 1"),
        (("--noise-shot-range", "0.01",), "--noise-shot-range must be LOW,HIGH"),
        (("--arch", "conv", "--noise", "camera", "--noise-level-input"), "noise_level_input needs a noise with a level"),
        (("--targets", "somewhere"), "targets needs data"),
        (("--self-supervised", "--dataset", "mnist-sample"), "self_supervised needs data"),
    ],
)
def test_bad_noise_and_noisy_data_settings_are_one_line_usage_errors(tmp_path, args, fragment):
    result = run_dae("train", *args, "--out", tmp_path / "m")
    assert_clean_error(result, 2, fragment)
    assert not (tmp_path / "m").exists()


def test_dae_noise_makes_camera_noise_files(tmp_path):
    result = run_dae("noise", SHIPPED / "coins.png", "--noise", "camera", "--noise-jpeg-range", "80,90",
                     "--seed", "3", "-o", tmp_path / "a.png")
    assert result.returncode == 0, result.stderr
    again = run_dae("noise", SHIPPED / "coins.png", "--noise", "camera", "--noise-jpeg-range", "80,90",
                    "--seed", "3", "-o", tmp_path / "b.png")
    assert again.returncode == 0, again.stderr
    a, b = (np.asarray(Image.open(tmp_path / name)) for name in ("a.png", "b.png"))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a.astype(float) - np.asarray(Image.open(SHIPPED / "coins.png").convert("L"))).mean() > 1


# --- pairs from disk -------------------------------------------------------------------


def _noisy(image: np.ndarray, seed: int, std: float = 25 / 255) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(image + rng.normal(0, std, image.shape), 0, 1)


def _save(pixels: np.ndarray, path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.rint(pixels * 255).astype(np.uint8)).save(path)


@pytest.fixture(scope="module")
def pair_folders(tmp_path_factory):
    """noisy/ and clean/ of the shipped photographs' gray quarters, one in a subfolder,
    the noisy ones as JPEG-free PNG under the same relative names."""
    root = tmp_path_factory.mktemp("pairs")
    for name in ("camera", "coins", "astronaut"):
        image = shipped(name)
        h, w = image.shape[0] // 2, image.shape[1] // 2
        for i, (y, x) in enumerate([(0, 0), (0, w), (h, 0), (h, w)]):
            quarter = image[y : y + h, x : x + w]
            relative = f"{name}/{i}.png" if name == "coins" else f"{name}-{i}.png"
            _save(quarter, root / "clean" / relative)
            _save(_noisy(quarter, hash((name, i)) % 1000), root / "noisy" / relative)
    return root / "noisy", root / "clean"


def test_pairs_match_by_relative_path_and_crops_take_both_alike(pair_folders):
    from dae_cli.backend import tf
    from dae_cli.data import match_pairs, random_patches, split_pair

    noisy, clean = pair_folders
    pairs = match_pairs(noisy, clean)
    assert len(pairs) == 12
    assert all(a.relative_to(noisy) == b.relative_to(clean) for a, b in pairs)
    # The pipeline crops and flips the stacked pair: input and target stay aligned.
    image = np.asarray(Image.open(pairs[0][1]))[..., None]
    stacked = np.concatenate([image, image], axis=-1)
    for patch in random_patches([stacked], 32, seed=3).take(8):
        a, b = split_pair(tf.convert_to_tensor(patch))
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_unmatched_files_are_an_error_that_names_them(pair_folders, tmp_path):
    import shutil

    noisy, clean = pair_folders
    shutil.copytree(clean, tmp_path / "clean")
    (tmp_path / "clean" / "camera-2.png").unlink()
    result = run_dae("train", "--data", noisy, "--targets", tmp_path / "clean", *SMALL_CONV, "--patch-size", "32",
                     "--out", tmp_path / "m")
    assert_clean_error(result, 2, "unmatched files", "camera-2.png")
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_dae("train", "--data", noisy, "--targets", empty, *SMALL_CONV, "--patch-size", "32",
                     "--out", tmp_path / "m")
    assert_clean_error(result, 2, "--targets no images")
    assert not (tmp_path / "m").exists()


def test_training_on_pairs_learns_to_denoise_them(pair_folders, tmp_path):
    noisy, clean = pair_folders
    result = run_dae("--json", "train", "--data", noisy, "--targets", clean, *SMALL_CONV, "--patch-size", "32",
                     "--epochs", "3", "--out", tmp_path / "m")
    assert result.returncode == 0, result.stderr
    import json

    metrics = json.loads(result.stdout)["metrics"]
    # Scored on the held-out pairs' own noisy inputs and clean targets, not on added noise.
    assert metrics["psnr_noisy"]["mean"] < 21
    assert metrics["psnr_denoised"]["mean"] > metrics["psnr_noisy"]["mean"] + 4


# --- self-supervised ---------------------------------------------------------------------


def test_self_supervised_training_on_noisy_images_alone_beats_its_noisy_input(tmp_path):
    """The user's case: a folder of noisy photographs, no clean ones; train on them, then
    denoise those very photographs."""
    folder = tmp_path / "noisy"
    clean = {}
    for name in ("camera", "coins", "astronaut", "chelsea"):
        clean[name] = shipped(name)
        _save(_noisy(clean[name], len(name)), folder / f"{name}.png")
    result = run_dae("train", "--self-supervised", "--data", folder, *SMALL_CONV, "--patch-size", "32",
                     "--epochs", "3", "--out", tmp_path / "m")
    assert result.returncode == 0, result.stderr
    assert "self-supervised" in run_dae("info", tmp_path / "m").stdout
    denoised = run_dae("denoise", folder / "camera.png", "-m", tmp_path / "m", "-o", tmp_path / "out.png")
    assert denoised.returncode == 0, denoised.stderr
    from dae_cli.metrics import psnr

    before = psnr(clean["camera"][None, ..., None], np.asarray(Image.open(folder / "camera.png"))[None, ..., None] / 255)
    after = psnr(clean["camera"][None, ..., None], np.asarray(Image.open(tmp_path / "out.png"))[None, ..., None] / 255)
    assert after[0] > before[0] + 3, (before, after)


def test_self_supervised_needs_what_it_trains_on(tmp_path):
    result = run_dae("train", "--self-supervised", "--data", SHIPPED, "--arch", "conv", "--patch-size", "34",
                     "--out", tmp_path / "m")
    assert_clean_error(result, 2, "patch_size divisible by")
    result = run_dae("train", "--self-supervised", "--data", SHIPPED, "--patch-size", "32", "--out", tmp_path / "m")
    assert_clean_error(result, 2, "self_supervised needs architecture")


def test_self_supervised_loss_is_zero_for_a_perfect_pair_and_picks_neighbours():
    from dae_cli.backend import tf
    from dae_cli.neighbor2neighbor import neighbor_pair, second_image

    image = np.arange(2 * 8 * 8 * 1, dtype=np.float32).reshape(2, 8, 8, 1)
    first, packed = neighbor_pair(tf.constant(image), tf.constant([1, 2], tf.int64))
    second = second_image(packed, 1).numpy()
    first = first.numpy()
    assert first.shape == second.shape == (2, 4, 4, 1)
    # Each pair of picks is two different pixels of one 2x2 cell, side by side or one above the other.
    difference = np.abs(first - second)
    assert set(np.unique(difference)) <= {1.0, 8.0}


# --- fine-tuning ---------------------------------------------------------------------


def test_init_from_starts_from_another_models_weights(tmp_path):
    """A blind model started from the built-in `photo`, which takes the noise level: it
    starts as `photo` given the level FOLD_LEVEL (the level channel's weights folded into
    the first convolution's bias), every other weight the built-in's."""
    from dae_cli import artifacts
    from dae_cli.builtins import builtin_path
    from dae_cli.training import FOLD_LEVEL

    result = run_dae("train", "--config", "configs/photo-real.toml", "--data", SHIPPED, "--limit", "2",
                     "--epochs", "1", "--learning-rate", "1e-9", "--lr-schedule", "constant", "--out", tmp_path / "m",
                     cwd=SHIPPED.parents[1])
    assert result.returncode == 0, result.stderr
    assert "20 of 20 weights copied, its noise level input folded in at sigma 15" in result.stderr
    mine = artifacts.load_keras_model(tmp_path / "m" / "autoencoder.keras")
    theirs = artifacts.load_keras_model(builtin_path("photo") / "autoencoder.keras")
    for a, b in zip(mine.get_weights()[2:], theirs.get_weights()[2:]):
        np.testing.assert_allclose(a, b, atol=1e-5)
    # Away from the border (where zero padding meets the level map), the same output.
    pixels = shipped("astronaut", "RGB").astype(np.float32)[None, :128, :128]
    level_map = np.full(pixels.shape[:3] + (1,), FOLD_LEVEL, np.float32)
    blind = mine.predict(pixels, verbose=0)[0, 32:-32, 32:-32]
    given = theirs.predict(np.concatenate([pixels, level_map], -1), verbose=0)[0, 32:-32, 32:-32]
    np.testing.assert_allclose(blind, given, atol=1e-3)


def test_init_from_a_model_of_other_layers_is_refused(tmp_path):
    result = run_dae("train", "--arch", "conv", "--filters", "8", "--data", SHIPPED, "--patch-size", "32",
                     "--init-from", "photo", "--out", tmp_path / "m")
    assert_clean_error(result, 2, "--init-from photo: its layers differ")


# --- the built-in model for camera noise ---------------------------------------------------


def test_built_in_photo_real_verifies_keeps_colour_and_gray_and_beats_photo_on_camera_noise(tmp_path):
    import json

    from dae_cli.metrics import psnr

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
            scores[model] = psnr(clean[None], (np.asarray(denoised, np.float32) / 255)[None])[0]
        noisy_score = psnr(clean[None], (noisy.astype(np.float32) / 255).reshape(clean.shape)[None])[0]
        assert scores["photo-real"] > noisy_score + 3, (kind, noisy_score, scores)
        assert scores["photo-real"] > scores["photo"], (kind, scores)
