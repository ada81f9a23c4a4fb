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
