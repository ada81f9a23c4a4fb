"""The trained models that ship inside the package, named by `-m NAME`.

`mnist` is the reference design trained on MNIST as the Keras example does
(`configs/mnist.toml`). `photo` is the fully convolutional model for every photograph,
colour and gray: a camera's noise (demosaiced, JPEG-compressed, growing with
brightness), Gaussian noise of any level from 0 to 50, noise saved as JPEG, and clean
photographs, which it leaves clean. It estimates the noise itself, as a map, with a
small network inside its encoder (`configs/photo-estimator.toml`); `--strength S`
scales that map and `--sigma LEVEL` replaces it. `photo-gaussian` is the model `photo`
was before: Gaussian noise alone, with the level as an input that `--sigma auto`
estimates as one number per image (`configs/photo.toml`). Each is a model directory
without its optimizer state, checked against its manifest's sha256 like any other.

`photo-real` and `photo-gray` are other names for `photo`, kept so that scripts keep
running: `photo-real` was a blind model of its own for camera noise
(`configs/photo-real.toml`), which `photo` now matches on real camera noise without
blurring clean photographs (BENCHMARKS.md), and one model denoises gray photographs as
gray.

An existing path always wins over a built-in name, so `-m mnist` means `./mnist` when
that exists.

Example:
    >>> resolve_model("photo-real").name       # doctest: +SKIP
    'photo'
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

SHIPPED_MODELS = ("mnist", "photo", "photo-gaussian")  # folders under dae_cli/trained_models
ALIASES = {"photo-real": "photo", "photo-gray": "photo"}
BUILTIN_MODELS = (*SHIPPED_MODELS, *ALIASES)  # the names -m takes


def builtin_path(name: str) -> Path:
    return Path(str(resources.files("dae_cli") / "trained_models" / ALIASES.get(name, name)))


def resolve_model(name_or_path: str | Path) -> Path:
    """The model directory that `-m` names: an existing path, else a built-in model."""
    path = Path(name_or_path)
    if not path.exists() and str(name_or_path) in BUILTIN_MODELS:
        return builtin_path(str(name_or_path))
    return path
