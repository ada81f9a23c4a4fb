"""A trained model, ready to apply: `load_denoiser(directory)` and the `Denoiser` it returns.

`load_denoiser` is the one place that reads which architecture a model directory holds.
Everything that differs between the two lives behind the `Denoiser` interface:

- the size policy: how one image becomes equal-shape windows and back (`plan_denoise`,
  `plan_encode`: exact, resized or tiled for a fixed-size dense model; whole, padded to
  the model's multiple, or by windows past a pixel budget for a conv model);
- how many windows go through the model at once (`batch_limit`);
- the model calls on a batch (`denoise`, `encode`, `decode`), with the noise level for
  a model that takes one;
- the latent codec: vectors or feature maps, and their files (`latents`);
- the flags each command takes (`check`), so a flag that does not apply is refused;
- what `dae info` and `dae export` say of the latent (`describe_latent`, `latent_shape`).

Example:
    >>> model = load_denoiser("dae-model")                        # doctest: +SKIP
    >>> plan = model.plan_denoise(pixels, ApplyOptions())         # doctest: +SKIP
    >>> batch = np.stack([plan.window(i) for i in range(plan.count)])
    >>> for i, output in enumerate(model.denoise(batch)):
    ...     plan.put(i, output)
    >>> denoised = plan.result()
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from dae_cli.errors import InputError, ModelError, UsageError
from dae_cli.io import latent_maps, latents
from dae_cli.models import artifacts
from dae_cli.models.windows import CROSS_FADE, LATTICE, Collected, Plan, Resized, Tiling, Turned

DEFAULT_BATCH = 256  # windows per model call of a dense model
DEFAULT_MAX_MEGAPIXELS = 1.0  # conv: a 24-megapixel photo in 2.5 GB (BENCHMARKS.md)
# A noise-estimating model's estimator adds to each window's activations: at 1 megapixel a
# 24-megapixel photo peaked at 2.72 GB, at 0.5 at 2.22 (BENCHMARKS.md, issue 24).
ESTIMATING_MAX_MEGAPIXELS = 0.5
DEFAULT_CONV_OVERLAP = 64  # more than the built-in model's reach across a window's edge

# How each setting is spelled on the command line, for messages.
FLAGS = {
    "resize": "--resize",
    "tile": "--tile/--no-tile",
    "tiles": "--tiles",
    "overlap": "--overlap",
    "batch_size": "--batch-size",
    "max_megapixels": "--max-megapixels",
    "sigma": "--sigma",
    "strength": "--strength",
    "tta": "--tta",
    "precision": "--precision",
}


@dataclasses.dataclass(frozen=True)
class ApplyOptions:
    """How a model is fitted to images: the flags of `denoise`, `encode` and `decode`.

    Each is None (or False) when it was not given, so that a flag the loaded model has
    no use for is refused (`Denoiser.check`) instead of silently ignored.
    """

    resize: bool = False
    tile: bool | None = None  # denoise --tile/--no-tile (default on)
    tiles: bool = False  # encode --tiles
    overlap: int | None = None
    batch_size: int | None = None
    max_megapixels: float | None = None
    sigma: float | str | None = None  # "auto" or a std on [0, 1]
    strength: float | None = None  # times the level the model denoises by (None: 1)
    tta: bool = False
    precision: str | None = None  # denoise --precision: float32 or bfloat16

    def given(self) -> list[str]:
        """The flags given: the fields that differ from their defaults (`--no-tile` too)."""
        return [field.name for field in dataclasses.fields(self) if getattr(self, field.name) != field.default]


@dataclasses.dataclass
class NoiseLevel:
    """The noise level one image is denoised by (`Denoiser.noise_level`).

    `model_input` is what the model is given with each window: the std on [0, 1] for a
    model that takes the level (`noise_level_input`), (scale, offset) for a model that
    estimates its own map (`networks.LevelMap`). `value` is the level the image is
    denoised by, to report: given, or estimated from the image before the model runs,
    times `--strength`; for a noise-estimating model it is the median of the map it
    denoised by, known once its windows have run (`measure`).
    """

    model_input: Any
    value: float | None = None
    estimated: bool = False
    measured: list[float] = dataclasses.field(default_factory=list)

    def measure(self, median: float) -> None:
        self.measured.append(float(median))

    @property
    def reported(self) -> float | None:
        """The std on [0, 1] that `-v` and `--json` give: the median over the windows' maps, if measured."""
        return float(np.median(self.measured)) if self.measured else self.value


@dataclasses.dataclass(frozen=True)
class BatchLimit:
    """At most `windows` windows and `pixels` output pixels per model call (None: no limit)."""

    windows: int | None = None
    pixels: int | None = None


class LatentCodec(Protocol):
    """How a model's latents go to files and back: `latents.VECTORS` or `latent_maps.MAPS`."""

    def check_output(self, out: Path | None, count: int, overwrite: bool) -> None: ...
    def write(self, out: Path, encoded: list, overwrite: bool) -> None: ...
    def record(self, source: str, latent: np.ndarray, kind: dict | None) -> dict: ...
    def read(self, spec: str) -> list: ...
    def array_for(self, item, latent_dim: int) -> np.ndarray: ...


class Denoiser:
    """The encoder and decoder SavedModels of a model directory, and how to apply them.

    Subclasses (one per architecture) say how images of any size fit the model and what
    its latent is; callers use this interface only. `encoder` or `decoder` is None
    when it was not loaded (`encode` needs only the encoder, `decode` the decoder, and
    `info` neither).
    """

    architecture: ClassVar[str]  # the manifest's name for it
    # The flags each command takes with this kind of model (`ApplyOptions` field names).
    takes_flags: ClassVar[dict[str, frozenset[str]]] = {}
    latents: ClassVar[LatentCodec]  # vectors or feature maps, and their files
    any_size: ClassVar[bool] = False  # whether the model takes images of any size whole

    def __init__(self, directory: Path, manifest: dict[str, Any], encoder=None, decoder=None):
        self.directory, self.manifest, self.encoder, self.decoder = Path(directory), manifest, encoder, decoder

    @property
    def image_shape(self) -> tuple:
        return tuple(self.manifest["image_shape"])

    @property
    def channels(self) -> int:
        """The image channels the model takes and gives (1 gray, 3 RGB)."""
        return int(self.manifest["image_shape"][-1])

    @property
    def latent_dim(self) -> int:
        return int(self.manifest["latent_dim"])

    @property
    def takes_noise_level(self) -> bool:
        """Whether the encoder takes the noise level as an extra input channel (FFDNet's map)."""
        return bool(self.manifest.get("noise_level_input", False))

    @property
    def estimates_noise(self) -> bool:
        """Whether the encoder estimates a noise level map itself (`noise_estimator`), steered
        by `--strength` and `--sigma`."""
        return bool(self.manifest.get("noise_estimator", False))

    @property
    def uses_noise_level(self) -> bool:
        """Whether a noise level steers the model: given to it, or estimated by it."""
        return self.takes_noise_level or self.estimates_noise

    def noise_level(
        self, pixels: np.ndarray, own_channels: int, sigma, strength: float | None = None
    ) -> NoiseLevel | None:
        """The level to denoise `pixels` (in the model's channels) by; None for a model that
        uses none. `sigma` is `auto` or None (estimated: by the PCA method from the image in
        its own channels, or by the model itself) or a std on [0, 1]; `strength` scales it."""
        if not self.uses_noise_level:
            return None
        strength = 1.0 if strength is None else float(strength)
        given = None if sigma is None or sigma == "auto" else float(sigma)
        if strength == 0:  # nothing is taken away, nothing needs estimating
            return NoiseLevel((0.0, 0.0) if self.estimates_noise else 0.0, value=0.0)
        if self.estimates_noise:
            if given is None:
                return NoiseLevel((strength, 0.0), estimated=True)
            return NoiseLevel((0.0, strength * given), value=strength * given)
        if given is None:
            from dae_cli.noise_level import estimate_sigma

            given, estimated = estimate_sigma(pixels[..., :own_channels]), True
        else:
            estimated = False
        return NoiseLevel(strength * given, value=strength * given, estimated=estimated)

    def load(
        self, parts: tuple[str, ...] = (artifacts.ENCODER, artifacts.DECODER), verify: bool = True, precision=None
    ) -> Denoiser:
        """Loads the SavedModels in `parts` (checking their sha256 unless `verify` is off);
        with `precision="bfloat16"`, copies of the Keras model's encoder and decoder that
        compute in bfloat16 instead (`bfloat16_models`)."""
        if precision == "bfloat16":
            self.encoder, self.decoder = bfloat16_models(self.directory, self.manifest, verify)
            return self
        loaded = artifacts.load_saved_models(self.directory, self.manifest, parts, verify)
        artifacts.check_latent_sizes(self.directory, loaded, self.latent_dim)
        self.encoder, self.decoder = loaded.get(artifacts.ENCODER), loaded.get(artifacts.DECODER)
        return self

    def check(self, command: str, options: ApplyOptions, names: dict[str, str] = FLAGS) -> None:
        """Raises `UsageError` (exit 2) for a flag given to `command` that this model has no
        use for; `names` spells the settings in the message (flags, or the API's keywords)."""
        takes = self.takes_flags.get(command, frozenset())
        if self.uses_noise_level:
            takes = takes | {"sigma"} | ({"strength"} if command in ("denoise", "evaluate") else set())
        for name in options.given():
            if name in ("sigma", "strength") and name not in takes:
                raise UsageError(
                    f"{names[name]} is for models that denoise by a noise level; {self.directory} does not "
                    "(train one with --noise-level-input or --noise-estimator, or use -m photo)"
                )
            if name not in takes:
                raise UsageError(
                    f"{names[name]} does not apply to {command} with {self.directory}: {self.why_not(name)}"
                )
        if options.precision == "bfloat16":
            from dae_cli.hardware import native_bfloat16

            if not native_bfloat16():
                raise UsageError(
                    "--precision bfloat16 needs a CPU that computes bfloat16 itself (AVX512-BF16 or AMX); "
                    "this one would emulate it, slower than float32"
                )
        self._check_values(options)

    def why_not(self, flag: str) -> str:
        raise NotImplementedError

    def _check_values(self, options: ApplyOptions) -> None:
        pass

    # The size policy.
    def plan_denoise(self, pixels: np.ndarray, options: ApplyOptions, path: Path | str = "") -> Plan:
        raise NotImplementedError

    def plan_encode(
        self, pixels: np.ndarray, options: ApplyOptions, path: Path | str = ""
    ) -> tuple[Collected, list[str]]:
        """The windows to encode of one image, and the source each latent is named by."""
        raise NotImplementedError

    def batch_limit(self, options: ApplyOptions, decoding: bool = False) -> BatchLimit:
        raise NotImplementedError

    # The model calls, on float32 batches of equal-shape windows.
    def model_input(self, images: np.ndarray, levels=None) -> np.ndarray:
        """`images` as the encoder takes them: with the level map of `levels` (n,) if it
        takes one, or the (n, 2) scales and offsets that steer its own estimate."""
        if not self.uses_noise_level:
            return images
        if self.estimates_noise and levels is None:
            levels = np.tile(np.float32([1.0, 0.0]), (len(images), 1))  # its estimate as it is
        if levels is None:
            raise ValueError(f"{self.directory} takes a noise level for each image; none was given")
        from dae_cli.noise import with_level_controls, with_level_map

        images = np.asarray(images, np.float32)
        if self.estimates_noise:
            levels = np.asarray(levels, np.float32).reshape(-1, 2)
            return with_level_controls(images, levels[:, 0], levels[:, 1])
        return with_level_map(images, levels)

    def encode(self, images: np.ndarray, levels=None) -> np.ndarray:
        return self.encoder.serve(self.model_input(images, levels)).numpy()

    def decode(self, latent_batch: np.ndarray) -> np.ndarray:
        return self.decoder.serve(latent_batch).numpy()

    def denoise(self, images: np.ndarray, levels=None) -> np.ndarray:
        """decoder(encoder(images)), the composition of the two SavedModels; `levels`
        (n,) noise stds on [0, 1] for a model that takes them."""
        if self.estimates_noise:
            return self.denoise_and_measure(images, levels)[0]
        return self.decoder.serve(self.encoder.serve(self.model_input(images, levels))).numpy()

    def denoise_and_measure(self, images: np.ndarray, levels=None) -> tuple[np.ndarray, np.ndarray | None]:
        """(`denoise`'s output, the median of each window's level map on [0, 1]): the
        medians are read from the latent of a noise-estimating model, else None."""
        if not self.estimates_noise:
            return self.denoise(images, levels), None
        latent = self.encoder.serve(self.model_input(images, levels))
        start, stop = self.manifest["level_channels"]
        medians = np.median(latent.numpy()[..., start:stop].reshape(len(images), -1), axis=1)
        return self.decoder.serve(latent).numpy(), medians

    def latent_array(self, item) -> np.ndarray:
        """A latent read from a file (`item`), checked against the decoder, as float32."""
        return self.latents.array_for(item, self.latent_dim)

    # What `info` and `export` say.
    def describe_latent(self) -> str:
        raise NotImplementedError

    @property
    def latent_shape(self) -> tuple:
        """The latent's shape without the batch axis (None where any size goes)."""
        raise NotImplementedError


class DenseDenoiser(Denoiser):
    """The reference design: a Dense latent vector, so one image size; an image of another
    size is tiled (the default for `denoise`, `--tiles` for `encode`) or `--resize`d."""

    architecture = "dense"
    takes_flags = {
        "denoise": frozenset({"resize", "tile", "overlap", "batch_size", "precision"}),
        "encode": frozenset({"resize", "tiles", "overlap", "batch_size"}),
        "decode": frozenset({"batch_size"}),
        "evaluate": frozenset({"batch_size"}),
    }
    latents = latents.VECTORS

    def why_not(self, flag: str) -> str:
        return "it is for fully convolutional models (--arch conv); this model is dense"

    @property
    def tile(self) -> tuple[int, int]:
        return self.image_shape[0], self.image_shape[1]

    def _check_values(self, options: ApplyOptions) -> None:
        if options.overlap is not None and not 0 <= options.overlap < min(self.tile):
            raise UsageError(f"--overlap must be between 0 and {min(self.tile) - 1}")

    def _plan(self, pixels: np.ndarray, options: ApplyOptions, tile: bool, path) -> Plan:
        if pixels.shape[:2] == self.tile:
            return Tiling.exact(pixels)
        if options.resize:
            return Resized(pixels, self.tile)
        if tile:
            overlap = min(self.tile) // 2 if options.overlap is None else options.overlap
            return Tiling.tiled(pixels, self.tile, overlap, LATTICE)
        raise InputError(
            f"{path}: image is {pixels.shape[0]}x{pixels.shape[1]}, the model takes "
            f"{self.tile[0]}x{self.tile[1]}; tile it (denoise: --tile, encode: --tiles) or pass --resize"
        )

    def plan_denoise(self, pixels, options, path=""):
        return self._plan(pixels, options, options.tile is not False, path)

    def plan_encode(self, pixels, options, path=""):
        plan = self._plan(pixels, options, options.tiles, path)
        windows = [plan.window(i) for i in range(plan.count)]
        tiled = isinstance(plan, Tiling) and (plan.count > 1 or plan.tile != pixels.shape[:2])
        sources = [f"{path}#{y},{x}" for y, x in plan.corners] if tiled else [str(path)]
        return Collected(windows), sources

    def batch_limit(self, options, decoding=False):
        return BatchLimit(windows=options.batch_size or DEFAULT_BATCH)

    @classmethod
    def manifest_shapes(cls, config, image_shape: tuple, encoder) -> dict[str, Any]:
        return {"architecture": cls.architecture, "image_shape": list(image_shape), "latent_dim": config.latent_dim}

    def describe_latent(self) -> str:
        return str(self.latent_dim)

    @property
    def latent_shape(self) -> tuple:
        return (self.latent_dim,)


class ConvDenoiser(Denoiser):
    """Fully convolutional: any image whose height and width divide by `size_multiple`
    goes through whole; others are padded by reflection to it and cropped back, and an
    image over `--max-megapixels` goes by overlapping windows of that size, cross-faded.
    The latent is a feature map at 1/`size_multiple` of the image."""

    architecture = "conv"
    takes_flags = {
        "denoise": frozenset({"overlap", "batch_size", "max_megapixels", "tta", "precision"}),
        "encode": frozenset({"batch_size"}),
        "decode": frozenset({"batch_size"}),
        "evaluate": frozenset({"batch_size", "max_megapixels"}),
    }
    latents = latent_maps.MAPS
    any_size = True

    def why_not(self, flag: str) -> str:
        return "this model is fully convolutional: it takes images of any size whole (encode: no windows)"

    @property
    def size_multiple(self) -> int:
        """What the height and width going through the model must be divisible by."""
        return int(self.manifest.get("size_multiple", 1))

    def _whole_or_windows(self, pixels: np.ndarray, max_pixels: int, overlap: int) -> Tiling:
        height, width = pixels.shape[:2]
        multiple = self.size_multiple
        if height * width <= max_pixels:
            return Tiling.padded(pixels, multiple)
        side = max(multiple, int(np.sqrt(max_pixels)) // multiple * multiple)
        side = min(side, max(height, width) + -max(height, width) % multiple)
        tile = (min(side, height + -height % multiple), min(side, width + -width % multiple))
        return Tiling.tiled(pixels, tile, min(overlap, side // 2), CROSS_FADE, multiple)

    def _max_pixels(self, options) -> int:
        """`--max-megapixels`, else this model's default: what keeps a 24-megapixel photo
        within 2.5 GB."""
        default = ESTIMATING_MAX_MEGAPIXELS if self.estimates_noise else DEFAULT_MAX_MEGAPIXELS
        return int((options.max_megapixels or default) * 1e6)

    def plan_denoise(self, pixels, options, path=""):
        max_pixels = self._max_pixels(options)
        overlap = DEFAULT_CONV_OVERLAP if options.overlap is None else options.overlap
        if options.tta:
            return Turned(pixels, lambda turned: self._whole_or_windows(turned, max_pixels, overlap))
        return self._whole_or_windows(pixels, max_pixels, overlap)

    def plan_encode(self, pixels, options, path=""):
        return Collected([Tiling.padded(pixels, self.size_multiple).window(0)]), [str(path)]

    @classmethod
    def manifest_shapes(cls, config, image_shape: tuple, encoder) -> dict[str, Any]:
        """Any height and width divisible by `size_multiple` (`image_shape` [null, null,
        channels]); the latent a feature map of the encoder's channels."""
        return {
            "architecture": cls.architecture,
            "image_shape": [None, None, int(image_shape[-1])],
            "latent_dim": int(encoder.output_shape[-1]),
            "size_multiple": config.size_multiple,
            "trained_on": list(image_shape),
            "noise_level_input": bool(config.noise_level_input),
            **cls._estimator_shapes(config, int(image_shape[-1])),
        }

    @staticmethod
    def _estimator_shapes(config, channels: int) -> dict[str, Any]:
        """For a noise-estimating model: that it is one, and the latent's channels that hold
        its level map (after the input's copy; `networks.build_conv_encoder`)."""
        if not config.noise_estimator:
            return {}
        folded = channels * 4 ** (len(config.layer_filters) - 1)
        start = folded if config.residual else 0
        return {"noise_estimator": True, "level_channels": [start, start + folded]}

    def batch_limit(self, options, decoding=False):
        """One image or window per call unless `--batch-size` asks for more, and never more
        pixels than `--max-megapixels`: a batch of two photographs needs twice the memory
        and measured no faster (BENCHMARKS.md, issue 18)."""
        pixels = self._max_pixels(options)
        if decoding:  # the budget is of the images the maps decode to
            pixels //= self.size_multiple**2
        return BatchLimit(windows=options.batch_size or 1, pixels=pixels)

    def describe_latent(self) -> str:
        return f"feature map of {self.latent_dim} channels at 1/{self.size_multiple} of the image size"

    @property
    def latent_shape(self) -> tuple:
        return (None, None, self.latent_dim)


class _Served:
    """A Keras model called as a SavedModel is (`serve`), its output in float32."""

    def __init__(self, model):
        from dae_cli.backend import tf

        self.serve = tf.function(lambda x: tf.cast(model(x, training=False), tf.float32), reduce_retracing=True)


def bfloat16_models(directory: Path, manifest: dict[str, Any], verify: bool = True) -> tuple[_Served, _Served]:
    """The encoder and decoder of the model's `autoencoder.keras`, every layer in mixed
    bfloat16 (weights as trained, computed in bfloat16), called as the SavedModels are."""
    from dae_cli.models.networks import split_autoencoder
    from dae_cli.models.onnx_export import policy_copy

    if verify:
        artifacts.verify_files(directory, manifest, (artifacts.KERAS_MODEL,))
    autoencoder = artifacts.load_keras_model(directory / artifacts.KERAS_MODEL)
    return tuple(_Served(policy_copy(part, "mixed_bfloat16")) for part in split_autoencoder(autoencoder))


ARCHITECTURES: dict[str, type[Denoiser]] = {kind.architecture: kind for kind in (DenseDenoiser, ConvDenoiser)}


def manifest_shapes(config, image_shape: tuple, encoder) -> dict[str, Any]:
    """What a model directory's manifest says of the shapes of a model `config` trained:
    what it takes (`image_shape`, what it was trained on) and what its latent is."""
    return ARCHITECTURES[config.architecture].manifest_shapes(config, image_shape, encoder)


def open_model(directory: str | Path) -> Denoiser:
    """The model in `directory` as its manifest describes it, with nothing loaded yet:
    enough for `info`, and to check flags before the SavedModels load (`Denoiser.load`)."""
    directory = Path(directory)
    manifest = artifacts.read_manifest(directory)
    architecture = manifest.get("architecture", DenseDenoiser.architecture)  # before there were two
    if architecture not in ARCHITECTURES:
        raise ModelError(f"{directory}: unknown architecture {architecture!r}; upgrade dae")
    return ARCHITECTURES[architecture](directory, manifest)


def load_denoiser(
    directory: str | Path, parts: tuple[str, ...] = (artifacts.ENCODER, artifacts.DECODER), verify: bool = True
) -> Denoiser:
    """The model in `directory`, with the SavedModels in `parts` loaded after checking the
    manifest and, unless told not to, the files' sha256."""
    return open_model(directory).load(parts, verify)
