"""Noise models end to end, `dae noise`, serving export, and training on patches."""

import subprocess
import sys

import numpy as np
import pytest
from conftest import FLOAT32, cli_env, json_lines, run_dae, save_gray
from PIL import Image, ImageDraw

from dae_cli.models import artifacts


def test_noise_command_is_seeded_and_never_overwrites(tmp_path, mnist_test_images):
    clean, _ = mnist_test_images
    paths = [save_gray(clean[i], tmp_path / f"c{i}.png") for i in range(3)]
    first = run_dae("noise", *paths, "-o", tmp_path / "a", "--seed", "4")
    second = run_dae("noise", *paths, "-o", tmp_path / "b", "--seed", "4")
    other = run_dae("noise", *paths, "-o", tmp_path / "c", "--seed", "5")
    assert first.returncode == second.returncode == other.returncode == 0, first.stderr
    assert first.stdout.split() == [str(tmp_path / "a" / f"c{i}.noisy.png") for i in range(3)]
    read = lambda folder: [np.asarray(Image.open(tmp_path / folder / f"c{i}.noisy.png")) for i in range(3)]  # noqa: E731
    assert all(np.array_equal(x, y) for x, y in zip(read("a"), read("b")))
    assert not np.array_equal(read("a")[0], read("c")[0])
    noisy = read("a")[0] / 255.0
    background = clean[0][..., 0] == 0
    # x + N(0.5, 0.5) clipped to [0, 1]: on black, symmetric about 0.5, ~16% clipped to 0
    assert abs(noisy[background].mean() - 0.5) < 0.05
    assert abs((noisy[background] == 0).mean() - 0.16) < 0.06
    again = run_dae("noise", paths[0], "-o", tmp_path / "a")
    assert again.returncode == 1 and "exists; pass --overwrite" in again.stderr


@pytest.mark.parametrize(
    "flags, check",
    [
        # a third of the pixels go to 0 or 1
        (["--noise", "salt-pepper", "--noise-amount", "0.3"], lambda d: 0.2 < np.mean(np.abs(d) > 0.4) < 0.4),
        # half the pixels dropped to 0, the others untouched
        (
            ["--noise", "mask", "--noise-amount", "0.5"],
            lambda d: 0.4 < np.mean(d < -0.4) < 0.6 and np.all((d == 0) | (d < -0.4)),
        ),
        # x + x * N(0, 0.3): zero mean, std 0.3 * 0.5
        (["--noise", "speckle", "--noise-std", "0.3"], lambda d: abs(d.mean()) < 0.03 and abs(d.std() - 0.15) < 0.03),
        # Poisson(0.5 * 5) / 5: zero mean, std sqrt(0.5 / 5), in steps of 1/5
        (["--noise", "poisson", "--noise-peak", "5"], lambda d: abs(d.mean()) < 0.06 and abs(d.std() - 0.316) < 0.06),
    ],
)
def test_each_noise_model_through_the_cli(tmp_path, flags, check):
    image = tmp_path / "gray.png"
    Image.new("L", (28, 28), 128).save(image)
    result = run_dae("noise", image, *flags, "-o", tmp_path / "n.png")
    assert result.returncode == 0, result.stderr
    difference = np.asarray(Image.open(tmp_path / "n.png"), np.float32) / 255 - 128 / 255
    assert np.abs(difference).max() > 0.05  # it did add noise
    assert check(difference)


def test_training_records_its_noise_model(tmp_path):
    out = tmp_path / "m"
    result = run_dae(
        "train",
        "--dataset",
        "mnist-sample",
        "--limit",
        "300",
        "--epochs",
        "1",
        "--noise",
        "mask",
        "--noise-amount",
        "0.4",
        *FLOAT32,
        "--out",
        out,
    )
    assert result.returncode == 0, result.stderr
    config = artifacts.read_manifest(out)["config"]
    assert (config["noise"], config["noise_amount"]) == ("mask", 0.4)


def test_export_serves_encode_decode_and_denoise_like_the_cli(trained_model, tmp_path, mnist_test_images):
    _, noisy = mnist_test_images
    paths = [save_gray(noisy[i], tmp_path / f"n{i}.png") for i in range(4)]
    exported = tmp_path / "serving" / "1"
    result = run_dae("export", trained_model, "--format", "saved-model", "-o", exported)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(exported)

    listing = subprocess.run(
        [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "show", "--dir", str(exported), "--all"],
        capture_output=True,
        text=True,
        env=cli_env(),
    )
    assert listing.returncode == 0, listing.stderr
    for endpoint in ("encode", "decode", "denoise", "serving_default"):
        assert f"signature_def['{endpoint}']" in listing.stdout

    encoded = json_lines(run_dae("encode", *paths, "-m", trained_model).stdout)
    denoised = run_dae("denoise", *paths, "-m", trained_model, "-o", tmp_path / "den").stdout.split()
    inputs = np.stack([np.asarray(Image.open(p), np.float32)[..., None] / 255 for p in paths])
    np.save(tmp_path / "inputs.npy", inputs)
    script = f"""
import numpy as np, sys, tensorflow as tf
served = tf.saved_model.load({str(exported)!r})
x = np.load({str(tmp_path / "inputs.npy")!r})
z = served.encode(x).numpy()
np.save({str(tmp_path / "z.npy")!r}, z)
np.save({str(tmp_path / "d.npy")!r}, served.denoise(x).numpy())
np.save({str(tmp_path / "r.npy")!r}, served.decode(z).numpy())
assert not any(name.startswith('dae_cli') for name in sys.modules)
"""
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=cli_env(), cwd="/")
    assert loaded.returncode == 0, loaded.stderr
    np.testing.assert_allclose(np.load(tmp_path / "z.npy"), [r["latent"] for r in encoded], atol=1e-4)
    cli_denoised = np.stack([np.asarray(Image.open(p), np.float32)[..., None] / 255 for p in denoised])
    np.testing.assert_allclose(np.load(tmp_path / "d.npy"), cli_denoised, atol=1.01 / 255)
    np.testing.assert_allclose(np.load(tmp_path / "r.npy"), np.load(tmp_path / "d.npy"), atol=1e-5)

    refused = run_dae("export", trained_model, "-o", exported)
    assert refused.returncode == 2 and "--overwrite" in refused.stderr


@pytest.fixture
def photo_folder(tmp_path):
    """Larger generated images of varied sizes: soft discs on a dark background."""
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(10):
        image = Image.new("L", (int(rng.integers(70, 130)), int(rng.integers(70, 130))), 20)
        draw = ImageDraw.Draw(image)
        for _ in range(8):
            x, y, r = rng.integers(0, 110), rng.integers(0, 110), rng.integers(6, 24)
            draw.ellipse([x, y, x + r, y + r], fill=int(rng.integers(120, 255)))
        image.save(folder / f"{i}.png")
    Image.new("L", (20, 20)).save(folder / "too-small.png")
    return folder


def test_patch_training_on_larger_images_then_tiled_denoising(photo_folder, tmp_path):
    out = tmp_path / "model"
    result = run_dae(
        "train",
        "--data",
        photo_folder,
        "--patch-size",
        "32",
        "--epochs",
        "3",
        "--batch-size",
        "32",
        *FLOAT32,
        "--out",
        out,
    )
    assert result.returncode == 0, result.stderr
    assert "smaller than --patch-size 32" in result.stderr
    manifest = artifacts.read_manifest(out)
    assert manifest["image_shape"] == [32, 32, 1] and manifest["config"]["patch_size"] == 32
    assert manifest["metrics"]["psnr_denoised"]["mean"] > manifest["metrics"]["psnr_noisy"]["mean"]

    big = photo_folder / "3.png"
    noisy = run_dae("noise", big, "-o", tmp_path / "noisy.png", "--seed", "1")
    denoised = run_dae("denoise", tmp_path / "noisy.png", "-m", out, "-o", tmp_path / "clean.png")
    assert noisy.returncode == 0 and denoised.returncode == 0, denoised.stderr
    clean = np.asarray(Image.open(big), np.float32) / 255
    restored = np.asarray(Image.open(tmp_path / "clean.png"), np.float32) / 255
    noisy_pixels = np.asarray(Image.open(tmp_path / "noisy.png"), np.float32) / 255
    assert restored.shape == clean.shape
    assert np.mean((restored - clean) ** 2) < np.mean((noisy_pixels - clean) ** 2)


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
