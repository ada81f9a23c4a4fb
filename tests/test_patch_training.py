"""Training on a folder of images larger than the model's input: random patches, then
denoising whole images of any size by tiles."""

import numpy as np
import pytest
from conftest import FLOAT32, run_dae
from PIL import Image, ImageDraw

from dae_cli.models import artifacts


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
