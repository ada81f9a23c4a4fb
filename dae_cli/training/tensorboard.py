"""`dae train --tensorboard DIR`: the run as TensorBoard shows it.

Keras' own `TensorBoard` callback writes the loss (`DIR/train`), the validation loss
(`DIR/validation`), both as `epoch_loss`, and the learning rate. `QualityLogger` adds,
per epoch in `DIR/validation`: `epoch_psnr` and `epoch_ssim`, the mean PSNR and SSIM of
the denoised validation images (the figures `dae train` and `dae evaluate` report),
and `samples`, the clean / noisy / denoised grid that `samples.png` holds at the end.
Steps are epoch indices from 0, as Keras numbers them. Needs the `tensorboard` extra.

Example:
    $ dae train --epochs 5 --tensorboard runs/tb
    $ tensorboard --logdir runs/tb
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

VALIDATION = "validation"  # Keras' name for the validation run's folder


def callbacks(log_dir: Path, val_noisy: np.ndarray, val_clean: np.ndarray, batch_size: int, sample_count: int) -> list:
    """The Keras callbacks that write `log_dir`."""
    from dae_cli.backend import keras

    return [
        keras.callbacks.TensorBoard(str(log_dir), write_graph=False, profile_batch=0),
        _quality_logger(Path(log_dir) / VALIDATION, val_noisy, val_clean, batch_size, sample_count),
    ]


def _quality_logger(directory, val_noisy, val_clean, batch_size, sample_count):
    from dae_cli.backend import keras, tf

    class QualityLogger(keras.callbacks.Callback):
        """PSNR, SSIM and the sample grid of the validation images, per epoch."""

        def on_train_begin(self, logs=None):
            self.writer = tf.summary.create_file_writer(str(directory))

        def on_epoch_end(self, epoch, logs=None):
            if self.model.stop_training:  # interrupted or diverged: the epoch is not kept
                return
            from dae_cli.apply.metrics import psnr, ssim, summarize
            from dae_cli.io.image_io import grid_image

            denoised = self.model.predict(val_noisy, batch_size=batch_size, verbose=0)
            shown = val_noisy[:sample_count, ..., : val_clean.shape[-1]]  # without a noise level channel
            grid = grid_image([val_clean[:sample_count], shown, denoised[:sample_count]])
            with self.writer.as_default(step=epoch):
                tf.summary.scalar("epoch_psnr", summarize(psnr(val_clean, denoised))["mean"])
                tf.summary.scalar("epoch_ssim", summarize(ssim(val_clean, denoised))["mean"])
                tf.summary.image("samples", grid[None], max_outputs=1)
            self.writer.flush()

        def on_train_end(self, logs=None):
            self.writer.close()

    return QualityLogger()
