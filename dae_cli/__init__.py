"""dae: train and apply convolutional denoising autoencoders, from the command line or Python.

The Python API (README.md, "Python"); what it names is what a version promises
(semantic versioning, CHANGELOG.md):

    >>> import dae_cli
    >>> model = dae_cli.load("photo")             # doctest: +SKIP
    >>> clean = model.denoise(noisy)              # doctest: +SKIP

- `load(name_or_dir)` -> `Denoiser`: `denoise`, `encode`, `decode` on NumPy arrays;
- `train(config=None, *, out=..., **settings)` -> the model directory;
- the errors, each a `DaeError` with the exit code the command line gives it:
  `UsageError` (2), `InputError`, `ModelError` (1), `TrainingInterrupted` (130);
- `ExitCode`, for scripts that run `dae`.

Importing `dae_cli` imports no TensorFlow: a model loads it when it is loaded.
"""

__version__ = "0.2.0"

from dae_cli.api import Denoiser, load, train  # noqa: E402  (light: no TensorFlow, NumPy nor Pillow)
from dae_cli.errors import (  # noqa: E402
    DaeError,
    ExitCode,
    InputError,
    ModelError,
    TrainingInterrupted,
    UsageError,
)

__all__ = [
    "DaeError",
    "Denoiser",
    "ExitCode",
    "InputError",
    "ModelError",
    "TrainingInterrupted",
    "UsageError",
    "__version__",
    "load",
    "train",
]
