"""Models that take the noise level: training over a range, `--sigma auto|LEVEL`, the
level estimate, colour and gray through one colour model, `--tta`, and `dae evaluate`
of a conv model on whole photographs.

The photographs are the public-domain ones shipped in `tests/data`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import FLOAT32, SHIPPED, assert_clean_error, json_lines, photo_folders, run_dae, shipped
from PIL import Image


def psnr(clean: np.ndarray, other: np.ndarray) -> float:
    return float(10 * np.log10(1 / np.mean((np.asarray(clean, np.float64) - other) ** 2)))


def read(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path), np.float64) / 255


def noisy_file(clean: np.ndarray, sigma: float, path: Path, seed: int = 0) -> Path:
    noisy = np.clip(clean + np.random.default_rng(seed).normal(0, sigma / 255, clean.shape), 0, 1)
    Image.fromarray(np.rint(noisy * 255).astype(np.uint8)).save(path)
    return path


@pytest.mark.parametrize("sigma", [5, 15, 25, 50])
def test_the_level_estimate_is_within_ten_percent_on_a_photograph(sigma):
    from dae_cli.noise_level import estimate_sigma

    clean = shipped("astronaut", "RGB")
    noisy = np.clip(clean + np.random.default_rng(sigma).normal(0, sigma / 255, clean.shape), 0, 1)
    noisy = np.rint(noisy * 255) / 255  # as an 8-bit file holds it
    assert estimate_sigma(noisy) * 255 == pytest.approx(sigma, rel=0.10)


def test_sigma_values_parse_on_either_scale():
    from dae_cli.errors import UsageError
    from dae_cli.noise_level import parse_sigma

    assert parse_sigma("auto") == parse_sigma(" AUTO ") == "auto"
    assert parse_sigma("15") == parse_sigma("15/255") == pytest.approx(15 / 255)
    assert parse_sigma("0.06") == pytest.approx(0.06)
    assert parse_sigma("0") == 0.0
    for bad in ("-1", "abc", "15/0", "nan", "inf", ""):
        with pytest.raises(UsageError, match="--sigma"):
            parse_sigma(bad)


@pytest.fixture(scope="module")
def level_model(tmp_path_factory):
    """A small colour conv model that takes the level, trained over sigma 0-50 on crops of
    two shipped photographs, a third of them made gray."""
    root = tmp_path_factory.mktemp("level")
    train, val = photo_folders(root, ("chelsea", "coins"), "RGB")
    out = root / "model"
    result = run_dae(
        "train",
        "--arch",
        "conv",
        "--filters",
        "16,32",
        "--blocks-per-level",
        "1",
        "--loss",
        "mae",
        "--noise-level-input",
        "--channels",
        "3",
        "--gray-fraction",
        "0.3",
        "--data",
        train,
        "--val-data",
        val,
        "--patch-size",
        "32",
        "--batch-size",
        "16",
        "--epochs",
        "8",
        "--learning-rate",
        "0.003",
        "--noise-mean",
        "0",
        "--noise-std-range",
        "0,50/255",
        *FLOAT32,
        "--out",
        out,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    return out


def test_a_level_model_beats_the_noisy_input_at_two_levels_in_colour_and_gray(level_model, tmp_path):
    manifest = json.loads((level_model / "dae.json").read_text())
    assert manifest["noise_level_input"] is True and manifest["image_shape"] == [None, None, 3]
    colour, gray = shipped("astronaut", "RGB")[:160, :200], shipped("camera", "L")[:160, :200]  # never trained on
    for sigma in (15, 40):
        for name, clean in (("colour", colour), ("gray", gray)):
            noisy = noisy_file(clean, sigma, tmp_path / f"{name}-{sigma}.png")
            out = tmp_path / f"{name}-{sigma}.denoised.png"
            result = run_dae("denoise", noisy, "-m", level_model, "--sigma", str(sigma), "-o", out)
            assert result.returncode == 0, result.stderr
            denoised = Image.open(out)
            assert denoised.mode == ("RGB" if name == "colour" else "L")  # colour stays colour, gray stays gray
            assert psnr(clean, read(out)) > psnr(clean, read(noisy)) + 1.0, (name, sigma)


def test_sigma_auto_is_the_default_reported_per_image_and_lower_keeps_more(level_model, tmp_path):
    clean = shipped("astronaut", "RGB")[200:360, 150:350]
    noisy = noisy_file(clean, 30, tmp_path / "n.png")
    result = run_dae("--json", "-v", "denoise", noisy, "-m", level_model, "-o", tmp_path / "auto.png")
    assert result.returncode == 0, result.stderr
    (record,) = json_lines(result.stdout)
    assert record["sigma_estimated"] is True and record["sigma"] == pytest.approx(30, rel=0.12)
    assert f"sigma {record['sigma']:.2f} (estimated)" in result.stderr  # -v says it too
    given = run_dae("--json", "denoise", noisy, "-m", level_model, "--sigma", "30", "-o", tmp_path / "given.png")
    (record,) = json_lines(given.stdout)
    assert record["sigma"] == pytest.approx(30) and record["sigma_estimated"] is False
    # A lower level than the image has removes less: the output stays nearer the input.
    changes = {}
    for level in ("5", "30"):
        out = tmp_path / f"s{level}.png"
        assert run_dae("denoise", noisy, "-m", level_model, "--sigma", level, "-o", out).returncode == 0
        changes[level] = np.abs(read(out) - read(noisy)).mean()
    assert changes["5"] < changes["30"] * 0.7


def test_tta_is_the_mean_of_the_eight_flips_and_rotations(level_model, tmp_path):
    from dae_cli.apply.pipeline import denoise_array
    from dae_cli.models.denoiser import ApplyOptions, load_denoiser

    model = load_denoiser(level_model)
    noisy = read(noisy_file(shipped("astronaut", "RGB")[:96, :120], 20, tmp_path / "n.png")).astype(np.float32)
    level = np.array([20 / 255], np.float32)
    passes = []
    for flip in (False, True):
        for k in range(4):
            view = np.rot90(noisy[:, ::-1] if flip else noisy, k)
            out = np.rot90(model.denoise(np.ascontiguousarray(view)[None], level)[0], -k)
            passes.append(out[:, ::-1] if flip else out)
    expected = np.mean(passes, axis=0)
    denoised, _, _ = denoise_array(model, noisy, 3, ApplyOptions(sigma=20 / 255, tta=True))
    np.testing.assert_allclose(denoised, np.clip(expected, 0, 1), atol=1e-5)
    assert np.abs(passes[0] - expected).max() > 1e-3  # the passes differ: the mean is not one of them
    result = run_dae(
        "denoise", tmp_path / "n.png", "-m", level_model, "--sigma", "20", "--tta", "-o", tmp_path / "t.png"
    )
    assert result.returncode == 0, result.stderr
    assert np.abs(read(tmp_path / "t.png") - np.clip(expected, 0, 1)).max() <= 0.5 / 255 + 1e-6


def test_evaluate_of_a_conv_model_equals_noise_then_denoise_then_scoring(level_model, tmp_path):
    clean_dir, noisy_dir = tmp_path / "clean", tmp_path / "noisy"
    clean_dir.mkdir()
    Image.fromarray(np.asarray(Image.open(SHIPPED / "astronaut.png"))[:150, :170]).save(clean_dir / "a.png")
    Image.fromarray(np.asarray(Image.open(SHIPPED / "coins.png"))[:130, :141]).save(clean_dir / "b.png")
    noise = ["--noise-mean", "0", "--noise-std", "25/255", "--seed", "4"]
    assert run_dae("noise", clean_dir, "-o", noisy_dir, *noise).returncode == 0
    denoised = run_dae("denoise", *sorted(noisy_dir.iterdir()), "-m", level_model, "-o", tmp_path / "den")
    assert denoised.returncode == 0, denoised.stderr
    scores = [psnr(read(clean_dir / f"{n}.png"), read(tmp_path / "den" / f"{n}.noisy.denoised.png")) for n in "ab"]
    result = run_dae("--json", "evaluate", "-m", level_model, "--data", clean_dir, *noise)
    assert result.returncode == 0, result.stderr
    (report,) = json_lines(result.stdout)
    assert report["images"] == 2 and report["sigma"] == "auto" and len(report["sigma_per_image"]) == 2
    assert report["psnr_denoised"]["mean"] == pytest.approx(np.mean(scores), abs=1e-3)
    assert report["psnr_denoised"]["mean"] > report["psnr_noisy"]["mean"] + 1
    given = json_lines(
        run_dae("--json", "evaluate", "-m", level_model, "--data", clean_dir, *noise, "--sigma", "25").stdout
    )[0]
    assert given["sigma"] == "given" and given["sigma_per_image"] == [25.0, 25.0]


@pytest.mark.parametrize("command", ["denoise", "encode", "evaluate"])
@pytest.mark.parametrize("value, fragment", [("-1", "got '-1'"), ("abc", "got 'abc'")])
def test_bad_sigma_values_are_usage_errors(level_model, tmp_path, command, value, fragment):
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(image)
    args = {"denoise": [image], "encode": [image, "-o", tmp_path / "z.npz"], "evaluate": ["--data", tmp_path]}[command]
    result = run_dae(command, *args, "-m", level_model, "--sigma", value)
    assert_clean_error(result, 2, "--sigma")
    assert fragment in result.stderr
    assert not (tmp_path / "a.denoised.png").exists() and not (tmp_path / "z.npz").exists()


@pytest.mark.parametrize("command", ["denoise", "encode", "evaluate"])
def test_sigma_for_a_model_without_a_level_input_is_a_usage_error(trained_model, tmp_path, command):
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(image)
    args = {"denoise": [image], "encode": [image], "evaluate": ["--dataset", "mnist-sample"]}[command]
    result = run_dae(command, *args, "-m", trained_model, "--sigma", "15")
    assert_clean_error(result, 2, "--sigma is for models that denoise by a noise level")
    assert result.stdout == "" and not (tmp_path / "a.denoised.png").exists()


def test_a_colour_image_given_to_a_gray_model_says_so(tmp_path):
    """`photo_model`-like: a gray conv model; the warning names the file and the way out."""
    out = tmp_path / "gray-model"
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    data.mkdir()
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (40, 40), dtype=np.uint8)).save(data / f"{i}.png")
    trained = run_dae(
        "train",
        "--arch",
        "conv",
        "--filters",
        "4,8",
        "--blocks-per-level",
        "1",
        "--data",
        data,
        "--patch-size",
        "16",
        "--epochs",
        "1",
        "--noise-mean",
        "0",
        "--noise-std",
        "0.1",
        *FLOAT32,
        "--out",
        out,
    )
    assert trained.returncode == 0, trained.stderr
    colour = tmp_path / "colour.png"
    Image.fromarray((shipped("astronaut", "RGB")[:64, :64] * 255).astype(np.uint8)).save(colour)
    result = run_dae("denoise", colour, "-m", out)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and str(colour) in warnings[0] and "gray" in warnings[0] and "colour" in warnings[0]
    assert Image.open(tmp_path / "colour.denoised.png").mode == "L"
