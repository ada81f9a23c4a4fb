"""The model directory: manifest round trip, hashes, refusals."""

import json

import pytest

from dae_cli.errors import ModelError
from dae_cli.models import artifacts
from dae_cli.models.denoiser import load_denoiser


def test_manifest_round_trip(trained_model):
    manifest = artifacts.read_manifest(trained_model)
    assert manifest["format_version"] == artifacts.FORMAT_VERSION
    assert manifest["image_shape"] == [28, 28, 1] and manifest["latent_dim"] == 16
    assert manifest["config"]["layer_filters"] == [32, 64]
    assert set(manifest["versions"]) >= {"dae", "tensorflow", "keras"}
    assert set(manifest["metrics"]) >= {"val_loss", "psnr_noisy", "psnr_denoised", "ssim_noisy", "ssim_denoised"}
    assert manifest["files"] == artifacts.hash_tree(trained_model)
    for name in ("encoder/saved_model.pb", "decoder/saved_model.pb", "autoencoder.keras", "history.csv", "samples.png"):
        assert name in manifest["files"]
    rows = artifacts.read_history(trained_model / "history.csv")
    assert [row["epoch"] for row in rows] == [1, 2, 3] and manifest["epochs_done"] == 3


def test_changed_file_is_refused_unless_verification_is_off(model_copy):
    path = model_copy / "dae.json"
    manifest = json.loads(path.read_text())
    manifest["files"]["encoder/saved_model.pb"] = "0" * 64  # the file no longer matches
    path.write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="does not match the sha256"):
        load_denoiser(model_copy)
    load_denoiser(model_copy, verify=False)  # the user's explicit choice


def test_corrupt_variables_are_refused_before_loading(model_copy):
    variables = model_copy / "decoder" / "variables" / "variables.data-00000-of-00001"
    variables.write_bytes(variables.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(ModelError, match="decoder/variables/variables.data-00000-of-00001 does not match"):
        load_denoiser(model_copy)


def test_newer_format_version_is_refused(model_copy):
    path = model_copy / "dae.json"
    manifest = json.loads(path.read_text())
    manifest["format_version"] = artifacts.FORMAT_VERSION + 1
    path.write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="newer than"):
        artifacts.read_manifest(model_copy)


def test_a_float32_inference_copy_needs_only_the_keras_model(model_copy, tmp_path):
    # How a built-in model is shipped (scripts/ship_model.py --float32) from a training
    # checkpoint committed without its SavedModels (training/photo).
    import shutil

    import numpy as np

    images = np.random.default_rng(0).uniform(size=(3, 28, 28, 1)).astype("float32")
    expected = load_denoiser(model_copy).denoise(images)
    for part in ("encoder", "decoder"):
        shutil.rmtree(model_copy / part)
    (model_copy / "samples.png").unlink()
    manifest = artifacts.write_inference_copy(model_copy, tmp_path / "shipped", float32=True)
    assert manifest["inference_precision"] == "float32"
    assert manifest["files"] == artifacts.hash_tree(tmp_path / "shipped")
    assert "samples.png" not in manifest["files"] and "encoder/saved_model.pb" in manifest["files"]
    np.testing.assert_allclose(load_denoiser(tmp_path / "shipped").denoise(images), expected, atol=1e-6)
    with pytest.raises(ModelError, match="encoder"):  # as it is, the SavedModels are copied: they must be there
        artifacts.write_inference_copy(model_copy, tmp_path / "as-is")
