"""The trained models that ship inside the package, named by `-m NAME`.

`mnist` is the reference design trained on MNIST as the Keras example does
(`configs/mnist.toml`); `photo` is the fully convolutional model for photographs, colour
and gray, of any Gaussian noise level from 0 to 50 (`configs/photo.toml`), which takes
the level as an input (`dae denoise --sigma auto`, the default, estimates it);
`photo-real` is the same shape trained for a camera's noise (`configs/photo-real.toml`:
signal-dependent, demosaiced, JPEG-compressed), blind, so it needs no level. Each is a
model directory without its optimizer state, checked against its manifest's sha256 like
any other. `photo-gray` is another name for `photo`: one model denoises gray
photographs as gray (BENCHMARKS.md measures it on Set12).

An existing path always wins over a built-in name, so `-m mnist` means `./mnist` when
that exists.

Example:
    >>> resolve_model("photo-gray").name       # doctest: +SKIP
    'photo'
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

SHIPPED_MODELS = ("mnist", "photo", "photo-real")  # folders under dae_cli/trained_models
ALIASES = {"photo-gray": "photo"}
BUILTIN_MODELS = (*SHIPPED_MODELS, *ALIASES)  # the names -m takes


def builtin_path(name: str) -> Path:
    return Path(str(resources.files("dae_cli") / "trained_models" / ALIASES.get(name, name)))


def resolve_model(name_or_path: str | Path) -> Path:
    """The model directory that `-m` names: an existing path, else a built-in model."""
    path = Path(name_or_path)
    if not path.exists() and str(name_or_path) in BUILTIN_MODELS:
        return builtin_path(str(name_or_path))
    return path
