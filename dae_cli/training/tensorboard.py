"""`dae train --tensorboard DIR`: the run as TensorBoard shows it.

Keras' own `TensorBoard` callback writes the loss (`DIR/train`), the validation loss
(`DIR/validation`), both as `epoch_loss`, and the learning rate. `QualityLogger` adds,
per epoch in `DIR/validation`: `epoch_psnr` and `epoch_ssim`, the mean PSNR and SSIM of
the denoised validation images (the figures `dae train` and `dae evaluate` report),
and `samples`, the clean / noisy / denoised grid that `samples.png` holds at the end.
Steps are epoch indices from 0, as Keras numbers them. Needs the `tensorboard` extra.
This module imports Keras: `trainer.train` imports it only when `--tensorboard` is given.

Example:
    $ dae train --epochs 5 --tensorboard runs/tb
    $ tensorboard --logdir runs/tb
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dae_cli.backend import keras, tf

VALIDATION = "validation"  # Keras' name for the validation run's folder


def callbacks(
    log_dir: Path,
    autoencoder: keras.Model,
    val_noisy: np.ndarray,
    val_clean: np.ndarray,
    batch_size: int,
    sample_count: int,
) -> list[keras.callbacks.Callback]:
    """The Keras callbacks that write `log_dir`, the images as `autoencoder` denoises them."""
    return [
        keras.callbacks.TensorBoard(str(log_dir), write_graph=False, profile_batch=0),
        QualityLogger(Path(log_dir) / VALIDATION, autoencoder, val_noisy, val_clean, batch_size, sample_count),
    ]


class QualityLogger(keras.callbacks.Callback):
    """PSNR, SSIM and the sample grid of the validation images, per epoch, in `directory`."""

    def __init__(
        self,
        directory: Path,
        autoencoder: keras.Model,
        val_noisy: np.ndarray,
        val_clean: np.ndarray,
        batch_size: int,
        sample_count: int,
    ):
        super().__init__()
        self.autoencoder = autoencoder  # Keras' `self.model` is the one fit runs, maybe with a second output
        self.directory, self.batch_size, self.sample_count = directory, batch_size, sample_count
        self.val_noisy, self.val_clean = val_noisy, val_clean

    def on_train_begin(self, logs=None):
        self.writer = tf.summary.create_file_writer(str(self.directory))

    def on_epoch_end(self, epoch, logs=None):
        if self.model.stop_training:  # interrupted or diverged: the epoch is not kept
            return
        from dae_cli.apply.metrics import psnr, ssim, summarize
        from dae_cli.io.image_io import grid_image

        val_noisy, val_clean, count = self.val_noisy, self.val_clean, self.sample_count
        denoised = self.autoencoder.predict(val_noisy, batch_size=self.batch_size, verbose=0)
        shown = val_noisy[:count, ..., : val_clean.shape[-1]]  # without a noise level channel
        grid = grid_image([val_clean[:count], shown, denoised[:count]])
        with self.writer.as_default(step=epoch):
            tf.summary.scalar("epoch_psnr", summarize(psnr(val_clean, denoised))["mean"])
            tf.summary.scalar("epoch_ssim", summarize(ssim(val_clean, denoised))["mean"])
            tf.summary.image("samples", grid[None], max_outputs=1)
        self.writer.flush()

    def on_train_end(self, logs=None):
        self.writer.close()
