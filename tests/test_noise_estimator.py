"""A model that estimates its own noise level map (issue 24): trained for real on the
mixture of noises that photographs hold, steered by `--strength` and `--sigma`, and the
safety rules around it (clean photographs stay clean, non-finite pixels, bad values).

The training uses the public-domain photographs shipped in `tests/data`, so it runs on a
fresh clone with nothing beside it.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from conftest import FLOAT32, assert_clean_error, json_lines, photo_folders, run_dae, shipped
from PIL import Image

SIGMA = 25 / 255


def psnr(clean: np.ndarray, other: np.ndarray) -> float:
    return float(10 * np.log10(1 / np.mean((clean.astype(np.float64) - other) ** 2)))


def as_8bit(pixels: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(pixels, 0, 1) * 255).astype(np.uint8)


def read(path) -> np.ndarray:
    return np.asarray(Image.open(path), np.float64) / 255


@pytest.fixture(scope="session")
def estimator_model(tmp_path_factory):
    """A small noise-estimating model trained briefly on colour crops of three shipped
    photographs, with the mixture the built-in `photo` model trains on."""
    root = tmp_path_factory.mktemp("estimator")
    train, val = photo_folders(root, ("astronaut", "chelsea", "coins"), "RGB")
    out = root / "model"
    result = run_dae(
        "train",
        *("--arch", "conv", "--filters", "16,32,32", "--blocks-per-level", "1", "--loss", "mae"),
        "--noise-estimator",
        *("--noise", "mixture", "--noise-std-range", "0,50/255", "--noise-jpeg-range", "60,100"),
        *("--noise-shot-range", "0.0001,0.02", "--noise-read-range", "0,0.02"),
        *("--data", train, "--val-data", val, "--patch-size", "32", "--batch-size", "16"),
        *("--epochs", "6", "--learning-rate", "0.002", *FLOAT32, "--out", out),
    )
    assert result.returncode == 0, result.stderr
    return out


def test_the_manifest_reports_the_loss_the_model_trained_with(estimator_model):
    # Trained with `--loss mae`: the manifest's val_loss is the last epoch's, not an MSE.
    from dae_cli.models import artifacts

    history = artifacts.read_history(estimator_model / artifacts.HISTORY)
    metrics = artifacts.read_manifest(estimator_model)["metrics"]
    assert metrics["val_loss"] == pytest.approx(history[-1]["val_loss"], rel=1e-6)


def test_training_fits_the_autoencoder_with_its_estimate_as_a_second_output(estimator_model):
    # The estimator runs once a step: the model that training fits is the autoencoder's
    # own layers, the same weights in the same order (one optimizer serves both), with
    # the raw estimate the loss scores beside the image.
    from dae_cli.models import artifacts
    from dae_cli.training import noise_estimation

    autoencoder = artifacts.load_keras_model(estimator_model / artifacts.KERAS_MODEL)
    fitted = noise_estimation.training_model(autoencoder)
    assert len(fitted.trainable_variables) == len(autoencoder.trainable_variables)
    assert all(a is b for a, b in zip(fitted.trainable_variables, autoencoder.trainable_variables))
    noisy = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype("float32")
    inputs = noise_estimation.estimating_input(noisy)
    outputs = fitted.predict(inputs, verbose=0)
    np.testing.assert_allclose(outputs["denoised"], autoencoder.predict(inputs, verbose=0), atol=1e-6)
    estimate = noise_estimation.estimator_model(autoencoder).predict(inputs, verbose=0)
    np.testing.assert_allclose(outputs["estimate"], estimate, atol=1e-6)


def test_the_saved_model_holds_the_optimizer_state_that_training_built(estimator_model):
    # What `--resume` goes on from: Adam's moments of every weight, the estimator's too.
    from dae_cli.models import artifacts

    autoencoder = artifacts.load_keras_model(estimator_model / artifacts.KERAS_MODEL, compile=True)
    optimizer = autoencoder.optimizer
    assert int(optimizer.iterations.numpy()) > 0
    moments = {v.path.split("/", 1)[1]: v.numpy() for v in optimizer.variables if "momentum" in v.path}
    assert len(moments) == len(autoencoder.trainable_variables)
    estimator = [value for name, value in moments.items() if name.startswith("estimator_")]
    assert estimator and all(np.abs(value).max() > 0 for value in estimator)


# The loss a noise-estimating model was compiled with until the estimator ran once a step,
# as such a model's `autoencoder.keras` names it (the built-in photo model's training
# checkpoint of legs 1 to 9 is one).
FORMER_LOSS = {
    "module": "dae_cli.training.noise_estimation",
    "class_name": "EstimatorLoss",
    "config": {"channels": 3, "squared": False, "name": "estimator_loss"},
    "registered_name": "dae>EstimatorLoss",
}


def with_former_loss(model_dir):
    """Rewrites the compile config of `model_dir`'s autoencoder.keras (and its sha256 in
    the manifest) to name `FORMER_LOSS`, as a model saved before the change does."""
    import zipfile

    from dae_cli.models import artifacts

    path = model_dir / artifacts.KERAS_MODEL
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    config["compile_config"]["loss"] = FORMER_LOSS
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    manifest = artifacts.read_manifest(model_dir)
    manifest["files"][artifacts.KERAS_MODEL] = artifacts.sha256_file(path)
    artifacts.write_manifest(model_dir, manifest)


def test_a_model_saved_with_the_former_loss_resumes_with_its_optimizer_state(estimator_model, tmp_path):
    import shutil

    from dae_cli.models import artifacts
    from dae_cli.training.checkpoints import find_resume_state, resume_config
    from dae_cli.training.model_setup import resumed_model

    model = tmp_path / "model"
    shutil.copytree(estimator_model, model)
    with_former_loss(model)
    state = find_resume_state(model)
    config = resume_config(state.config, None, {"epochs": 7})
    saved = artifacts.load_keras_model(state.keras_path, compile=True).optimizer
    _, optimizer = resumed_model(state, config, (32, 32, 3), steps_left=10, replicas=1)
    kept = {v.path.split("/", 1)[1]: v.numpy() for v in saved.variables if "velocity" in v.path}
    carried = {v.path.split("/", 1)[1]: v.numpy() for v in optimizer.variables if "velocity" in v.path}
    assert kept.keys() == carried.keys() and all(np.array_equal(kept[k], carried[k]) for k in kept)
    result = run_dae("train", "--resume", "--epochs", "7", "--out", model)
    assert result.returncode == 0, result.stderr
    assert len(artifacts.read_history(model / artifacts.HISTORY)) == 7


@pytest.fixture(scope="module")
def held_out():
    """A corner of a shipped photograph that no training crop held (astronaut's quarters
    did train: this is the held-out chelsea quarter, in colour)."""
    image = shipped("chelsea", "RGB")
    return image[150:, 225:][:144, :224]


def denoised_file(model, noisy: np.ndarray, tmp_path, name: str, *flags, suffix=".png", quality=None) -> np.ndarray:
    path = tmp_path / f"{name}{suffix}"
    Image.fromarray(as_8bit(noisy)).save(path, **({"quality": quality} if quality else {}))
    out = tmp_path / f"{name}.out.png"
    result = run_dae("denoise", path, "-m", model, "-o", out, *flags)
    assert result.returncode == 0, result.stderr
    return read(path), read(out)


def gaussian(clean, seed=0, sigma=SIGMA):
    return clean + np.random.default_rng(seed).normal(0, sigma, clean.shape)


def camera(clean):
    from dae_cli.noise import NoiseSpec, add_noise

    spec = NoiseSpec("camera", shot_range=(0.004, 0.004), read_range=(0.005, 0.005))
    return add_noise(clean.astype(np.float32), np.array([1, 2]), spec).numpy()


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind, noisy_of, suffix, quality, margin",
    [
        ("gaussian", gaussian, ".png", None, 0.5),
        ("gaussian saved as JPEG", gaussian, ".jpg", 90, 0.5),
        ("camera", camera, ".png", None, 0.1),
    ],
)
def test_short_training_beats_the_noisy_input_with_no_level_given(
    estimator_model, held_out, tmp_path, kind, noisy_of, suffix, quality, margin
):
    noisy, denoised = denoised_file(
        estimator_model, noisy_of(held_out), tmp_path, "noisy", suffix=suffix, quality=quality
    )
    assert psnr(held_out, denoised) > psnr(held_out, noisy) + margin, kind


@pytest.mark.slow
def test_the_estimated_map_is_higher_where_poisson_gaussian_noise_is_brighter(estimator_model):
    from dae_cli.models.denoiser import load_denoiser
    from dae_cli.noise import NoiseSpec, add_noise

    flat = np.concatenate([np.full((64, 128, 3), 0.15, np.float32), np.full((64, 128, 3), 0.85, np.float32)])
    spec = NoiseSpec("poisson-gaussian", shot_range=(0.01, 0.01), read_range=(0.002, 0.002))
    noisy = add_noise(flat[None], np.array([3, 4]), spec).numpy()
    model = load_denoiser(estimator_model)
    start, stop = model.manifest["level_channels"]
    level = model.encode(noisy)[0, ..., start:stop]  # the map, folded to the latent's scale
    dark, bright = level[: level.shape[0] // 2].mean(), level[level.shape[0] // 2 :].mean()
    assert bright > 1.3 * dark, (dark * 255, bright * 255)


@pytest.mark.slow
def test_strength_zero_gives_the_input_back_and_more_strength_takes_more_away(estimator_model, held_out, tmp_path):
    noisy = as_8bit(gaussian(held_out))
    path = tmp_path / "noisy.png"
    Image.fromarray(noisy).save(path)
    changes = []
    for strength in ("0", "0.5", "1", "2"):
        out = tmp_path / f"s{strength}.png"
        result = run_dae("denoise", path, "-m", estimator_model, "--strength", strength, "-o", out)
        assert result.returncode == 0, result.stderr
        changes.append(np.abs(np.asarray(Image.open(out), np.float64) - noisy).mean())
    assert changes[0] == 0  # byte for byte the input's pixels
    assert all(a < b for a, b in zip(changes, changes[1:])), changes


@pytest.mark.slow
def test_the_level_is_reported_per_image_in_json_and_with_verbose(estimator_model, held_out, tmp_path):
    path = tmp_path / "noisy.png"
    Image.fromarray(as_8bit(gaussian(held_out))).save(path)
    result = run_dae("--json", "-v", "denoise", path, "-m", estimator_model, "-o", tmp_path / "out.png")
    assert result.returncode == 0, result.stderr
    record = json_lines(result.stdout)[0]
    assert record["sigma_estimated"] is True and 0 < record["sigma"] < 255
    assert f"sigma {record['sigma']:.2f} (estimated)" in result.stderr
    given = run_dae(
        "--json", "denoise", path, "-m", estimator_model, "--sigma", "10", "--strength", "2", "-o", tmp_path / "g.png"
    )
    record = json_lines(given.stdout)[0]
    assert record["sigma"] == pytest.approx(20.0) and record["sigma_estimated"] is False


@pytest.mark.slow
def test_the_manifest_and_info_state_the_cost(estimator_model):
    manifest = json.loads((estimator_model / "dae.json").read_text())
    assert manifest["noise_estimator"] is True and 1 < manifest["gflops_per_megapixel"] < 500
    result = run_dae("info", estimator_model)
    assert f"{manifest['gflops_per_megapixel']:g} GFLOPs per megapixel" in result.stdout
    assert "--strength S scales it" in result.stdout


def test_a_clean_photograph_comes_back_clean_from_the_built_in_model(tmp_path):
    clean = as_8bit(shipped("astronaut", "RGB")[:256, :256])
    path = tmp_path / "clean.png"
    Image.fromarray(clean).save(path)
    result = run_dae("denoise", path, "-m", "photo", "-o", tmp_path / "out.png")
    assert result.returncode == 0, result.stderr
    assert psnr(clean / 255, read(tmp_path / "out.png")) >= 40


@pytest.mark.parametrize("name", ["photo-real", "photo-gray"])
def test_the_older_built_in_names_are_photo(name, tmp_path):
    clean = shipped("chelsea", "RGB")[:64, :96]
    path = tmp_path / "noisy.png"
    Image.fromarray(as_8bit(gaussian(clean))).save(path)
    result = run_dae("denoise", path, "-m", name, "-o", tmp_path / "out.png")
    assert result.returncode == 0, result.stderr
    assert psnr(clean, read(tmp_path / "out.png")) > psnr(clean, read(path)) + 1
    assert run_dae("denoise", path, "-m", "photo", "-o", tmp_path / "photo.png").returncode == 0
    assert (tmp_path / "out.png").read_bytes() == (tmp_path / "photo.png").read_bytes()


def test_strength_scales_the_level_of_a_model_that_takes_one(tmp_path):
    path = tmp_path / "noisy.png"
    Image.fromarray(as_8bit(gaussian(shipped("chelsea", "RGB")[:64, :96]))).save(path)
    result = run_dae(
        "--json", "denoise", path, "-m", "photo", "--sigma", "20", "--strength", "0.5", "-o", tmp_path / "o.png"
    )
    assert result.returncode == 0, result.stderr
    assert json_lines(result.stdout)[0]["sigma"] == pytest.approx(10.0)


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "strong"])
def test_bad_strength_values_are_usage_errors(value, tmp_path):
    path = tmp_path / "noisy.png"
    Image.fromarray(as_8bit(shipped("chelsea", "RGB")[:32, :32])).save(path)
    result = run_dae("denoise", path, "-m", "photo", "--strength", value, "-o", tmp_path / "out.png")
    assert_clean_error(result, 2, "--strength")
    assert not (tmp_path / "out.png").exists()


def test_strength_is_refused_by_a_model_without_a_noise_level(tmp_path):
    path = tmp_path / "digit.png"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(path)
    assert_clean_error(run_dae("denoise", path, "-m", "mnist", "--strength", "0.5"), 2, "--strength")
    assert_clean_error(run_dae("evaluate", "-m", "mnist", "--strength", "0.5"), 2, "--strength")


def test_a_float_tiff_with_nan_or_infinity_is_one_bad_input(tmp_path):
    good = (np.random.default_rng(0).random((40, 40)) * 255).astype(np.float32)
    bad = good.copy()
    bad[3, 4], bad[5, 6] = np.nan, np.inf
    Image.fromarray(good, "F").save(tmp_path / "good.tif")
    Image.fromarray(bad, "F").save(tmp_path / "bad.tif")
    result = run_dae("denoise", tmp_path / "good.tif", tmp_path / "bad.tif", "-m", "photo", "-o", tmp_path / "out")
    assert_clean_error(result, 3, "bad.tif", "NaN or infinite")
    assert (tmp_path / "out" / "good.denoised.tif").exists()
    assert not (tmp_path / "out" / "bad.denoised.tif").exists()


def test_the_level_map_target_reads_uniform_gaussian_noise_and_zero_for_clean():
    from dae_cli.noise import level_map

    clean = np.full((2, 48, 48, 3), 0.5, np.float32)
    noisy = clean + np.random.default_rng(1).normal(0, 0.1, clean.shape).astype(np.float32)
    levels = level_map(noisy, clean).numpy()
    assert abs(np.median(levels) - 0.1) < 0.01
    assert level_map(clean, clean).numpy().max() < 1e-5


def test_the_level_map_is_the_rms_over_the_window_inside_the_image():
    from dae_cli.noise import LEVEL_WINDOW, level_map

    error = np.random.default_rng(2).normal(0, 0.1, (1, 20, 23, 3)).astype(np.float32)
    half = LEVEL_WINDOW // 2
    expected = np.empty_like(error)
    for y in range(20):
        for x in range(23):
            window = error[0, max(0, y - half) : y + half + 1, max(0, x - half) : x + half + 1]
            expected[0, y, x] = np.sqrt(np.mean(np.square(window), axis=(0, 1)))
    np.testing.assert_allclose(level_map(error, np.zeros_like(error)).numpy(), expected, rtol=1e-5)


def test_the_level_map_of_a_crop_smaller_than_its_window_and_of_a_clean_part():
    from dae_cli.noise import LEVEL_WINDOW, level_map

    # At most half the window and one on a side: every pixel's window is the whole crop.
    error = np.random.default_rng(3).normal(0, 0.2, (2, 6, LEVEL_WINDOW // 2 + 1, 1)).astype(np.float32)
    whole = np.sqrt(np.mean(np.square(error), axis=(1, 2), keepdims=True))
    np.testing.assert_allclose(
        level_map(error, np.zeros_like(error)).numpy(), np.broadcast_to(whole, error.shape), rtol=1e-5
    )
    # Loud noise beside a clean half: the noise reaches half a window into the clean half
    # and no further, and the rest reads zero (finite, after the running sums' rounding).
    clean = np.zeros((1, 8, 64, 3), np.float32)
    noisy = clean.copy()
    noisy[:, :, :32] = np.random.default_rng(4).normal(0, 0.5, (1, 8, 32, 3))
    levels = level_map(noisy, clean).numpy()
    assert np.isfinite(levels).all()
    assert levels[:, :, 32 : 32 + LEVEL_WINDOW // 2].min() > 0.05
    assert levels[:, :, 32 + LEVEL_WINDOW // 2 :].max() < 1e-5


def test_the_mixture_gives_every_kind_its_share_of_a_batch():
    from dae_cli.noise import MIXTURE, NoiseSpec, add_noise

    clean = np.tile(shipped("chelsea", "RGB")[:32, :32].astype(np.float32), (16, 1, 1, 1))
    spec = NoiseSpec("mixture", std_range=(10 / 255, 10 / 255), jpeg_range=(60, 100))
    noisy = add_noise(clean, np.array([5, 6]), spec).numpy()
    changed = np.abs(noisy - clean).mean(axis=(1, 2, 3)) > 1e-4
    clean_share = dict(MIXTURE)["clean"]
    assert changed.sum() == round(16 * (1 - clean_share))
    assert not changed[-round(16 * clean_share) :].any()  # the last share is the clean one


def test_a_lone_image_gets_each_kind_of_the_mixture_as_often_as_its_share():
    from dae_cli.noise import MIXTURE, NoiseSpec, add_noise

    # `dae evaluate` of one file: over seeds, clean as often as the clean share, noisy otherwise.
    clean = shipped("chelsea", "RGB")[:16, :16].astype(np.float32)[None]
    spec = NoiseSpec("mixture", std_range=(10 / 255, 10 / 255), jpeg_range=(60, 100))
    seeds = range(80)
    unchanged = sum(np.abs(add_noise(clean, np.array([s, 3]), spec).numpy() - clean).max() < 1e-6 for s in seeds)
    expected = len(seeds) * dict(MIXTURE)["clean"]
    assert expected / 3 <= unchanged <= expected * 2.5


def test_jpeg_of_the_mixture_is_at_a_quality_the_spec_allows():
    from dae_cli.noise import NoiseSpec, add_noise

    # Quality 100 and no noise leave a JPEG within a little of its input; 60 does not.
    clean = shipped("astronaut", "RGB")[:64, :64].astype(np.float32)[None].repeat(8, axis=0)
    high = add_noise(clean, np.array([1, 1]), NoiseSpec("mixture", std_range=(0, 0), jpeg_range=(100, 100))).numpy()
    low = add_noise(clean, np.array([1, 1]), NoiseSpec("mixture", std_range=(0, 0), jpeg_range=(60, 60))).numpy()
    assert psnr(clean[2], high[2]) > psnr(clean[2], low[2]) + 3  # image 2: the Gaussian-then-JPEG share
    buffer = io.BytesIO()
    Image.fromarray(as_8bit(clean[2])).save(buffer, "JPEG", quality=60)
    assert abs(psnr(clean[2], low[2]) - psnr(clean[2], read(buffer))) < 1.5


@pytest.mark.parametrize("mode, quality", [("RGB", 90), ("RGB", 60), ("L", 75)])
def test_training_jpeg_is_the_jpeg_pillow_writes_and_reads(mode, quality):
    from dae_cli.noise import NoiseSpec, add_noise

    # The model learns JPEG's artefacts as users' files hold them: the same pixels as
    # Pillow's file at that quality, with no colour cast (TensorFlow's own JPEG round
    # trip shifted red and blue down by about a level and had twice the error).
    image = shipped("astronaut", mode)[:96, :96].astype(np.float32)
    clean = (image[..., None] if mode == "L" else image)[None].repeat(8, axis=0)
    spec = NoiseSpec("mixture", std_range=(0, 0), jpeg_range=(quality, quality))
    ours = add_noise(clean, np.array([1, 1]), spec).numpy()[2]  # image 2: the Gaussian-then-JPEG share
    buffer = io.BytesIO()
    Image.fromarray(as_8bit(clean[2]).squeeze()).save(buffer, "JPEG", quality=quality)
    pillow = read(buffer).reshape(ours.shape)
    assert np.abs(ours - pillow).max() <= 1.5 / 255
    assert np.abs((ours - pillow).mean(axis=(0, 1))).max() < 0.05 / 255  # no cast of its own


def test_a_noise_estimating_model_denoises_by_smaller_windows_by_default():
    """Its estimator needs more memory a pixel: by default a 0.6-megapixel photo goes
    through `photo` in windows of half a megapixel (a 24-megapixel one then stays within
    2.5 GB, BENCHMARKS.md) and through `photo-gaussian` whole; `--max-megapixels` rules both."""
    from dae_cli.models.builtin_models import builtin_path
    from dae_cli.models.denoiser import ApplyOptions, open_model

    photo = np.zeros((600, 1000, 3), np.float32)
    estimating, gaussian = (open_model(builtin_path(name)) for name in ("photo", "photo-gaussian"))
    assert estimating.plan_denoise(photo, ApplyOptions()).count > 1
    assert gaussian.plan_denoise(photo, ApplyOptions()).count == 1
    assert estimating.plan_denoise(photo, ApplyOptions(max_megapixels=1)).count == 1
