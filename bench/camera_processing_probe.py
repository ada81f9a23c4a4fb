"""A probe of the camera simulator (issue 24): does training on camera noise that went
through a camera's own noise reduction move a model on real noise?

Real camera noise (`bench/real_noise.py` on PolyU100) is mostly luminance and strongly
correlated over several pixels, where the simulator's (`dae_cli.noise.camera_noise`)
is not: cameras smooth their noise before they save the JPEG, chroma most. This
fine-tunes `--init` on the photo recipe (`configs/photo-estimator.toml`) at a constant
rate, either as it is (`--arm plain`) or with the `camera` and `camera-jpeg` shares'
noise passed through an in-camera noise reduction first (`--arm processed`): per image,
its luma blended with a Gaussian blur of 1.5 pixels by a weight from 0-1, its chroma
with a blur of 3 pixels by a weight from 0.5-1 (before the JPEG). Then score both with
`bench/photo_model.py --sets polyu100`.

    python bench/camera_processing_probe.py --arm plain --init training/photo --out /tmp/plain
    python bench/camera_processing_probe.py --arm processed --init training/photo --out /tmp/processed
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


def blur(images, sigma: float, channels: int):
    """`images` (n, h, w, channels) under a separable Gaussian blur of `sigma` pixels."""
    from dae_cli.backend import tf

    radius = int(np.ceil(3 * sigma))
    taps = np.exp(-(np.arange(-radius, radius + 1) ** 2) / (2 * sigma**2))
    taps = (taps / taps.sum()).astype(np.float32)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arm", choices=["plain", "processed"], required=True)
    parser.add_argument("--init", required=True, help="the model to start from (a noise-estimating photo model)")
    parser.add_argument("--out", required=True, help="the fine-tuned model's directory (replaced)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--limit", type=int, default=48, help="training images (an epoch covers them once)")
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    args = parser.parse_args()

    import dae_cli
    from dae_cli import noise
    from dae_cli.training.trainer import Reporter

    if args.arm == "processed":
        noise.camera_noise = processed_camera_noise(noise.camera_noise)

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
        lr_schedule="constant",
        epochs=args.epochs,
        limit=args.limit,
        data=str(SHARED / "train"),
        val_data=str(SHARED / "kodak24"),
    )


if __name__ == "__main__":
    main()
