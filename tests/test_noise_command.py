"""`dae noise`: seeded noisy copies of images, each noise model as documented, never
overwriting; and the noise a training records in its model."""

import numpy as np
import pytest
from conftest import FLOAT32, run_dae, save_gray
from PIL import Image

from dae_cli.models import artifacts


def read_png(path) -> np.ndarray:
    return np.asarray(Image.open(path), np.float64) / 255


def test_noise_std_takes_the_0_255_scale(tmp_path):
    clean = np.full((40, 40), 128, np.uint8)
    Image.fromarray(clean).save(tmp_path / "flat.png")
    result = run_dae("noise", tmp_path / "flat.png", "--noise-mean", "0", "--noise-std", "25/255", "--seed", "1")
    assert result.returncode == 0, result.stderr
    noise = read_png(tmp_path / "flat.noisy.png") - 128 / 255
    assert abs(noise.std() - 25 / 255) < 0.01


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
