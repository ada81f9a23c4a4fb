"""Training on noisy data: pairs from disk (`--targets`), noisy images alone
(`--self-supervised`), and starting from another model's weights (`--init-from`)
(issue 16)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import FLOAT32, SHIPPED, assert_clean_error, run_dae, shipped
from PIL import Image

SMALL_CONV = ("--arch", "conv", "--filters", "16,32", "--blocks-per-level", "1", "--batch-size", "8", *FLOAT32)


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
    from dae_cli.training.data import match_pairs, random_patches, split_pair

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
    result = run_dae(
        "train",
        "--data",
        noisy,
        "--targets",
        tmp_path / "clean",
        *SMALL_CONV,
        "--patch-size",
        "32",
        "--out",
        tmp_path / "m",
    )
    assert_clean_error(result, 2, "unmatched files", "camera-2.png")
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_dae(
        "train", "--data", noisy, "--targets", empty, *SMALL_CONV, "--patch-size", "32", "--out", tmp_path / "m"
    )
    assert_clean_error(result, 2, "--targets no images")
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("estimator", [(), ("--noise-estimator",)], ids=["blind", "noise-estimator"])
def test_training_on_pairs_learns_to_denoise_them(pair_folders, tmp_path, estimator):
    """Blind, and with the built-in photo's design (`--noise-estimator`), whose estimate
    learns each pair's local noise (noisy minus clean) as it learns added noise."""
    noisy, clean = pair_folders
    result = run_dae(
        "--json",
        "train",
        "--data",
        noisy,
        "--targets",
        clean,
        *SMALL_CONV,
        *estimator,
        "--patch-size",
        "32",
        "--epochs",
        "3",
        "--out",
        tmp_path / "m",
    )
    assert result.returncode == 0, result.stderr
    import json

    assert json.loads((tmp_path / "m" / "dae.json").read_text()).get("noise_estimator", False) == bool(estimator)
    metrics = json.loads(result.stdout)["metrics"]
    # Scored on the held-out pairs' own noisy inputs and clean targets, not on added noise.
    assert metrics["psnr_noisy"]["mean"] < 21
    assert metrics["psnr_denoised"]["mean"] > metrics["psnr_noisy"]["mean"] + 4
    if estimator:  # its own reading of a pair's noisy image: the pairs' noise, sigma 25 (the estimate starts at 5)
        reading = run_dae("--json", "denoise", noisy / "camera-0.png", "-m", tmp_path / "m", "-o", tmp_path / "o.png")
        assert reading.returncode == 0, reading.stderr
        assert json.loads(reading.stdout)["sigma"] == pytest.approx(25, rel=0.2)


# --- self-supervised ---------------------------------------------------------------------


def test_self_supervised_training_on_noisy_images_alone_beats_its_noisy_input(tmp_path):
    """The user's case: a folder of noisy photographs, no clean ones; train on them, then
    denoise those very photographs."""
    folder = tmp_path / "noisy"
    clean = {}
    for name in ("camera", "coins", "astronaut", "chelsea"):
        clean[name] = shipped(name)
        _save(_noisy(clean[name], len(name)), folder / f"{name}.png")
    result = run_dae(
        "train",
        "--self-supervised",
        "--data",
        folder,
        *SMALL_CONV,
        "--patch-size",
        "32",
        "--epochs",
        "3",
        "--out",
        tmp_path / "m",
    )
    assert result.returncode == 0, result.stderr
    assert "self-supervised" in run_dae("info", tmp_path / "m").stdout
    denoised = run_dae("denoise", folder / "camera.png", "-m", tmp_path / "m", "-o", tmp_path / "out.png")
    assert denoised.returncode == 0, denoised.stderr
    from dae_cli.apply.metrics import psnr

    before = psnr(
        clean["camera"][None, ..., None], np.asarray(Image.open(folder / "camera.png"))[None, ..., None] / 255
    )
    after = psnr(clean["camera"][None, ..., None], np.asarray(Image.open(tmp_path / "out.png"))[None, ..., None] / 255)
    assert after[0] > before[0] + 3, (before, after)


def test_self_supervised_needs_what_it_trains_on(tmp_path):
    result = run_dae(
        "train", "--self-supervised", "--data", SHIPPED, "--arch", "conv", "--patch-size", "34", "--out", tmp_path / "m"
    )
    assert_clean_error(result, 2, "patch_size divisible by")
    result = run_dae("train", "--self-supervised", "--data", SHIPPED, "--patch-size", "32", "--out", tmp_path / "m")
    assert_clean_error(result, 2, "self_supervised needs architecture")
    result = run_dae(
        "train",
        "--self-supervised",
        "--data",
        SHIPPED,
        *SMALL_CONV,
        "--noise-estimator",
        "--patch-size",
        "32",
        "--out",
        tmp_path / "m",
    )  # no clean image to learn the true noise from
    assert_clean_error(result, 2, "self_supervised cannot train a noise_estimator")


def test_neighbour_sampler_picks_two_adjacent_pixels_of_each_cell():
    from dae_cli.backend import tf
    from dae_cli.training.neighbor2neighbor import neighbor_pair, second_image

    image = np.arange(2 * 8 * 8 * 1, dtype=np.float32).reshape(2, 8, 8, 1)
    first, packed = neighbor_pair(tf.constant(image), tf.constant([1, 2], tf.int64))
    second = second_image(packed, 1).numpy()
    first = first.numpy()
    assert first.shape == second.shape == (2, 4, 4, 1)
    # Each pair of picks is two different pixels of one 2x2 cell, side by side or one above the other.
    difference = np.abs(first - second)
    assert set(np.unique(difference)) <= {1.0, 8.0}
    assert {1.0, 8.0} <= set(np.unique(difference))  # horizontal and vertical neighbours both occur


# --- fine-tuning ---------------------------------------------------------------------


def test_init_from_starts_from_another_models_weights(tmp_path):
    """A blind model started from the built-in `photo-gaussian`, which takes the noise
    level: it starts as `photo-gaussian` given the level FOLD_LEVEL (the level channel's
    weights folded into the first convolution's bias), every other weight the built-in's."""
    from dae_cli.models import artifacts
    from dae_cli.models.builtin_models import builtin_path
    from dae_cli.training.model_setup import FOLD_LEVEL

    result = run_dae(
        "train",
        "--config",
        "configs/photo-real.toml",
        "--data",
        SHIPPED,
        "--limit",
        "2",
        "--epochs",
        "1",
        "--learning-rate",
        "1e-9",
        "--lr-schedule",
        "constant",
        "--out",
        tmp_path / "m",
        cwd=SHIPPED.parents[1],
    )
    assert result.returncode == 0, result.stderr
    assert "20 of 20 weights copied, its noise level input folded in at sigma 15" in result.stderr
    mine = artifacts.load_keras_model(tmp_path / "m" / "autoencoder.keras")
    theirs = artifacts.load_keras_model(builtin_path("photo-gaussian") / "autoencoder.keras")
    for a, b in zip(mine.get_weights()[2:], theirs.get_weights()[2:]):
        np.testing.assert_allclose(a, b, atol=1e-5)
    # Away from the border (where zero padding meets the level map), the same output.
    pixels = shipped("astronaut", "RGB").astype(np.float32)[None, :128, :128]
    level_map = np.full(pixels.shape[:3] + (1,), FOLD_LEVEL, np.float32)
    blind = mine.predict(pixels, verbose=0)[0, 32:-32, 32:-32]
    given = theirs.predict(np.concatenate([pixels, level_map], -1), verbose=0)[0, 32:-32, 32:-32]
    np.testing.assert_allclose(blind, given, atol=1e-3)


def test_init_from_a_model_of_other_layers_is_refused(tmp_path):
    result = run_dae(
        "train",
        "--arch",
        "conv",
        "--filters",
        "8",
        "--data",
        SHIPPED,
        "--patch-size",
        "32",
        "--init-from",
        "photo",
        "--out",
        tmp_path / "m",
    )
    assert_clean_error(result, 2, "--init-from photo: its layers differ")
