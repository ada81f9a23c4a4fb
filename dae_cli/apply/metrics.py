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


def summarize(values) -> dict[str, float | None]:
    """Mean and percentiles of the finite values, and how many were perfect.

    The PSNR of a perfect reconstruction is +inf: such images are counted in `perfect`
    and left out of the figures, which are None (JSON null) when every image is perfect.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    finite = values[np.isfinite(values)]
    summary: dict[str, float | None] = {"mean": None, "p05": None, "p50": None, "p95": None}
    if len(finite):
        p05, p50, p95 = np.percentile(finite, [5, 50, 95])
        summary = {"mean": float(finite.mean()), "p05": float(p05), "p50": float(p50), "p95": float(p95)}
    perfect = int(np.sum(values == np.inf))
    if perfect:
        summary["perfect"] = perfect
    return summary


def quality_report(clean, noisy, denoised, noisy_scores: dict | None = None) -> dict[str, dict[str, float]]:
    """PSNR and SSIM of the noisy input and of the denoised output against clean.

    `noisy_scores`: the noisy input's `psnr_noisy` and `ssim_noisy`, if already known.
    """
    if noisy_scores is None:
        noisy_scores = {"psnr_noisy": summarize(psnr(clean, noisy)), "ssim_noisy": summarize(ssim(clean, noisy))}
    return {
        "psnr_noisy": noisy_scores["psnr_noisy"],
        "psnr_denoised": summarize(psnr(clean, denoised)),
        "ssim_noisy": noisy_scores["ssim_noisy"],
        "ssim_denoised": summarize(ssim(clean, denoised)),
    }
