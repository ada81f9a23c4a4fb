"""The Python API (`dae_cli.load`, `Denoiser`, `dae_cli.train`) gives what the command line
writes for the same input, takes every kind of array the README promises, and fails
with the named errors the command line maps to its exit codes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
import tifffile
from conftest import FLOAT32, ROOT, cli_env, json_lines, run_dae
from PIL import Image

import dae_cli

SIZE = (37, 50)  # odd on purpose: the conv model pads it to its multiple


def images(seed: int = 0) -> dict[str, np.ndarray]:
    """Arrays of every kind, each written below to a file of the same values."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[: SIZE[0], : SIZE[1]]
    base = 0.3 + 0.4 * np.stack([x / SIZE[1], y / SIZE[0], 1 - x / SIZE[1]], -1)
    noisy = np.clip(base + rng.normal(0, 0.08, base.shape), 0, 1)
    rgb8 = np.rint(noisy * 255).astype(np.uint8)
    alpha = (x * 5 % 256).astype(np.uint8)[..., None]
    return {
        "rgb8.png": rgb8,
        "gray8.png": rgb8[..., 1],  # (H, W)
        "rgba8.png": np.concatenate([rgb8, alpha], -1),
        "gray16.png": np.rint(noisy[..., 0] * 65535).astype(np.uint16)[..., None],  # (H, W, 1)
        "rgb16.tif": np.rint(noisy * 65535).astype(np.uint16),
        "float.tif": noisy[..., 2].astype(np.float32),
    }


def write(path: Path, array: np.ndarray) -> None:
    if array.dtype == np.float32:
        Image.fromarray(array * 255, mode="F").save(path)  # Pillow's 0-255 float scale
    elif array.dtype == np.uint16 and array.shape[-1] == 3:
        tifffile.imwrite(path, array, photometric="rgb")
    else:
        Image.fromarray(array[..., 0] if array.ndim == 3 and array.shape[-1] == 1 else array).save(path)


def read(path: Path, like: np.ndarray) -> np.ndarray:
    """A file dae wrote, as an array of `like`'s kind."""
    if path.suffix == ".tif" and like.dtype == np.uint16:
        return tifffile.imread(path)
    if like.dtype == np.uint16:
        return imagecodecs.png_decode(path.read_bytes()).reshape(like.shape)
    values = np.asarray(Image.open(path))
    return values / np.float32(255) if like.dtype == np.float32 else values.reshape(like.shape)


@pytest.fixture(scope="module")
def photo():
    return dae_cli.load("photo")


def cli_outputs(folder: Path, model, *flags) -> dict[str, Path]:
    result = run_dae("--json", "denoise", folder, "-m", model, "-o", folder.parent / "out", *flags)
    assert result.returncode == 0, result.stderr
    return {Path(r["input"]).name: Path(r["output"]) for r in json_lines(result.stdout)}


def test_a_built_in_model_gives_what_dae_denoise_writes_for_every_kind_of_image(photo, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    arrays = images()
    for name, array in arrays.items():
        write(folder / name, array)
    outputs = cli_outputs(folder, "photo")
    for name, array in arrays.items():
        denoised = photo.denoise(array)
        assert (denoised.shape, denoised.dtype) == (array.shape, array.dtype), name
        if array.dtype == np.uint16:  # the same values in big-endian order
            big_endian = photo.denoise(array.astype(">u2"))
            assert big_endian.dtype == np.dtype(">u2")
            np.testing.assert_array_equal(big_endian, denoised, err_msg=name)
        written = read(outputs[name], array)
        if array.dtype == np.float32:
            np.testing.assert_allclose(denoised, written, atol=1e-6, err_msg=name)
        else:
            np.testing.assert_array_equal(denoised, written, err_msg=name)
    assert not np.array_equal(photo.denoise(arrays["rgb8.png"]), arrays["rgb8.png"])


def test_alpha_is_carried_over_and_a_batch_is_each_image_alone(photo):
    arrays = images()
    rgba = arrays["rgba8.png"]
    np.testing.assert_array_equal(photo.denoise(rgba)[..., 3], rgba[..., 3])
    gray_alpha = np.stack([arrays["gray8.png"], rgba[..., 3]], -1)
    np.testing.assert_array_equal(photo.denoise(gray_alpha)[..., 1], gray_alpha[..., 1])
    batch = np.stack([arrays["rgb8.png"], images(1)["rgb8.png"]])
    together = photo.denoise(batch, sigma=20)
    assert together.shape == batch.shape
    for one, alone in zip(together, batch):
        np.testing.assert_array_equal(one, photo.denoise(alone, sigma=20))


def test_gray_saved_as_rgb_comes_back_as_the_gray_denoised(photo):
    gray = images()["gray8.png"]
    as_rgb = np.repeat(gray[..., None], 3, -1)
    out = photo.denoise(as_rgb)
    np.testing.assert_array_equal(out, np.repeat(photo.denoise(gray)[..., None], 3, -1))


def test_a_trained_dense_model_matches_the_command_line_whole_tiled_and_in_a_batch(trained_model, tmp_path):
    model = dae_cli.load(trained_model)
    rng = np.random.default_rng(4)
    digits = rng.integers(0, 256, (4, 28, 28, 1)).astype(np.uint8)
    page = rng.integers(0, 256, (40, 61)).astype(np.uint8)  # another size: tiled
    folder = tmp_path / "in"
    folder.mkdir()
    for i, digit in enumerate(digits):
        write(folder / f"digit{i}.png", digit)
    outputs = cli_outputs(folder, trained_model)
    batch = model.denoise(digits)
    for i in range(len(digits)):
        np.testing.assert_array_equal(batch[i], read(outputs[f"digit{i}.png"], digits[i]))
    write(tmp_path / "page.png", page)
    result = run_dae("denoise", tmp_path / "page.png", "-m", trained_model)
    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(model.denoise(page), read(tmp_path / "page.denoised.png", page))


def test_encode_and_decode_give_what_the_command_line_writes(photo, trained_model, tmp_path):
    image = images()["rgb8.png"]
    write(tmp_path / "photo.png", image)
    assert run_dae("encode", tmp_path / "photo.png", "-m", "photo", "-o", tmp_path / "z.npz").returncode == 0
    with np.load(tmp_path / "z.npz") as archive:
        written = archive[str(tmp_path / "photo.png")]
    latent = photo.encode(image)
    np.testing.assert_allclose(latent, written, rtol=0, atol=1e-6)
    assert run_dae("decode", tmp_path / "z.npz", "-m", "photo", "-o", tmp_path / "dec").returncode == 0
    decoded = photo.decode(latent, shape=image.shape, dtype=image.dtype)
    np.testing.assert_array_equal(decoded, read(tmp_path / "dec" / "photo.decoded.png", image))
    np.testing.assert_array_equal(decoded, photo.denoise(image))  # decode(encode(x)) is denoise(x)
    dense = dae_cli.load(trained_model)
    digits = np.random.default_rng(5).integers(0, 256, (3, 28, 28)).astype(np.uint8)
    vectors = dense.encode(digits[..., None])
    assert vectors.shape == (3, dense.manifest["latent_dim"]) and vectors.dtype == np.float32
    assert dense.decode(vectors).shape == (3, 28, 28, 1)
    assert dense.decode(vectors[0], shape=(28, 28), dtype=np.uint16).dtype == np.uint16


def test_strength_goes_where_the_command_lines_strength_goes(photo, trained_model, tmp_path):
    image = images()["rgb8.png"]
    write(tmp_path / "photo.png", image)
    result = run_dae("denoise", tmp_path / "photo.png", "-m", "photo", "--strength", "0.5")
    assert result.returncode == 0, result.stderr
    half = photo.denoise(image, strength=0.5)
    np.testing.assert_array_equal(half, read(tmp_path / "photo.denoised.png", image))
    assert not np.array_equal(half, photo.denoise(image))
    np.testing.assert_array_equal(photo.denoise(image, strength=0), image)  # nothing taken away
    np.testing.assert_array_equal(photo.denoise(image, strength=1), photo.denoise(image))
    dense = dae_cli.load(trained_model)
    digit = np.zeros((28, 28), np.uint8)
    assert dense.denoise(digit, strength=1.0).shape == (28, 28)  # the level as it is: any model
    with pytest.raises(dae_cli.UsageError, match="strength is for models that denoise by a noise level"):
        dense.denoise(digit, strength=0.5)
    with pytest.raises(dae_cli.UsageError, match="strength must be a number of at least 0"):
        photo.denoise(image, strength=-1)


@pytest.mark.parametrize(
    "call, error, fragment",
    [
        (lambda m: m.denoise(np.zeros((8, 8), np.int64)), dae_cli.InputError, "uint8, uint16 or floats"),
        (lambda m: m.denoise(np.zeros((2, 8, 8, 5), np.uint8)), dae_cli.InputError, "(2, 8, 8, 5)"),
        (lambda m: m.denoise(np.zeros((0, 8), np.uint8)), dae_cli.InputError, "none of them 0"),
        (lambda m: m.denoise(np.full((8, 8), np.nan)), dae_cli.InputError, "NaN"),
        (lambda m: m.denoise(np.zeros((8, 8)), sigma="loud"), dae_cli.UsageError, "sigma must be auto"),
        (lambda m: m.decode(np.zeros((4, 4, 3))), dae_cli.InputError, "latent of shape (4, 4, 3)"),
        (lambda m: m.decode(m.encode(np.zeros((8, 8))), shape=(9, 8)), dae_cli.InputError, "decodes to 8x8"),
        (lambda m: m.decode(m.encode(np.zeros((8, 8))), shape=(8, 8, 4)), dae_cli.UsageError, "no alpha"),
    ],
)
def test_bad_input_raises_the_named_error_of_its_exit_code(photo, call, error, fragment):
    with pytest.raises(error, match=re.escape(fragment)) as raised:
        call(photo)
    assert raised.value.exit_code == (2 if error is dae_cli.UsageError else 1)


def test_a_keyword_the_model_has_no_use_for_is_a_usage_error(trained_model):
    dense = dae_cli.load(trained_model)
    with pytest.raises(dae_cli.UsageError, match="tta does not apply"):
        dense.denoise(np.zeros((28, 28), np.uint8), tta=True)
    with pytest.raises(dae_cli.UsageError, match="sigma is for models that denoise by a noise level"):
        dense.denoise(np.zeros((28, 28), np.uint8), sigma=10)
    with pytest.raises(dae_cli.InputError, match="a colour image"):
        dense.denoise(np.random.default_rng(0).integers(0, 256, (28, 28, 3)).astype(np.uint8))
    with pytest.raises(dae_cli.InputError, match="encodes 28x28 only"):
        dense.encode(np.zeros((30, 28), np.uint8))
    with pytest.raises(dae_cli.ModelError, match="does not exist"):
        dae_cli.load(Path("no-such-model"))


def test_train_takes_a_mapping_and_keywords_and_returns_the_directory(tmp_path):
    settings = {"dataset": "mnist-sample", "limit": 300, "epochs": 1, "precision": FLOAT32[1]}
    with pytest.raises(dae_cli.UsageError, match="unknown setting"):
        dae_cli.train(settings, out=tmp_path / "bad", epoch=2)
    with pytest.raises(dae_cli.UsageError):
        dae_cli.train(settings, out=tmp_path / "bad", latent_dim=-1)
    assert not (tmp_path / "bad").exists()
    directory = dae_cli.train(settings, out=tmp_path / "model", latent_dim=8)
    assert directory == tmp_path / "model"
    model = dae_cli.load(directory)
    assert model.manifest["config"]["latent_dim"] == 8 and model.manifest["versions"]["dae"] == dae_cli.__version__
    assert model.denoise(np.zeros((28, 28), np.uint8)).shape == (28, 28)


@pytest.mark.parametrize(("setting", "pooled"), [(None, True), ("false", False)])
def test_training_keeps_freed_cpu_memory_for_the_next_step_unless_told_otherwise(tmp_path, setting, pooled):
    # TensorFlow reports memory only for a pooling (BFC) CPU allocator; with malloc it raises.
    # Where TensorFlow runs oneDNN (its default on CPUs with AVX-512 VNNI, BF16 or AMX),
    # oneDNN's allocator pools whatever the setting says.
    code = (
        "import dae_cli\n"
        "dae_cli.train({'dataset': 'mnist-sample', 'limit': 64, 'epochs': 1, 'precision': 'float32'},"
        f" out={str(tmp_path / 'model')!r})\n"
        "from dae_cli.backend import tf\n"
        "from tensorflow.python.util import _pywrap_util_port\n"
        "print('onednn' if _pywrap_util_port.IsMklEnabled() else 'plain')\n"
        "try:\n"
        "    print('pooled', tf.config.experimental.get_memory_info('CPU:0')['peak'] > 0)\n"
        "except ValueError:\n"
        "    print('malloc')\n"
    )
    env = cli_env()
    env.pop("TF_CPU_ALLOCATOR_USE_BFC", None)
    if setting is not None:
        env["TF_CPU_ALLOCATOR_USE_BFC"] = setting
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    allocator, *memory = result.stdout.split()
    assert memory == (["pooled", "True"] if pooled or allocator == "onednn" else ["malloc"]), result.stdout


def test_import_dae_cli_imports_no_tensorflow_numpy_nor_pillow():
    code = "import sys, dae_cli; print(sorted(m for m in ('tensorflow', 'keras', 'numpy', 'PIL') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), cwd=ROOT)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr


def test_the_package_says_it_is_typed_and_exports_what_the_readme_names():
    assert (ROOT / "dae_cli" / "py.typed").exists()
    for name in ("load", "train", "Denoiser", "DaeError", "UsageError", "InputError", "ModelError"):
        assert name in dae_cli.__all__ and name in (ROOT / "README.md").read_text(), name
