"""Classical denoisers on the same noisy test images, for context (scikit-image).

Total variation (Chambolle; `weight`), non-local means (`h`) and wavelet shrinkage
(BayesShrink; `sigma`), each with its main parameter picked on a held-apart slice
(training images, their own noise draw) and then scored on the fixed noisy test set.

The noise is `x + N(0.5, 0.5)`, clipped: not zero-mean, so every pixel is brightened
by about 0.4 on average. These denoisers assume zero-mean noise and cannot remove that
shift; the autoencoder learns it. So each is also run on the input minus the mean
shift measured on the held-apart slice (one more number learned from data, as the
autoencoder learns its own), which is the fairer context figure.

    .venv/bin/python bench/classical.py [--test-images 10000] [--tune-images 300]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def methods():
    from skimage.restoration import denoise_nl_means, denoise_tv_chambolle, denoise_wavelet

    table = {
        "total variation (Chambolle)": (
            "weight",
            [0.05, 0.1, 0.2, 0.4, 0.8, 1.6],
            lambda x, p: denoise_tv_chambolle(x, weight=p),
        ),
        "non-local means": (
            "h",
            [0.1, 0.2, 0.3, 0.45, 0.6, 0.9],
            lambda x, p: denoise_nl_means(x, h=p, patch_size=5, patch_distance=6, fast_mode=True),
        ),
        "wavelet (BayesShrink)": (
            "sigma",
            [0.1, 0.2, 0.3, 0.45, 0.6, 0.9],
            lambda x, p: denoise_wavelet(x, sigma=p, method="BayesShrink", mode="soft", rescale_sigma=True),
        ),
    }
    try:
        import pywt  # noqa: F401  (scikit-image's wavelet denoiser needs PyWavelets)
    except ImportError:
        print("PyWavelets is not installed: skipping the wavelet denoiser (pip install PyWavelets)", file=sys.stderr)
        del table["wavelet (BayesShrink)"]
    return table


def apply(function, noisy, parameter):
    return np.stack([np.clip(function(image[..., 0], parameter), 0, 1)[..., None] for image in noisy]).astype(
        np.float32
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--test-images", type=int, default=10000)
    parser.add_argument("--tune-images", type=int, default=300)
    parser.add_argument("--name", default="classical")
    args = parser.parse_args(argv)

    from dae_cli.apply.metrics import psnr, quality_report

    x_train, x_test = common.load_mnist()
    test_noisy, test_clean = common.noisy_test_set(x_test[: args.test_images])
    tune_noisy, tune_clean = common.noisy_test_set(x_train[-args.tune_images :], seed=1)
    # The noise brightens every pixel; the held-apart slice measures by how much on average.
    shift = float(np.mean(tune_noisy - tune_clean))
    rows = {}
    for base_name, (parameter_name, grid, plain) in methods().items():
        shifted = lambda x, p, f=plain: f(np.clip(x - shift, 0, 1), p)  # noqa: E731
        for name, function in ((base_name, plain), (f"{base_name}, mean shift removed", shifted)):
            tuning = {p: float(psnr(tune_clean, apply(function, tune_noisy, p)).mean()) for p in grid}
            best = max(tuning, key=tuning.get)
            started = time.perf_counter()
            denoised = apply(function, test_noisy, best)
            seconds = time.perf_counter() - started
            report = quality_report(test_clean, test_noisy, denoised)
            rows[name] = {
                "parameter": parameter_name,
                "value": best,
                "tuning_psnr": tuning,
                **report,
                "images": len(test_noisy),
                "images_per_second": len(test_noisy) / seconds,
            }
            print(
                f"{name}: {parameter_name}={best} PSNR {report['psnr_denoised']['mean']:.2f} dB "
                f"SSIM {report['ssim_denoised']['mean']:.3f} ({len(test_noisy) / seconds:.0f} img/s)",
                flush=True,
            )
    noisy_report = quality_report(test_clean, test_noisy, test_noisy)
    path = common.save(
        args.name,
        {"machine": common.machine(), "argv": sys.argv, "noisy": noisy_report, "mean_shift": shift, "methods": rows},
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
