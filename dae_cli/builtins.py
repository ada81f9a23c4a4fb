"""The trained models that ship inside the package, named by `-m NAME`.

`mnist` is the reference design trained on MNIST as the Keras example does
(`configs/mnist.toml`); `photo-gray` is the fully convolutional model for gray
photographs (`configs/photo-gray.toml`). Each is a model directory without its optimizer
state, checked against its manifest's sha256 like any other.

An existing path always wins over a built-in name, so `-m mnist` means `./mnist` when
that exists.

Example:
    >>> resolve_model("photo-gray").name       # doctest: +SKIP
    'photo-gray'
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

BUILTIN_MODELS = ("mnist", "photo-gray")


def builtin_path(name: str) -> Path:
    return Path(str(resources.files("dae_cli") / "models" / name))


def resolve_model(name_or_path: str | Path) -> Path:
    """The model directory that `-m` names: an existing path, else a built-in model."""
    path = Path(name_or_path)
    if not path.exists() and str(name_or_path) in BUILTIN_MODELS:
        return builtin_path(str(name_or_path))
    return path
