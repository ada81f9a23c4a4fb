"""`dae evaluate`: how well a trained model denoises a held-out split, and how fast.

It owns choosing the evaluation images (MNIST's or an `.npz`'s `x_test`, or the seeded
validation split of an image folder, the same split `dae train` held out), the seeded
noise they get, and the report: PSNR and SSIM of the noisy input and of the denoised
output (mean and 5th/50th/95th percentiles) and the model's images per second.

The split is streamed through `Denoiser.denoise` in blocks, so memory does not grow
with it. Noise comes from fixed blocks of `NOISE_BLOCK` images, block k seeded with
`(seed, NOISE_SALT + k)`, so the same seed gives the same noisy images whatever the
batch size.

Example:
    >>> report = evaluate(load_denoiser("dae-model"), config, seed=0)     # doctest: +SKIP
    >>> report["psnr_denoised"]["mean"] > report["psnr_noisy"]["mean"]   # doctest: +SKIP
    True
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from dae_cli.config import Config
from dae_cli.errors import UsageError

NOISE_BLOCK = 1000
NOISE_SALT = 0x5EED
NOISE_KEYS = (
    "noise",
    "noise_mean",
    "noise_std",
    "noise_std_range",
    "noise_amount",
    "noise_peak",
    "noise_shot_range",
    "noise_read_range",
    "noise_channel_spread",
    "noise_jpeg_range",
)


def evaluation_config(manifest: dict[str, Any], overrides: dict[str, Any]) -> Config:
    """The model's training config with the data and noise flags that were given."""
    given = {key: value for key, value in overrides.items() if value is not None}
    saved = Config.from_dict(manifest["config"], source="model config").to_dict()
    if "dataset" in given and "data" not in given:
        saved["data"] = None  # --dataset replaces a --data the model was trained on
    if "noise_std" in given and "noise_std_range" not in given:
        saved["noise_std_range"] = None  # one given std replaces a blind model's range
    # Scoring adds noise to clean images, whatever the model was trained on.
    saved.update(targets=None, self_supervised=False)
    config = Config.from_dict({**saved, **given}, source="flags")
    config.channels = int(manifest["image_shape"][-1])
    config.validate()
    return config


def noisy_blocks(clean_uint8: np.ndarray, spec, seed: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(noisy, clean, levels) float32 blocks of `NOISE_BLOCK` images, seeded per block;
    `levels` holds each image's noise std (what a `noise_level_input` model is given)."""
    from dae_cli.backend import tf
    from dae_cli.noise import add_noise, noise_levels

    for block, start in enumerate(range(0, len(clean_uint8), NOISE_BLOCK)):
        clean = clean_uint8[start : start + NOISE_BLOCK].astype(np.float32) / 255.0
        noise_seed = tf.constant([seed, NOISE_SALT + block], tf.int64)
        noisy = add_noise(clean, noise_seed, spec)
        yield noisy.numpy(), clean, noise_levels(clean, noise_seed, spec, noisy).numpy()


def noisy_set(clean_uint8: np.ndarray, spec, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All of `noisy_blocks` at once: the exact noisy images `evaluate` scores, (noisy, clean, levels)."""
    blocks = list(noisy_blocks(clean_uint8, spec, seed))
    return tuple(np.concatenate([block[part] for block in blocks]) for part in range(3))


def noisy_fingerprint(clean_uint8: np.ndarray, spec, seed: int) -> str:
    """Names the noisy set `noisy_blocks(clean_uint8, spec, seed)` makes, without making it:
    by its images, noise, seed and the code that makes the noise (`noise.NOISE_REVISION`
    and TensorFlow's version).

    The noisy input's PSNR and SSIM are cached in the model's manifest under this name,
    so `train` and `evaluate` score a noisy set only once.
    """
    from dae_cli.backend import tf
    from dae_cli.noise import NOISE_REVISION

    digest = hashlib.sha256()
    digest.update(
        json.dumps(
            [
                list(clean_uint8.shape),
                str(clean_uint8.dtype),
                dataclasses.asdict(spec),
                seed,
                NOISE_BLOCK,
                NOISE_SALT,
                NOISE_REVISION,
                tf.__version__,
            ],
            sort_keys=True,
        ).encode()
    )
    digest.update(np.ascontiguousarray(clean_uint8).data)
    return digest.hexdigest()


SCORES = ("psnr_noisy", "psnr_denoised", "ssim_noisy", "ssim_denoised")


def evaluate(model, config: Config, *, seed: int = 0, options=None, progress=None) -> dict[str, Any]:
    """Scores `model` (a `Denoiser`) on the evaluation images `config` names.

    `seed` seeds the noise only; a folder's split keeps the model's own seed, so the
    images scored are the ones its training held out. `progress` (an `output.Progress`)
    counts the images denoised. A model that takes any image size is scored on whole
    photographs (`evaluate_photographs`), given `options.sigma` if it takes a level; a
    fixed-size one on the held-out split of its own size (`evaluate_split`).
    """
    from dae_cli.models.denoiser import ApplyOptions

    options = options or ApplyOptions()
    if model.any_size:
        return evaluate_photographs(model, config, seed=seed, options=options, progress=progress)
    return evaluate_split(model, config, seed=seed, batch_size=options.batch_size or 256, progress=progress)


def evaluate_split(model, config: Config, *, seed: int, batch_size: int, progress=None) -> dict[str, Any]:
    """Scores a fixed-size model on the held-out images of `config`'s data, in batches."""
    from dae_cli.noise import NoiseSpec
    from dae_cli.training import data

    loaded = data.load_training_data(config)
    images = loaded.x_val
    if tuple(images.shape[1:]) != tuple(model.image_shape):
        raise UsageError(
            f"the evaluation images are {'x'.join(map(str, images.shape[1:]))}, the model takes "
            f"{'x'.join(map(str, model.image_shape))}; evaluate on data of the model's size"
        )
    spec = NoiseSpec.from_config(config)
    if progress is not None:
        progress.start(len(images))
    # The noisy input scores the same whatever the model: reuse the manifest's figures
    # when they are of this very noisy set.
    saved = model.manifest.get("metrics", {})
    cached = saved.get("noisy_fingerprint") == noisy_fingerprint(images, spec, seed)
    report, model_seconds = _score_blocks(model, noisy_blocks(images, spec, seed), batch_size, cached, progress)
    if cached:
        report.update(psnr_noisy=saved["psnr_noisy"], ssim_noisy=saved["ssim_noisy"])
    return {
        "data_source": loaded.source,
        "images": int(len(images)),
        "seed": seed,
        "noise": {key: getattr(config, key) for key in NOISE_KEYS},
        **{key: report[key] for key in SCORES},
        "images_per_second": len(images) / model_seconds if model_seconds > 0 else None,
        "model_seconds": model_seconds,
    }


def _score_blocks(model, blocks, batch_size: int, noisy_known: bool, progress) -> tuple[dict, float]:
    """(PSNR and SSIM summaries, seconds in the model) over (noisy, clean, levels) blocks;
    the noisy input's own scores too unless `noisy_known`."""
    from dae_cli.apply.metrics import psnr, ssim, summarize

    keys = SCORES[1::2] if noisy_known else SCORES
    scores: dict[str, list[np.ndarray]] = {key: [] for key in keys}
    model_seconds = 0.0
    for noisy, clean, _ in blocks:
        started = time.perf_counter()
        denoised = []
        for i in range(0, len(noisy), batch_size):
            denoised.append(model.denoise(noisy[i : i + batch_size]))
            if progress is not None:
                progress.advance(len(denoised[-1]))
        denoised = np.concatenate(denoised)
        model_seconds += time.perf_counter() - started
        outputs = {"denoised": denoised} if noisy_known else {"noisy": noisy, "denoised": denoised}
        for name, output in outputs.items():
            scores[f"psnr_{name}"].append(psnr(clean, output))
            scores[f"ssim_{name}"].append(ssim(clean, output))
    return {key: summarize(np.concatenate(values)) for key, values in scores.items()}, model_seconds


def evaluation_folder(model, config: Config) -> Path:
    """The folder of clean photographs a conv model is scored on: `--data`, else the
    folder it was validated on in training."""
    for folder in (config.data, config.val_data):
        if folder and Path(folder).is_dir():
            return Path(folder)
    raise UsageError(
        "a fully convolutional model is scored on a folder of clean photographs of any sizes: pass --data DIR"
    )


def evaluate_photographs(model, config: Config, *, seed: int, options=None, progress=None) -> dict[str, Any]:
    """Scores a conv model on every image of a folder, whole and at its own size.

    Each image gets what `dae noise --seed SEED` gives it (image i of the sorted folder
    the stateless seed (seed, i), in its own channels, saved as 8 bits), is denoised as
    `dae denoise --sigma SIGMA` does it, and is scored as the 8-bit file it writes, so
    the figures are those of `dae noise`, `dae denoise` and scoring the files.
    """
    from dae_cli.apply.metrics import summarize
    from dae_cli.io import image_io
    from dae_cli.models.denoiser import ApplyOptions
    from dae_cli.noise import NoiseSpec

    options = options or ApplyOptions()
    folder = evaluation_folder(model, config)
    paths = image_io.expand_inputs([str(folder)])
    if config.limit is not None:
        paths = paths[: config.limit]
    spec = NoiseSpec.from_config(config)
    if progress is not None:
        progress.start(len(paths))
    scores: dict[str, list[float]] = {key: [] for key in SCORES}
    levels, model_seconds, pixels_done = [], 0.0, 0
    for index, path in enumerate(paths):
        image_scores, level, seconds, pixels = _score_photograph(model, path, spec, (seed, index), options)
        for key, value in image_scores.items():
            scores[key].append(value)
        levels.append(level)
        model_seconds, pixels_done = model_seconds + seconds, pixels_done + pixels
        if progress is not None:
            progress.advance()
    return {
        "data_source": f"folder {folder}",
        "images": len(paths),
        "seed": seed,
        "noise": {key: getattr(config, key) for key in NOISE_KEYS},
        "sigma": None if not model.uses_noise_level else ("given" if options.sigma not in (None, "auto") else "auto"),
        "sigma_per_image": None
        if not model.uses_noise_level
        else [None if level is None else round(level * 255, 3) for level in levels],
        **{key: summarize(np.array(values)) for key, values in scores.items()},
        "images_per_second": len(paths) / model_seconds if model_seconds > 0 else None,
        "megapixels_per_second": pixels_done / 1e6 / model_seconds if model_seconds > 0 else None,
        "model_seconds": model_seconds,
    }


def _score_photograph(model, path: Path, spec, seed: tuple[int, int], options):
    """(its scores, the level the model was given, seconds in the model, pixels) of one photograph."""
    from dae_cli.apply.metrics import psnr, ssim
    from dae_cli.apply.pipeline import denoise_array
    from dae_cli.backend import tf
    from dae_cli.io import image_io
    from dae_cli.noise import add_noise

    image = image_io.open_image(path)
    own = min(image_io.image_channels(image), model.channels)  # a gray model scores the luma
    clean = image_io.to_uint8(image_io.to_array(image, own)).astype(np.float32) / 255
    noisy = add_noise(clean, tf.constant(seed, tf.int64), spec).numpy()
    noisy = image_io.to_uint8(noisy).astype(np.float32) / 255  # as the noisy file holds it
    started = time.perf_counter()
    model_pixels = np.repeat(noisy, model.channels, axis=-1) if own < model.channels else noisy
    denoised, level, _ = denoise_array(model, model_pixels, own, options)
    seconds = time.perf_counter() - started
    denoised = image_io.to_uint8(denoised).astype(np.float32) / 255  # as the written file holds it
    scores = {}
    for name, other in (("noisy", noisy), ("denoised", denoised)):
        scores[f"psnr_{name}"] = float(psnr(clean[None], other[None])[0])
        scores[f"ssim_{name}"] = float(ssim(clean[None], other[None])[0])
    return scores, level, seconds, clean.shape[0] * clean.shape[1]
