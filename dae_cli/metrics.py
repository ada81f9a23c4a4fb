"""Image-quality metrics: PSNR and SSIM per image, and their summaries.

Example:
    >>> summary = summarize(psnr(clean, denoised))   # doctest: +SKIP
    >>> sorted(summary)
    ['mean', 'p05', 'p50', 'p95']
"""

from __future__ import annotations

import numpy as np

from dae_cli.backend import tf


def psnr(clean, other) -> np.ndarray:
    """Peak signal-to-noise ratio in dB of each image, values in [0, 1]."""
    return tf.image.psnr(clean, other, max_val=1.0).numpy()


def ssim(clean, other) -> np.ndarray:
    """Structural similarity of each image (Gaussian window up to 11 pixels)."""
    size = min(11, int(np.shape(clean)[1]), int(np.shape(clean)[2]))
    return tf.image.ssim(clean, other, max_val=1.0, filter_size=size).numpy()


def summarize(values) -> dict[str, float]:
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]  # PSNR of a perfect image is +inf
    p05, p50, p95 = np.percentile(values, [5, 50, 95])
    return {"mean": float(values.mean()), "p05": float(p05), "p50": float(p50), "p95": float(p95)}


def quality_report(clean, noisy, denoised) -> dict[str, dict[str, float]]:
    """PSNR and SSIM of the noisy input and of the denoised output against clean."""
    return {
        "psnr_noisy": summarize(psnr(clean, noisy)),
        "psnr_denoised": summarize(psnr(clean, denoised)),
        "ssim_noisy": summarize(ssim(clean, noisy)),
        "ssim_denoised": summarize(ssim(clean, denoised)),
    }
