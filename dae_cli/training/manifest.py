"""What a finished run writes in its model's manifest (`dae.json`): the validation
metrics, the shapes the model takes and makes, and the facts of the run.

Its keys are part of the model directory's format: `dae_cli.models.artifacts` and
the commands that load a model read them back.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dae_cli.apply import evaluation
from dae_cli.config import Config
from dae_cli.errors import DaeError
from dae_cli.models import artifacts
from dae_cli.models.cost import gflops_per_megapixel
from dae_cli.models.denoiser import manifest_shapes
from dae_cli.training.data import TrainingData

if TYPE_CHECKING:
    import keras


def run_manifest(
    config: Config,
    data: TrainingData,
    encoder: keras.Model,
    decoder: keras.Model,
    *,
    epochs_done: int,
    training_seconds: float,
    replicas: int,
    metrics: dict[str, Any],
) -> dict[str, Any]:
    """The manifest of a model trained as `config` says on `data`."""
    return {
        "versions": artifacts.versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": config.to_dict(),
        "data_source": data.source,
        **manifest_shapes(config, data.image_shape, encoder),
        "gflops_per_megapixel": gflops_per_megapixel(encoder, decoder),
        "value_range": [0.0, 1.0],
        "epochs_done": epochs_done,
        "training_seconds": round(training_seconds, 3),
        "replicas": replicas,
        "metrics": metrics,
    }


def validation_metrics(
    out: Path,
    config: Config,
    data: TrainingData,
    noisy: np.ndarray,
    clean: np.ndarray,
    denoised: np.ndarray,
    predict_seconds: float,
) -> dict[str, Any]:
    """The manifest's metrics: how well `denoised` matches `clean`, and how fast it came.

    The same figures as `dae evaluate`; the noisy input's are computed once per noisy
    set and reused from the model at `out` when it scored the same one. Self-supervised
    there is nothing clean to score against: no PSNR or SSIM.
    """
    from dae_cli.apply.metrics import quality_report
    from dae_cli.noise import NoiseSpec

    fingerprint = evaluation.noisy_fingerprint(data.x_val, NoiseSpec.from_config(config), config.seed)
    cached = _cached_noisy_metrics(out, fingerprint) if data.kind == "clean" else None
    return {
        "val_loss": validation_loss(config.loss, denoised, clean),
        **(quality_report(clean, noisy, denoised, cached) if data.kind != "noisy" else {}),
        "noisy_fingerprint": fingerprint if data.kind == "clean" else None,
        "images_per_second": len(noisy) / predict_seconds if predict_seconds > 0 else None,
    }


def validation_loss(loss: str, denoised: np.ndarray, clean: np.ndarray) -> float:
    """The configured loss (`config.LOSSES`) of `denoised` against `clean`, as Keras'
    evaluate reports it: the figure of every epoch's `val_loss` and of the manifest's."""
    error = denoised - clean
    return float(np.mean(np.abs(error) if loss == "mae" else error**2))


def _cached_noisy_metrics(out: Path, fingerprint: str) -> dict | None:
    """The noisy input's PSNR and SSIM from the model at `out`, if it scored the same noisy set."""
    try:
        metrics = artifacts.read_manifest(out)["metrics"]
    except (DaeError, KeyError, TypeError):
        return None
    if metrics.get("noisy_fingerprint") != fingerprint:
        return None
    return {key: metrics[key] for key in ("psnr_noisy", "ssim_noisy")}
