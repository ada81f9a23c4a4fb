"""The Python API: dae's models on NumPy arrays, and training, without the command line.

Three names make it, each re-exported by `dae_cli`: `load` (a trained model, a
`Denoiser`), `train` (a model directory) and the errors of `dae_cli.errors`. It is what
the command line runs too: `dae train` calls `run_training`, as `train` does, and
`dae denoise`, `encode` and `decode` go through the same pipeline functions
(`apply.pipeline`: `denoise_arrays` beside `denoise_files`, ...) and the same sample
conversions (`io.pixels`), so the two give the same values (tests/test_api.py checks it
against the files the command line writes).

This module imports no TensorFlow, NumPy nor Pillow when it is imported: `import
dae_cli` stays light, and `dae --help` fast. Nothing prints: TensorFlow's start-up log
is kept quiet (`backend`) and progress goes to a `reporter` only if one is given.

Example:
    >>> import numpy as np, dae_cli
    >>> model = dae_cli.load("photo")                                    # doctest: +SKIP
    >>> noisy = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    >>> model.denoise(noisy).dtype, model.denoise(noisy).shape           # doctest: +SKIP
    (dtype('uint8'), (64, 96, 3))
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dae_cli.errors import InputError, UsageError

if TYPE_CHECKING:
    import numpy as np

    from dae_cli.models.denoiser import Denoiser as Model
    from dae_cli.training.trainer import Reporter, TrainResult

# How the API's keywords are spelled in the messages of `models.denoiser.Denoiser.check`.
KEYWORDS = {"sigma": "sigma", "strength": "strength", "tta": "tta"}
ALPHA_CHANNELS = (2, 4)  # gray + alpha, RGBA: the last channel is carried over unchanged


def load(name_or_dir: str | os.PathLike, *, verify: bool = True) -> Denoiser:
    """The trained model in a directory, or a built-in one, ready to apply to arrays.

    Args:
        name_or_dir: a model directory (`dae train --out DIR`), or a built-in model's
            name: `"photo"` (its aliases `"photo-real"`, `"photo-gray"`), `"photo-gaussian"`
            or `"mnist"`. An existing path wins over a built-in name, as with `dae -m`.
        verify: check every file's sha256 against the manifest first (a model directory
            is code: see the README's "Trust"); `False` is `--no-verify`.

    Returns:
        The model, a `Denoiser`, with its encoder and decoder loaded.

    Raises:
        ModelError: no model there, or a damaged, tampered with or too new one.

    Example:
        >>> model = dae_cli.load("photo")          # doctest: +SKIP
        >>> model.channels, model.takes_noise_level  # doctest: +SKIP
        (3, True)
    """
    from dae_cli.models.builtin_models import resolve_model
    from dae_cli.models.denoiser import load_denoiser

    return Denoiser(load_denoiser(resolve_model(name_or_dir), verify=verify))


class Denoiser:
    """A trained model applied to NumPy arrays: `denoise`, `encode`, `decode`.

    An image is `(H, W)` (gray) or `(H, W, C)` with C 1 (gray), 2 (gray and alpha),
    3 (RGB) or 4 (RGBA), of uint8, uint16 or floats on [0, 1]; a batch of images of one
    size is `(N, H, W, C)`. Any height and width goes, as the command line takes them:
    a dense model tiles other sizes, a conv model pads them. Alpha is carried over
    unchanged, as `dae denoise` carries it over in a file.

    Get one with `dae_cli.load`.
    """

    def __init__(self, model: Model):
        self._model = model

    def __repr__(self) -> str:
        return f"<dae_cli.Denoiser {self._model.architecture} model {str(self.directory)!r}>"

    @property
    def directory(self) -> Path:
        """The model directory."""
        return self._model.directory

    @property
    def manifest(self) -> dict[str, Any]:
        """The model's manifest (`dae.json`): how it was trained, its shapes and scores."""
        return self._model.manifest

    @property
    def channels(self) -> int:
        """The channels the model works in: 1 (gray images only) or 3 (colour and gray)."""
        return self._model.channels

    @property
    def takes_noise_level(self) -> bool:
        """Whether a noise level steers the model, so that `sigma` and `strength` apply:
        one it is given (estimated from the image unless `sigma` says), or one it
        estimates itself."""
        return self._model.uses_noise_level

    def denoise(
        self, image: np.ndarray, *, sigma: float | str | None = None, strength: float = 1.0, tta: bool = False
    ) -> np.ndarray:
        """The image denoised, of the same shape and dtype: what `dae denoise` writes.

        Args:
            image: `(H, W)`, `(H, W, C)` or a batch `(N, H, W, C)`, C 1 to 4, of uint8,
                uint16 or floats on [0, 1] (others are clipped to it).
            sigma: for a model that takes the noise level: its std on the 0-255 scale
                (`15`) or as a fraction (`15 / 255`, `0.06`), or `None` or `"auto"` to
                estimate each image's own (`--sigma`).
            strength: for a model that denoises by a noise level: times that level
                (`--strength`): 0 gives the image back, below 1 keeps more texture, above
                1 smooths more; 1, the default, is the level as it is, for any model.
            tta: conv models: the mean over the 8 flips and rotations (`--tta`), 8x the time.

        Returns:
            The denoised image(s), the input's shape and dtype.

        Raises:
            InputError: not an image this model takes (dtype, shape, a colour image for
                a gray model, NaN).
            UsageError: `sigma` or a `strength` other than 1 for a model that no noise
                level steers, `tta` for a dense model, or a `sigma` or `strength` that is
                not a level.

        Example:
            >>> clean = dae_cli.load("photo").denoise(noisy, sigma=25)    # doctest: +SKIP
        """
        from dae_cli.apply.pipeline import denoise_arrays

        options = self._options("denoise", sigma=sigma, strength=strength, tta=tta)
        images = _Images.of(image, self.channels)
        results = denoise_arrays(self._model, images.for_model(self.channels), images.own_channels, options)
        return images.back([result for result, _, _ in results])

    def encode(self, image: np.ndarray, *, sigma: float | str | None = None) -> np.ndarray:
        """The latent of the image: what `dae encode` writes for it.

        Args:
            image: as `denoise` takes it (alpha is left out). A dense model encodes
                images of its own size only (`dae encode --tiles` has no counterpart here).
            sigma: as for `denoise`.

        Returns:
            float32: a vector `(latent_dim,)` (dense models) or a feature map `(h, w,
            latent_dim)` at 1/`size_multiple` of the image padded to it (conv models);
            `(N, ...)` for a batch.

        Raises:
            InputError, UsageError: as `denoise`.

        Example:
            >>> latent = dae_cli.load("mnist").encode(digit)   # doctest: +SKIP
            >>> latent.shape                                   # doctest: +SKIP
            (16,)
        """
        import numpy as np

        from dae_cli.apply.pipeline import encode_arrays

        options = self._options("encode", sigma=sigma)
        images = _Images.of(image, self.channels)
        if not self._model.any_size and images.size != self._model.image_shape[:2]:
            height, width = self._model.image_shape[:2]
            raise InputError(f"image is {images.size[0]}x{images.size[1]}; this model encodes {height}x{width} only")
        latents = np.stack(encode_arrays(self._model, images.for_model(self.channels), options))
        return latents if images.batch else latents[0]

    def decode(self, latent: np.ndarray, *, shape: tuple[int, ...] | None = None, dtype: Any = None) -> np.ndarray:
        """The image a latent decodes to: what `dae decode` writes for it.

        Args:
            latent: as `encode` gives it, one or a batch `(N, ...)`.
            shape: the image's shape, `(H, W)` or `(H, W, C)` with C 1 or 3: the decoded
                image is cropped to H x W (a conv model decodes the padded size) and
                given in gray or colour (`dae decode` reads them where `encode` recorded
                them). Default: the size the latent covers, in the model's channels.
            dtype: uint8, uint16 or a float type (default float32, on [0, 1]).

        Returns:
            `(H, W[, C])`, or `(N, H, W[, C])` for a batch.

        Raises:
            InputError: a latent of the wrong shape, or NaN; a `shape` it cannot give.

        Example:
            >>> model = dae_cli.load("photo")                                   # doctest: +SKIP
            >>> out = model.decode(model.encode(image), shape=image.shape, dtype=image.dtype)  # doctest: +SKIP
        """
        from dae_cli.apply.pipeline import decode_arrays

        latents, batch = _latents(latent, self._model)
        images = decode_arrays(self._model, list(latents))
        return _decoded(images, batch, shape, dtype, self.channels)

    def _options(self, command: str, **given: Any):
        """The `ApplyOptions` of the keywords given, checked against the model as the
        command line checks its flags (`UsageError` for one it has no use for)."""
        from dae_cli.models.denoiser import ApplyOptions
        from dae_cli.noise_level import parse_sigma, parse_strength

        if given.get("sigma") is not None:
            given["sigma"] = parse_sigma(given["sigma"], name="sigma")
        if "strength" in given:  # 1 is every model's own level: given or not, the same
            strength = parse_strength(given["strength"], name="strength")
            given["strength"] = None if strength == 1 else strength
        options = ApplyOptions(**given)
        self._model.check(command, options, names=KEYWORDS)
        return options


@dataclasses.dataclass
class _Images:
    """A caller's image or batch, taken apart as the pipeline takes images, and put back."""

    colour: np.ndarray  # (N, H, W, 1 or 3): the samples but alpha, the caller's dtype
    alpha: np.ndarray | None  # (N, H, W, 1), carried over unchanged
    shape: tuple[int, ...]  # the caller's
    dtype: np.dtype  # the caller's (byte order too)
    batch: bool
    own_channels: list[int]  # each image's: 1 where it carries no colour

    @property
    def size(self) -> tuple[int, int]:
        return self.colour.shape[1], self.colour.shape[2]

    @classmethod
    def of(cls, image: Any, model_channels: int) -> _Images:
        """Checks `image` and takes it apart; `InputError` for what no model takes."""
        import numpy as np

        from dae_cli.io import pixels

        try:
            given = np.asarray(image)
        except ValueError as error:  # a ragged nest of lists, say
            raise InputError(f"image is not an array: {error}") from None
        array = given.astype(given.dtype.newbyteorder("="), copy=False)  # big-endian uint16, say
        batched = _batched(array)
        if not pixels.is_sample_type(array.dtype):
            raise InputError(f"image must be uint8, uint16 or floats on [0, 1], not {array.dtype}")
        if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
            raise InputError("image holds NaN or infinity")
        has_alpha = batched.shape[-1] in ALPHA_CHANNELS
        colour = batched[..., :-1] if has_alpha else batched
        own = [pixels.own_channels(one) for one in colour]
        if model_channels == 1 and 3 in own:
            raise InputError(
                "a colour image, and this model denoises gray images only: give it gray, "
                "or use a colour model such as 'photo'"
            )
        alpha = batched[..., -1:] if has_alpha else None
        return cls(colour, alpha, array.shape, given.dtype, array.ndim == 4, own)

    def for_model(self, channels: int) -> list[np.ndarray]:
        """Each image as the model takes it: float32 on [0, 1] in its `channels`."""
        from dae_cli.io import pixels

        return [pixels.to_model(one, channels) for one in self.colour]

    def back(self, results: list[np.ndarray]) -> np.ndarray:
        """The results (each in its own channels, on [0, 1]) in the caller's shape and dtype."""
        import numpy as np

        from dae_cli.io import pixels

        width = self.colour.shape[-1]
        samples = [
            pixels.from_model(np.broadcast_to(one, one.shape[:2] + (width,)), self.colour.dtype) for one in results
        ]
        joined = np.stack(samples)
        if self.alpha is not None:
            joined = np.concatenate([joined, self.alpha], axis=-1)
        return joined.reshape(self.shape).astype(self.dtype, copy=False)


def _batched(array: np.ndarray) -> np.ndarray:
    """`array` as (N, H, W, C), C 1 to 4; `InputError` for any other shape."""
    batched = array[None, ..., None] if array.ndim == 2 else array[None] if array.ndim == 3 else array
    if batched.ndim != 4 or not 1 <= batched.shape[-1] <= 4 or 0 in batched.shape:
        raise InputError(
            f"image of shape {array.shape}: give (H, W), (H, W, C) or a batch (N, H, W, C), "
            "C 1 to 4 (gray, gray and alpha, RGB, RGBA), none of them 0"
        )
    return batched


def _latents(latent: Any, model: Model) -> tuple[np.ndarray, bool]:
    """(latents (N, ...) float32, whether a batch was given), checked against the decoder."""
    import numpy as np

    array = np.asarray(latent)
    one = len(model.latent_shape)  # the dimensions of one latent: 1 vector, 3 map
    if array.ndim not in (one, one + 1) or array.shape[-1] != model.latent_dim or 0 in array.shape:
        wanted = ", ".join(str(size or name) for size, name in zip(model.latent_shape, ("h", "w", "")))
        raise InputError(f"latent of shape {array.shape}: this model decodes ({wanted}), or a batch (N, {wanted})")
    if not np.issubdtype(array.dtype, np.number) or not np.all(np.isfinite(array)):
        raise InputError("latent must hold finite numbers")
    batch = array.ndim == one + 1
    return (array if batch else array[None]).astype(np.float32, copy=False), batch


def _decoded(images: list[np.ndarray], batch: bool, shape: tuple[int, ...] | None, dtype: Any, channels: int):
    """Decoded images in the `shape` (one image's) and `dtype` asked for."""
    import numpy as np

    from dae_cli.io import pixels

    dtype = np.dtype(dtype or np.float32)
    if not pixels.is_sample_type(dtype):
        raise UsageError(f"dtype must be uint8, uint16 or a float type, not {dtype}")
    shape = tuple(shape) if shape is not None else images[0].shape[:2] + (channels,)
    if len(shape) not in (2, 3) or (len(shape) == 3 and shape[-1] not in (1, 3)):
        raise UsageError(f"shape {shape}: give (H, W) or (H, W, C), C 1 or 3 (a latent holds no alpha)")
    height, width = images[0].shape[:2]
    if shape[0] > height or shape[1] > width:
        raise InputError(f"shape {shape}: the latent decodes to {height}x{width}")
    wanted = shape[2] if len(shape) == 3 else 1
    out = []
    for image in images:
        image = image[: shape[0], : shape[1]]
        if wanted != image.shape[-1]:
            image = image.mean(axis=-1, keepdims=True) if wanted == 1 else np.repeat(image, 3, axis=-1)
        out.append(pixels.from_model(image, dtype).reshape(shape))
    return np.stack(out) if batch else out[0]


def train(
    config: str | os.PathLike | Mapping[str, Any] | None = None,
    *,
    out: str | os.PathLike = "dae-model",
    resume: bool = False,
    overwrite: bool = False,
    strategy: str = "auto",
    tensorboard: str | os.PathLike | None = None,
    reporter: Reporter | None = None,
    **settings: Any,
) -> Path:
    """Trains a model as `dae train` does and returns its directory.

    Args:
        config: a TOML config file, or a mapping of the same keys (`configs/*.toml`,
            `dae train --help`); `None`: the reference MNIST settings.
        out: the model directory to write (`--out`); never replaced unless `overwrite`.
        resume: continue an interrupted run at `out`, or train a finished one further.
        overwrite: replace a model at `out`, once the new one is complete.
        strategy: `"auto"`, `"one"`, `"mirrored"` or `"multi-worker"` (`--strategy`).
        tensorboard: a folder for TensorBoard logs (needs `dae-cli[tensorboard]`).
        reporter: receives progress, with the methods of
            `dae_cli.training.trainer.Reporter`; `None`: silent.
        **settings: any config key, as a keyword (`epochs=5`, `noise_std=25 / 255`):
            over the config's, as flags are over the file's.

    Returns:
        The model directory, `Path(out)`.

    Raises:
        UsageError: an unknown key or a bad value; nothing was created.
        TrainingInterrupted: Ctrl-C (`KeyboardInterrupt`) or SIGTERM; a checkpoint was saved
            (continue with `resume=True`).
        DaeError: training diverged, the data could not be read, the disk filled...

    Example:
        >>> dae_cli.train(dataset="mnist-sample", epochs=2, out="runs/small")   # doctest: +SKIP
        PosixPath('runs/small')
    """
    return run_training(
        config,
        out=out,
        resume=resume,
        overwrite=overwrite,
        strategy=strategy,
        tensorboard=tensorboard,
        reporter=reporter,
        **settings,
    ).model_dir


def run_training(
    config: str | os.PathLike | Mapping[str, Any] | None = None,
    *,
    out: str | os.PathLike = "dae-model",
    resume: bool = False,
    overwrite: bool = False,
    strategy: str = "auto",
    tensorboard: str | os.PathLike | None = None,
    reporter: Reporter | None = None,
    **settings: Any,
) -> TrainResult:
    """`train`, returning what the run wrote: the directory and its manifest (from which
    `dae train` prints its table; a multi-worker job's other workers write no directory)."""
    from dae_cli.config import Config
    from dae_cli.training.trainer import train as train_model

    config_file, overrides = (None, {**config, **settings}) if isinstance(config, Mapping) else (config, settings)
    unknown = sorted(set(overrides) - set(Config.keys()))
    if unknown:
        raise UsageError(f"unknown setting(s) {', '.join(unknown)}; valid settings: {', '.join(Config.keys())}")
    if tensorboard is not None:
        from dae_cli.extras import require

        require("tensorboard", extra="tensorboard", feature="--tensorboard")
    return train_model(
        None if config_file is None else str(config_file),
        overrides,
        Path(out),
        resume=resume,
        overwrite=overwrite,
        strategy=strategy,
        reporter=reporter,
        tensorboard=None if tensorboard is None else Path(tensorboard),
    )
