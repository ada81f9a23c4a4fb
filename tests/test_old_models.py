"""Model directories written by an older dae load and compute what they computed then."""

import numpy as np
import pytest
from conftest import ROOT, run_dae

from dae_cli.models import artifacts
from dae_cli.models.denoiser import load_denoiser

OLD = ROOT / "tests" / "fixtures" / "models-2fe6816"


@pytest.mark.parametrize("name, prefix", [("dense-v1", "dense"), ("conv-v1", "conv")])
def test_an_old_model_directory_loads_and_gives_the_same_output(name, prefix):
    expected = np.load(OLD / "expected.npz")
    model = load_denoiser(OLD / name)
    assert not model.takes_noise_level
    np.testing.assert_allclose(model.denoise(expected[f"{prefix}_in"]), expected[f"{prefix}_out"], atol=1e-6)
    np.testing.assert_allclose(model.encode(expected[f"{prefix}_in"]), expected[f"{prefix}_latent"], atol=1e-6)
    keras_model = artifacts.load_keras_model(OLD / name / "autoencoder.keras")  # what --resume and export load
    np.testing.assert_allclose(
        keras_model.predict(expected[f"{prefix}_in"], verbose=0), expected[f"{prefix}_out"], atol=1e-5
    )


def test_an_old_model_directory_shows_its_manifest():
    result = run_dae("info", OLD / "conv-v1")
    assert result.returncode == 0, result.stderr
    assert "conv" in result.stdout


BEFORE = ROOT / "tests" / "fixtures" / "outputs-412fa60"  # see its README


@pytest.mark.parametrize(
    "folder, args",
    [
        ("whole", ["chelsea-noisy.png", "coins-noisy.png", "-m", "photo-gaussian"]),
        (
            "windows",
            [
                "chelsea-noisy.png",
                "coins-noisy.png",
                "-m",
                "photo-gaussian",
                "--max-megapixels",
                "0.01",
                "--overlap",
                "16",
            ]
            + ["--sigma", "20"],
        ),
        ("tta", ["chelsea-noisy.png", "-m", "photo-gaussian", "--tta"]),
        ("dense", ["digit.png", "digits-page.png", "-m", "mnist"]),
    ],
)
def test_denoise_writes_what_it_wrote_before_the_one_pipeline(folder, args, tmp_path):
    """The built-in models, conv (whole, by windows, --tta, gray and colour) and dense
    (its own size and tiled), give the files the code before issue 18 wrote. That code's
    `photo` is `photo-gaussian` since `photo` estimates camera noise too (issue 24)."""
    from PIL import Image

    inputs = [str(BEFORE / "in" / arg) if arg.endswith(".png") else arg for arg in args]
    result = run_dae("-q", "denoise", *inputs, "-o", tmp_path)
    assert result.returncode == 0, result.stderr
    expected = sorted((BEFORE / folder).glob("*.png"))
    assert sorted(path.name for path in tmp_path.iterdir()) == [path.name for path in expected]
    for path in expected:
        before = np.asarray(Image.open(path), np.int16)
        now = np.asarray(Image.open(tmp_path / path.name), np.int16)
        assert now.shape == before.shape
        # Identical on the CPU that wrote them; another CPU's float32 kernels may round
        # a few pixels the other way.
        assert np.abs(now - before).max() <= 1 and np.mean(now != before) < 0.01, path.name
