"""dae: train and apply convolutional denoising autoencoders from the command line.

Scripts can compare exit codes by name: `from dae_cli import ExitCode`.
"""

__version__ = "0.1.0"

from dae_cli.errors import ExitCode  # noqa: E402  (light: no TensorFlow)

__all__ = ["ExitCode", "__version__"]
