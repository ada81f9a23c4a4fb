"""The whole tool through its CLI: train, denoise, encode, decode, info, resume."""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import FLOAT32, cli_env, json_lines, run_dae, save_gray
from PIL import Image


def read_png(path) -> np.ndarray:
    return np.asarray(Image.open(path), dtype=np.float32)[..., None] / 255.0


@pytest.fixture
def noisy_files(tmp_path, mnist_test_images):
    clean, noisy = mnist_test_images
    folder = tmp_path / "noisy"
    folder.mkdir()
    paths = [save_gray(noisy[i], folder / f"digit{i}.png") for i in range(8)]
    return paths, clean[:8], np.stack([read_png(p) for p in paths])


def test_denoise_matches_the_keras_autoencoder_and_beats_the_noise(trained_model, noisy_files, tmp_path):
    paths, clean, noisy = noisy_files
    result = run_dae("denoise", *paths, "-m", trained_model, "-o", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    outputs = result.stdout.split()
    assert outputs == [str(tmp_path / "out" / f"digit{i}.denoised.png") for i in range(8)]
    denoised = np.stack([read_png(p) for p in outputs])

    from dae_cli.models import artifacts
    from dae_cli.models.denoiser import load_denoiser

    keras_model = artifacts.load_keras_model(trained_model / "autoencoder.keras")
    expected = keras_model.predict(noisy, verbose=0)
    composed = load_denoiser(trained_model).denoise(noisy)
    np.testing.assert_allclose(composed, expected, atol=1e-5)  # before quantisation
    np.testing.assert_allclose(denoised, np.rint(expected * 255) / 255, atol=1.01 / 255)
    assert np.mean((denoised - clean) ** 2) < 0.5 * np.mean((noisy - clean) ** 2)


def test_denoise_writes_beside_inputs_and_never_overwrites(trained_model, noisy_files):
    paths, _, _ = noisy_files
    first = run_dae("denoise", paths[0], "-m", trained_model)
    assert first.returncode == 0, first.stderr
    target = paths[0].with_name("digit0.denoised.png")
    assert first.stdout.strip() == str(target)
    before = target.read_bytes()
    target.write_bytes(b"user data")
    again = run_dae("denoise", paths[0], "-m", trained_model)
    assert again.returncode == 1
    assert "exists; pass --overwrite" in again.stderr
    assert target.read_bytes() == b"user data"
    forced = run_dae("denoise", paths[0], "-m", trained_model, "--overwrite")
    assert forced.returncode == 0 and target.read_bytes() == before


@pytest.mark.parametrize("suffix", [".npz", None])
def test_encode_then_decode_round_trips(trained_model, noisy_files, tmp_path, suffix):
    paths, _, noisy = noisy_files
    if suffix is None:  # JSON lines through a pipe
        encoded = run_dae("encode", *paths, "-m", trained_model)
        assert encoded.returncode == 0, encoded.stderr
        records = json_lines(encoded.stdout)
        assert [r["source"] for r in records] == [str(p) for p in paths]
        assert all(len(r["latent"]) == 16 for r in records)
        decoded = run_dae("decode", "-", "-m", trained_model, "-o", tmp_path / "dec", input=encoded.stdout)
    else:
        latents = tmp_path / f"latents{suffix}"
        encoded = run_dae("encode", *paths, "-m", trained_model, "-o", latents)
        assert encoded.returncode == 0, encoded.stderr
        assert encoded.stdout.strip() == str(latents)
        decoded = run_dae("decode", latents, "-m", trained_model, "-o", tmp_path / "dec")
    assert decoded.returncode == 0, decoded.stderr
    outputs = decoded.stdout.split()
    assert len(outputs) == 8
    if suffix != ".npy":  # every format but bare .npy keeps the source names
        assert [p.split("/")[-1] for p in outputs] == [f"digit{i}.decoded.png" for i in range(8)]
    from dae_cli.models.denoiser import load_denoiser

    expected = load_denoiser(trained_model).denoise(noisy)
    images = np.stack([read_png(p) for p in outputs])
    np.testing.assert_allclose(images, expected, atol=1.01 / 255)


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".csv", ".json"])
def test_every_latent_format_reads_back_what_was_written(tmp_path, suffix):
    # The CLI round trip above runs .npz and a pipe; the formats share this code path.
    from dae_cli.io.latents import read_latents, write_latents

    sources = [f"digit{i}.png" for i in range(3)]
    vectors = np.random.default_rng(0).normal(size=(3, 16)).astype(np.float32)
    path = tmp_path / f"latents{suffix}"
    write_latents(path, sources, vectors)
    items = read_latents(str(path))
    np.testing.assert_array_equal(np.stack([np.asarray(item.vector, np.float32) for item in items]), vectors)
    if suffix != ".npy":  # every format but bare .npy keeps the source names
        assert [item.source for item in items] == sources


def test_saved_models_load_with_tensorflow_alone(trained_model):
    script = f"""
import sys
import numpy as np
import tensorflow as tf
encoder = tf.saved_model.load({str(trained_model / "encoder")!r})
decoder = tf.saved_model.load({str(trained_model / "decoder")!r})
latent = encoder.serve(np.zeros((2, 28, 28, 1), np.float32))
image = decoder.serve(latent)
sig = encoder.signatures['serving_default']
assert not any(name.startswith('dae_cli') for name in sys.modules)
print(tuple(latent.shape), tuple(image.shape), len(sig.structured_outputs))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd="/", env=cli_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[-2] == "(2, 16) (2, 28, 28, 1) 1"


def test_info_shows_the_manifest(trained_model):
    table = run_dae("info", trained_model)
    assert table.returncode == 0
    assert "latent size" in table.stdout and "16" in table.stdout
    as_json = run_dae("--json", "info", trained_model)
    record = json.loads(as_json.stdout)
    assert record["schema_version"] == 1
    assert record["manifest"]["latent_dim"] == 16


def test_train_with_defaults_then_denoise_with_no_flags_then_resume(tmp_path, mnist_test_images):
    _, noisy = mnist_test_images
    save_gray(noisy[0], tmp_path / "noisy.png")
    first = run_dae("train", "--dataset", "mnist-sample", "--epochs", "1", "--limit", "500", *FLOAT32, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "epoch 1/1" in first.stderr and "dae-model" in first.stdout
    assert (tmp_path / "dae-model" / "dae.json").exists()

    denoised = run_dae("denoise", "noisy.png", cwd=tmp_path)
    assert denoised.returncode == 0, denoised.stderr
    assert denoised.stdout.strip() == "noisy.denoised.png"

    refused = run_dae("train", "--dataset", "mnist-sample", "--epochs", "1", "--limit", "500", *FLOAT32, cwd=tmp_path)
    assert refused.returncode == 2 and "--overwrite" in refused.stderr

    resumed = run_dae("--json", "train", "--resume", "--epochs", "2", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming at epoch 2/2" in resumed.stderr
    assert json.loads(resumed.stdout)["epochs_done"] == 2
    history = (tmp_path / "dae-model" / "history.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in history] == ["epoch", "1", "2"]


def test_help_never_imports_tensorflow():
    script = """
import sys
from dae_cli.cli.entry import main
for args in (['--help'], ['train', '--help'], ['denoise', '--help'], ['encode', '--help'], ['decode', '--help'], ['info', '--help']):
    assert main(args) == 0
print('tensorflow' in sys.modules)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=cli_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("False")
    assert "Exit codes" in result.stdout


def test_train_reports_the_figures_dae_evaluate_gives(trained_model):
    # Same split (the sample's 1,000 test images), same seeded noise: the same scores.
    from dae_cli.models import artifacts

    trained = artifacts.read_manifest(trained_model)["metrics"]
    result = run_dae("--json", "evaluate", "-m", trained_model)
    assert result.returncode == 0, result.stderr
    evaluated = json.loads(result.stdout)
    assert evaluated["images"] == 1000
    assert evaluated["psnr_noisy"] == trained["psnr_noisy"]
    for key in ("psnr_denoised", "ssim_denoised"):
        assert evaluated[key]["mean"] == pytest.approx(trained[key]["mean"], abs=1e-3)


def test_encode_tiles_gives_one_latent_per_tile_and_decodes_them(trained_model, tmp_path):
    page = tmp_path / "page.png"
    Image.new("L", (56, 42), 30).save(page)
    encoded = run_dae("encode", page, "-m", trained_model, "--tiles")
    assert encoded.returncode == 0, encoded.stderr
    records = json_lines(encoded.stdout)
    assert [r["source"] for r in records] == [f"{page}#{y},{x}" for y in (0, 14) for x in (0, 14, 28)]
    decoded = run_dae("decode", "-", "-m", trained_model, "-o", tmp_path / "tiles", input=encoded.stdout)
    assert decoded.returncode == 0, decoded.stderr
    assert sorted(p.split("/")[-1] for p in decoded.stdout.split()) == sorted(
        f"page.tile{y}-{x}.decoded.png" for y in (0, 14) for x in (0, 14, 28)
    )
    plain = run_dae("encode", page, "-m", trained_model)
    assert plain.returncode == 1 and "encode: --tiles) or pass --resize" in plain.stderr
