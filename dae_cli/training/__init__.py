"""Training: `dae train`, in modules by job.

- `trainer`: `train` and the `Trainer` whose steps are `prepare`, `fit` and `finish`.
- `runtime`: the distribution strategy, precision policy, steps per execution, and the
  multi-worker Keras workaround.
- `model_setup`: the model to train (built, resumed or `--init-from`), its loss and optimizer.
- `checkpoints`: `<out>.checkpoint/`, and what `--resume` reads back.
- `recorder`: the Keras callback that validates, checkpoints and reports every epoch.
- `manifest`: what a finished run writes in `dae.json`.
- `interrupts`: Ctrl-C and SIGTERM during training.
- `data`: the training data and its `tf.data` pipelines.
- `neighbor2neighbor`: training from noisy images alone.
- `tensorboard`: `--tensorboard` logs.
"""
