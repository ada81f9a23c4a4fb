"""A probe of the camera simulator (issue 24): does training on camera noise that went
through a camera's own noise reduction move a model on real noise?

Real camera noise (`bench/real_noise.py` on PolyU100) is mostly luminance and strongly
correlated over several pixels, where the simulator's (`dae_cli.noise.camera_noise`)
is not: cameras smooth their noise before they save the JPEG, chroma most. This
fine-tunes `--init` on the photo recipe (`configs/photo-estimator.toml`) at a constant
rate, either as it is (`--arm plain`) or with the `camera` and `camera-jpeg` shares'
noise passed through an in-camera noise reduction first (`--arm processed`): per image,
its luma blended with a Gaussian blur of 1.5 pixels by a weight from 0-1, its chroma
with a blur of 3 pixels by a weight from 0.5-1 (before the JPEG), or (`--arm
low-frequency`) with their chroma cut to 0.2-1 of it and a correlated, mostly luminance
part added, at blurs of 1, 2 and 4 pixels in per-image proportions, of 0.3-1.5 times
the fine noise's RMS and brighter where the image is (`bench/real_noise.py --simulator
low-frequency` sets its statistics beside real noise's). `--lr-schedule cosine` decays
the rate over the run. Then score the arms with `bench/photo_model.py --sets polyu100`.

    python bench/camera_processing_probe.py --arm plain --init training/photo --out /tmp/plain
    python bench/camera_processing_probe.py --arm processed --init training/photo --out /tmp/processed
    python bench/camera_processing_probe.py --arm low-frequency --init training/photo --out /tmp/low --limit 144 --epochs 3 --lr-schedule cosine
    python bench/photo_model.py --models /tmp/plain /tmp/processed --sets polyu100 --sigmas --no-jpeg --no-clean --limit 10
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common  # noqa: E402

SHARED = common.ROOT.parent / "shared" / "data" / "photos-color"


def gaussian_taps(sigma: float) -> np.ndarray:
    """A normalised 1-D Gaussian of `sigma` pixels, to 3 sigma on each side."""
    radius = int(np.ceil(3 * sigma))
    taps = np.exp(-(np.arange(-radius, radius + 1) ** 2) / (2 * sigma**2))
    return (taps / taps.sum()).astype(np.float32)


def blur(images, sigma: float, channels: int):
    """`images` (n, h, w, channels) under a separable Gaussian blur of `sigma` pixels."""
    from dae_cli.backend import tf

    taps = gaussian_taps(sigma)
    column = tf.constant(np.tile(taps.reshape(-1, 1, 1, 1), (1, 1, channels, 1)))
    row = tf.constant(np.tile(taps.reshape(1, -1, 1, 1), (1, 1, channels, 1)))
    images = tf.nn.depthwise_conv2d(images, column, [1, 1, 1, 1], "SAME")
    return tf.nn.depthwise_conv2d(images, row, [1, 1, 1, 1], "SAME")


def processed_camera_noise(plain_camera_noise):
    """`camera_noise` with an in-camera noise reduction before its JPEG."""
    from dae_cli import noise
    from dae_cli.backend import tf

    def camera_noise(batch, seed, spec):
        noisy = plain_camera_noise(batch, seed, dataclasses.replace(spec, jpeg_range=None))
        error = noisy - batch
        luma_weight = noise._per_image(batch, seed + 51, 0.0, 1.0)
        if (batch.shape[-1] or 1) == 3:
            luma = tf.reduce_mean(error, -1, keepdims=True)
            chroma = error - luma
            chroma_weight = noise._per_image(batch, seed + 52, 0.5, 1.0)
            luma = (1 - luma_weight) * luma + luma_weight * blur(luma, 1.5, 1)
            chroma = (1 - chroma_weight) * chroma + chroma_weight * blur(chroma, 3.0, 3)
            noisy = batch + luma + chroma
        else:
            noisy = batch + (1 - luma_weight) * error + luma_weight * blur(error, 1.5, 1)
        if spec.jpeg_range is not None:
            noisy = noise._jpeg(noisy, seed + 41, spec.jpeg_range)
        return noisy

    return camera_noise


# The correlated part's scales (Gaussian blur sigma, pixels), each drawn at its own
# per-image weight: together a spectrum as heavy at 4-8 pixels as real camera noise's.
COARSE_SCALES = (1.0, 2.0, 4.0)


def unit_blur(noise, sigma: float, channels: int):
    """White `noise` blurred by `sigma` pixels and scaled back to unit variance (the
    separable blur's std is the sum of its taps' squares)."""
    return blur(noise, sigma, channels) / float(np.sum(np.square(gaussian_taps(sigma), dtype=np.float64)))


def low_frequency_camera_noise(plain_camera_noise):
    """`camera_noise` as a camera that smooths its noise leaves it: the demosaiced noise
    with its chroma cut down, plus a correlated, mostly luminance part at 1-4 pixels
    whose RMS, relative to the fine part's, is drawn per image; then the JPEG."""
    from dae_cli import noise
    from dae_cli.backend import tf

    def camera_noise(batch, seed, spec):
        channels = batch.shape[-1] or 1
        noisy = plain_camera_noise(batch, seed, dataclasses.replace(spec, jpeg_range=None))
        fine = noisy - batch
        rms = tf.sqrt(tf.reduce_mean(tf.square(fine), axis=[1, 2, 3], keepdims=True) + 1e-12)
        if channels == 3:
            luma = tf.reduce_mean(fine, -1, keepdims=True)
            fine = luma + noise._per_image(batch, seed + 51, 0.2, 1.0) * (fine - luma)
        # Brighter pixels carry more noise, as the fine part's do.
        brightness = tf.sqrt(tf.reduce_mean(batch, -1, keepdims=True) + 0.05)
        brightness = brightness / tf.reduce_mean(brightness, axis=[1, 2, 3], keepdims=True)
        weights = tf.concat([noise._per_image(batch, seed + 60 + k, 0.0, 1.0) for k in range(len(COARSE_SCALES))], -1)
        weights = weights / tf.sqrt(tf.reduce_sum(tf.square(weights), -1, keepdims=True) + 1e-12)
        coarse = 0.0
        for k, sigma in enumerate(COARSE_SCALES):
            white = tf.random.stateless_normal(tf.shape(batch), seed + 70 + k)
            if channels == 3:  # mostly luminance: the channels share most of it
                white = tf.reduce_mean(white, -1, keepdims=True) * np.sqrt(3.0) + 0.3 * white
                white = white / np.sqrt(1.0 + 0.09 + 0.3 * 2 / np.sqrt(3.0))
            coarse = coarse + weights[..., k : k + 1] * unit_blur(white, sigma, channels)
        share = noise._per_image(batch, seed + 53, 0.3, 1.5)
        noisy = batch + fine + share * rms * brightness * coarse
        if spec.jpeg_range is not None:
            noisy = noise._jpeg(noisy, seed + 41, spec.jpeg_range)
        return noisy

    return camera_noise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arm", choices=["plain", "processed", "low-frequency"], required=True)
    parser.add_argument("--init", required=True, help="the model to start from (a noise-estimating photo model)")
    parser.add_argument("--out", required=True, help="the fine-tuned model's directory (replaced)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--limit", type=int, default=48, help="training images (an epoch covers them once)")
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--lr-schedule", choices=["constant", "cosine"], default="constant")
    args = parser.parse_args()

    import dae_cli
    from dae_cli import noise
    from dae_cli.training.trainer import Reporter

    if args.arm == "processed":
        noise.camera_noise = processed_camera_noise(noise.camera_noise)
    elif args.arm == "low-frequency":
        noise.camera_noise = low_frequency_camera_noise(noise.camera_noise)

    class Epochs(Reporter):
        def epoch(self, epoch, epochs, logs, seconds):
            print(f"epoch {epoch}/{epochs} loss {logs['loss']:.5f} {seconds:.0f}s", file=sys.stderr, flush=True)

    dae_cli.train(
        common.ROOT / "configs" / "photo-estimator.toml",
        out=args.out,
        overwrite=True,
        reporter=Epochs(),
        init_from=args.init,
        learning_rate=args.learning_rate,
        lr_schedule=args.lr_schedule,
        epochs=args.epochs,
        limit=args.limit,
        data=str(SHARED / "train"),
        val_data=str(SHARED / "kodak24"),
    )


if __name__ == "__main__":
    main()
