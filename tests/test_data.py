"""Training-data loaders: the MNIST cache, npz files and image folders."""

import numpy as np
import pytest
from PIL import Image

from dae_cli.config import Config
from dae_cli.errors import DaeError, UsageError
from dae_cli.training import data


def test_mnist_is_read_from_the_keras_cache_honouring_keras_home(tmp_path, monkeypatch):
    cache = tmp_path / "datasets"
    cache.mkdir()
    x_train = np.arange(3 * 28 * 28, dtype=np.uint8).reshape(3, 28, 28)
    np.savez(cache / "mnist.npz", x_train=x_train, y_train=np.zeros(3), x_test=x_train[:2], y_test=np.zeros(2))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert data.keras_cache_path() == cache / "mnist.npz"
    loaded = data.load_training_data(Config())
    assert loaded.x_train.shape == (3, 28, 28, 1) and loaded.x_train.dtype == np.uint8
    np.testing.assert_array_equal(loaded.x_train[..., 0], x_train)
    assert loaded.source == "mnist"


def test_offline_without_cache_names_the_alternatives(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    from dae_cli.backend import keras

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    with pytest.raises(DaeError, match="--data PATH or --dataset mnist-sample") as raised:
        data.load_training_data(Config())
    assert "OSError: network is unreachable" in str(raised.value)  # the cause, not just its type


def test_mnist_sample_ships_with_the_package():
    loaded = data.load_training_data(Config(dataset="mnist-sample"))
    assert loaded.x_train.shape == (4000, 28, 28, 1)
    assert loaded.x_val.shape == (1000, 28, 28, 1)
    assert 0.10 < loaded.x_train.mean() / 255 < 0.16  # real digits, MNIST's mean is 0.13


def test_npz_in_keras_layout_with_float_images_and_channels(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "set.npz"
    np.savez(path, x_train=rng.random((10, 8, 8, 3)), x_test=rng.random((4, 8, 8, 3)))
    loaded = data.load_training_data(Config(data=str(path), channels=1))
    assert loaded.x_train.shape == (10, 8, 8, 1) and loaded.image_shape == (8, 8, 1)


def test_npz_missing_arrays_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, images=np.zeros((2, 8, 8)))
    with pytest.raises(UsageError, match="missing array"):
        data.load_training_data(Config(data=str(path)))


def test_image_folder_with_mixed_modes_and_sizes(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    gray = (rng.random((16, 16)) * 255).astype(np.uint8)
    Image.fromarray(gray).save(folder / "a.png")
    Image.fromarray(gray).convert("RGBA").save(folder / "sub" / "b.png")
    Image.fromarray(gray).convert("P").save(folder / "c.bmp")
    Image.fromarray(gray).resize((20, 12)).save(folder / "d.jpg")
    Image.fromarray(gray).convert("RGB").save(folder / "e.tiff")
    (folder / "notes.txt").write_text("not an image")
    warnings = []
    loaded = data.load_training_data(Config(data=str(folder), val_split=0.2), warn=warnings.append)
    assert loaded.image_shape == (16, 16, 1)  # all gray: one channel; most common size
    assert len(loaded.x_train) + len(loaded.x_val) == 5
    assert len(loaded.x_val) == 1
    assert any("resized 1 image" in w for w in warnings)
    rgb = data.load_training_data(Config(data=str(folder), channels=3))
    assert rgb.image_shape == (16, 16, 3)


def test_limit_means_at_most_n_images_of_each_split(tmp_path):
    loaded = data.load_training_data(Config(dataset="mnist-sample", limit=5000))
    assert (len(loaded.x_train), len(loaded.x_val)) == (4000, 1000)
    loaded = data.load_training_data(Config(dataset="mnist-sample", limit=1500))
    assert (len(loaded.x_train), len(loaded.x_val)) == (1500, 1000)
    folder = tmp_path / "big"
    folder.mkdir()
    for i in range(4):
        Image.new("L", (40, 40), i * 50).save(folder / f"{i}.png")
    patches = data.load_training_data(Config(data=str(folder), patch_size=8, limit=100, val_split=0.25))
    assert len(patches.x_train) == 3


def test_training_stream_shuffles_distinct_images_anew_every_epoch():
    from dae_cli.noise import NoiseSpec

    images = (np.arange(8, dtype=np.uint8) * 30).reshape(8, 1, 1, 1) * np.ones((1, 4, 4, 1), np.uint8)
    stream = data.training_dataset(images, batch_size=8, noise=NoiseSpec(), seed=3)
    orders = [
        tuple(np.rint(clean[:, 0, 0, 0] * 255 / 30).astype(int)) for _, clean in stream.take(3).as_numpy_iterator()
    ]
    for order in orders:
        assert sorted(order) == list(range(8))  # each epoch: every image once
    assert orders[0] != tuple(range(8))  # shuffled
    assert len(set(orders)) == 3  # and shuffled anew each epoch
    again = [
        tuple(np.rint(c[:, 0, 0, 0] * 255 / 30).astype(int))
        for _, c in data.training_dataset(images, 8, NoiseSpec(), seed=3).take(3).as_numpy_iterator()
    ]
    assert again == orders  # seeded


def test_image_folders_leave_daes_own_outputs_out(tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    for name in ("a.png", "b.png", "a.noisy.png", "b.denoised.png"):
        Image.new("L", (8, 8), 100).save(folder / name)
    warnings = []
    loaded = data.load_training_data(Config(data=str(folder), val_split=0.5), warn=warnings.append)
    assert len(loaded.x_train) + len(loaded.x_val) == 2
    assert any("skipped 2 file(s) named like dae's outputs" in w for w in warnings)


def test_training_stream_gives_fresh_noise_every_batch():
    from dae_cli.noise import NoiseSpec

    images = np.full((8, 4, 4, 1), 128, np.uint8)
    stream = data.training_dataset(images, batch_size=8, noise=NoiseSpec(), seed=3)
    (noisy_a, clean_a), (noisy_b, clean_b) = list(stream.take(2).as_numpy_iterator())
    np.testing.assert_allclose(clean_a, 128 / 255, atol=1e-6)
    assert not np.allclose(noisy_a, noisy_b)
    again = list(data.training_dataset(images, 8, NoiseSpec(), seed=3).take(2).as_numpy_iterator())
    np.testing.assert_array_equal(again[0][0], noisy_a)  # seeded: reproducible


def test_the_saturation_range_scales_the_colour_of_every_training_crop():
    from dae_cli.noise import NoiseSpec

    rng = np.random.default_rng(5)
    images = [rng.integers(60, 200, (24, 24, 3), dtype=np.uint8) for _ in range(4)]

    def clean_crops(saturation_range):
        stream = data.training_dataset(images, 8, NoiseSpec(), seed=3, patch_size=16, saturation_range=saturation_range)
        return next(stream.as_numpy_iterator())[1]

    def chroma(crops):
        return float(np.mean(crops.max(-1) - crops.min(-1)))

    as_they_are = clean_crops(None)
    np.testing.assert_allclose(clean_crops((1.0, 1.0)), as_they_are, atol=1e-6)
    gray = clean_crops((0.0, 0.0))
    assert np.abs(gray - gray[..., :1]).max() < 1e-6  # every channel the luma
    assert chroma(clean_crops((2.0, 2.0))) > 1.5 * chroma(as_they_are)


def test_dae_train_gives_its_saturation_range_to_the_training_stream(tmp_path):
    from conftest import photo_folders

    from dae_cli.training.trainer import Trainer

    train, val = photo_folders(tmp_path, ("chelsea",), "RGB")
    trainer = Trainer(tmp_path / "model")
    settings = dict(data=str(train), val_data=str(val), channels=3, patch_size=16, batch_size=4, architecture="conv")
    trainer.prepare(None, {**settings, "layer_filters": [8], "precision": "float32", "saturation_range": [0.0, 0.0]})
    clean = next(trainer.train_stream.as_numpy_iterator())[1]
    assert np.abs(clean - clean[..., :1]).max() < 1e-6
