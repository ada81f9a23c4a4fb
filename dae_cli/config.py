"""The training configuration: the one schema of every setting, TOML loading, validation.

Each `Config` field declares, with `setting(...)`, its flag, help, `--help` panel,
choices or range; the options of `dae train`, `evaluate` and `noise` (dae_cli.cli.options),
the TOML type checks and `validate` are built from it, so a new setting is one field.

`Config()` holds the reference Keras example's values (the same as `configs/mnist.toml`).
A config file overrides the defaults, flags override the file, and `Config.validate`
rejects anything that cannot train. The resolved config is saved in the model's
manifest, so a model always says how it was made.

Example:
    >>> config = Config.resolve(None, {"epochs": 2})
    >>> config.epochs, config.latent_dim
    (2, 16)
"""

from __future__ import annotations

import dataclasses
import math
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from dae_cli.errors import UsageError

DATASETS = ("mnist", "mnist-sample")
NOISE_TYPES = ("gaussian", "salt-pepper", "speckle", "poisson", "mask", "poisson-gaussian", "camera", "mixture")
# Noises whose level a `noise_level_input` model can be given: the std, or the measured
# RMS noise of white Poisson-Gaussian noise. Not `camera`: its noise is correlated and
# JPEG-compressed, which the estimate of `--sigma auto` cannot read (BENCHMARKS.md).
LEVEL_NOISES = ("gaussian", "speckle", "poisson-gaussian")
ESTIMATOR_HALVINGS = 2  # the noise estimator's network runs at 1/4 of the image size
ARCHITECTURES = ("dense", "conv")  # dense: the reference design; conv: fully convolutional
DOWNSAMPLINGS = ("strided", "maxpool")
UPSAMPLINGS = ("transpose", "upsample")
LOSSES = ("mse", "mae")
LR_SCHEDULES = ("constant", "cosine")
PRECISIONS = ("auto", "float32", "mixed_bfloat16")  # auto: bfloat16 where the CPU has it
STRATEGIES = ("auto", "one", "mirrored", "multi-worker")  # `dae train --strategy`


PANELS = ("Data", "Model", "Training", "Noise", "Output")  # `--help` panels, in order


@dataclasses.dataclass(frozen=True)
class Setting:
    """What a `Config` field means to users: its flag, help, panel and allowed values.

    The flags of `train`, `evaluate` and `noise`, the TOML type checks and `validate`
    are all built from these, so a new setting is one field with one `setting(...)`.
    """

    help: str
    panel: str
    flag: str | None = None  # default: --the-key-with-dashes; "--x/--no-x" for booleans
    choices: tuple = ()
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # the bound itself is excluded
    high_open: bool = False
    parse: Callable[[str], Any] | None = None  # flag text -> value, where it differs from TOML
    metavar: str | None = None
    describe: str | None = None  # the type, as a TOML type error says it
    default_text: str | None = None  # how help shows the default, where str() would not do
    commands: tuple = ("train",)  # the commands that take it as a flag
    command_help: dict = dataclasses.field(default_factory=dict)  # command -> its own help


def setting(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING, **meta: Any) -> Any:
    """A `Config` field with its `Setting`."""
    return dataclasses.field(default=default, default_factory=default_factory, metadata={"setting": Setting(**meta)})


def parse_std(text: str, flag: str = "--noise-std") -> float:
    """A noise std on [0, 1] ("0.098") or as a fraction of the 0-255 scale ("25/255")."""
    numerator, slash, denominator = text.strip().partition("/")
    try:
        return float(numerator) / (float(denominator) if slash else 1.0)
    except (ValueError, ZeroDivisionError):
        raise UsageError(f"{flag} must be a number like 0.1 or a fraction like 25/255, got {text!r}") from None


def parse_std_range(text: str) -> list:
    parts = text.split(",")
    if len(parts) != 2:
        raise UsageError(f"--noise-std-range must be LOW,HIGH like 0,0.2 or 0/255,50/255, got {text!r}")
    return [parse_std(part, "--noise-std-range") for part in parts]


def parse_range(flag: str, kind: type = float) -> Callable[[str], list]:
    """A parser of `LOW,HIGH` flags (numbers of `kind`)."""

    def parse(text: str) -> list:
        parts = text.split(",")
        try:
            if len(parts) != 2:
                raise ValueError
            return [kind(part.strip()) for part in parts]
        except ValueError:
            example = "90,100" if kind is int else "0.0001,0.01"
            raise UsageError(f"{flag} must be LOW,HIGH like {example}, got {text!r}") from None

    return parse


def parse_filters(text: str) -> list:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"--filters must be comma-separated integers like 32,64, got {text!r}") from None


_EVALUATE = ("train", "evaluate")
_NOISE = ("train", "evaluate", "noise")
_THE_MODELS = "the model's"


@dataclasses.dataclass
class Config:
    """Everything that decides what `dae train` builds and how it trains it."""

    # Data
    dataset: str = setting(
        "mnist",
        panel="Data",
        choices=DATASETS,
        commands=_EVALUATE,
        help="mnist (Keras cache or download) or mnist-sample (shipped, offline).",
        command_help={"evaluate": "Score on this dataset's test split (default: the model's training data)."},
    )
    data: str | None = setting(
        None,
        panel="Data",
        describe="a path string",
        commands=_EVALUATE,
        default_text="none",
        help="An .npz in the keras.datasets layout, or a folder of images.",
        command_help={"evaluate": "An .npz (its x_test) or a folder of images (its seeded validation split)."},
    )
    channels: int | None = setting(
        None,
        panel="Data",
        choices=(1, 3),
        default_text="as the data",
        help="1 (grayscale) or 3 (RGB).",
    )
    val_split: float = setting(
        0.1,
        panel="Data",
        low=0,
        high=1,
        low_open=True,
        high_open=True,
        commands=_EVALUATE,
        help="Validation fraction for image folders.",
    )
    limit: int | None = setting(
        None,
        panel="Data",
        low=1,
        metavar="N",
        commands=_EVALUATE,
        default_text="all",
        help="Use at most N training and N validation images.",
        command_help={"evaluate": "Score at most N images."},
    )
    patch_size: int | None = setting(
        None,
        panel="Data",
        low=1,
        default_text="whole images",
        help="Train on random square crops of this size.",
    )
    # A colour model learns gray photographs too when some crops are made gray (the
    # luma in all three channels); `dae` gives a colour model's gray inputs that form.
    gray_fraction: float = setting(
        0.0,
        panel="Data",
        low=0,
        high=1,
        help="RGB training on patches: the fraction of crops turned gray (luma in every channel).",
    )
    # Photographs hold stronger colour detail than a training set may: a noise-estimating
    # model that never saw it reads it as a camera's colour noise (issue 24: McMaster).
    saturation_range: list[float] | None = setting(
        None,
        panel="Data",
        low=0,
        parse=parse_range("--saturation-range", float),
        metavar="LOW,HIGH",
        describe="a list of two numbers",
        default_text="as they are",
        help="RGB training on patches: each crop's colour saturation times a factor from LOW,HIGH "
        "(0 gray, 1 as it is), before the noise.",
    )
    # NumPy and Keras take seeds from 0 to 2**32 - 1.
    seed: int = setting(
        0,
        panel="Data",
        low=0,
        high=2**32 - 1,
        commands=_NOISE,
        help="Seed for shuffling, noise and initial weights.",
        command_help={
            "evaluate": "Seed of the noise; the same seed gives the same figures (default: the model's "
            "training seed, so the figures are the ones 'dae train' reported).",
            "noise": "Seed: the same seed gives the same noise.",
        },
    )
    # Validation images from another folder (any sizes), instead of a split of `data`
    val_data: str | None = setting(
        None,
        panel="Data",
        describe="a path string",
        default_text="a split of --data",
        help="A folder of validation images (any sizes), instead of a split of --data.",
    )
    # Real pairs from disk: noisy inputs under --data, their targets (clean, or a second
    # noisy shot of the same scene for Noise2Noise) under --targets at the same relative
    # path; no noise is added.
    targets: str | None = setting(
        None,
        panel="Data",
        describe="a path string",
        metavar="DIR",
        default_text="none: noise is added",
        help="A folder of targets matched to --data's images by relative path (clean, or a second noisy shot); "
        "trains on these pairs, adding no noise.",
    )
    # Self-supervised: the images of --data are noisy and no clean ones exist
    # (dae_cli.training.neighbor2neighbor); no noise is added.
    self_supervised: bool = setting(
        False,
        panel="Data",
        help="Train from the noisy images of --data alone (Neighbor2Neighbor): no clean images, no noise added.",
    )
    # Model: `dense` is the reference example's encoder/decoder design (a Dense latent
    # vector); `conv` is fully convolutional (the latent is a feature map), any size.
    architecture: str = setting(
        "dense",
        panel="Model",
        flag="--arch",
        choices=ARCHITECTURES,
        help="dense: the reference design, a Dense latent vector, one image size; "
        "conv: fully convolutional, any image size, the latent is a feature map.",
    )
    latent_dim: int = setting(16, panel="Model", low=1, help="Latent vector size (dense only).")
    layer_filters: list[int] = setting(
        default_factory=lambda: [32, 64],
        panel="Model",
        flag="--filters",
        low=1,
        parse=parse_filters,
        metavar="N,N,...",
        help="Conv filters per block, e.g. 32,64.",
    )
    kernel_size: int = setting(3, panel="Model", low=1, help="Convolution kernel size.")
    batch_norm: bool = setting(False, panel="Model", help="BatchNormalization before each ReLU.")
    # The example's alternatives: MaxPooling2D for strided Conv2D, UpSampling2D for
    # strided Conv2DTranspose ("faster but not as good"; measured in BENCHMARKS.md).
    downsampling: str = setting(
        "strided",
        panel="Model",
        choices=DOWNSAMPLINGS,
        help="strided: strided Conv2D; maxpool: MaxPooling2D.",
    )
    upsampling: str = setting(
        "transpose",
        panel="Model",
        choices=UPSAMPLINGS,
        help="transpose: strided Conv2DTranspose; upsample: UpSampling2D.",
    )
    # conv only: convolutions per level; every scale's features in the latent (as a
    # U-Net passes its skips); the decoder predicts the noise and subtracts it.
    blocks_per_level: int = setting(2, panel="Model", low=1, help="conv: convolutions per level.")
    skips: bool = setting(
        True, panel="Model", help="conv: the latent holds every scale's features, as a U-Net passes them."
    )
    residual: bool = setting(
        True, panel="Model", help="conv: the decoder predicts the noise and subtracts it; off: a sigmoid output."
    )
    # conv only, as FFDNet and DRUNet do: the noise level (the std on [0, 1]) enters the
    # encoder as one more input channel, so one model serves every level, and a user can
    # ask for less (keeping texture) or more than the image has.
    noise_level_input: bool = setting(
        False, panel="Model", help="conv: the encoder takes the noise level as an extra input channel."
    )
    # conv only, as CBDNet does: a small network in the encoder estimates a noise level map
    # (per pixel and channel) from the image and feeds it to the rest, so the model is
    # blind to the user yet steerable: `--strength` scales the map, `--sigma` replaces it.
    noise_estimator: bool = setting(
        False, panel="Model", help="conv: the encoder estimates a noise level map itself and denoises by it."
    )
    # Training
    loss: str = setting("mse", panel="Training", choices=LOSSES, help="Training loss.")
    epochs: int = setting(30, panel="Training", low=1, help="Total epochs.")
    batch_size: int = setting(128, panel="Training", low=1, help="Batch size per replica.")
    # Chosen by measurement (BENCHMARKS.md): a cosine schedule from 0.003, where the
    # example keeps Adam's default 0.001 throughout. configs/mnist.toml holds the keys
    # the issue fixes to the example's values, so it leaves these three out.
    learning_rate: float = setting(
        0.003,
        panel="Training",
        low=0,
        low_open=True,
        help="Adam learning rate, the start of the schedule (the example: 0.001, constant).",
    )
    lr_schedule: str = setting("cosine", panel="Training", choices=LR_SCHEDULES, help="Learning rate schedule.")
    precision: str = setting(
        "auto",
        panel="Training",
        choices=PRECISIONS,
        help="auto: mixed_bfloat16 where the CPU has AVX512-BF16 or AMX and no GPU is visible, else float32.",
    )
    jit_compile: bool = setting(False, panel="Training", help="Compile training steps with XLA.")
    # Fine-tuning: a built-in model (or one of the user's) as the starting point, for
    # their own noise or data; weights whose shapes differ (say the first convolution,
    # when one model takes the noise level and the other does not) start fresh.
    init_from: str | None = setting(
        None,
        panel="Training",
        describe="a model directory or built-in name",
        metavar="MODEL",
        default_text="none",
        help="Start from this model's weights (a directory or built-in name, e.g. photo); same layers needed.",
    )
    # With several replicas the global batch is batch_size x replicas; this scales the
    # learning rate by the replica count to match (the linear scaling rule).
    scale_learning_rate: bool = setting(
        False,
        panel="Training",
        flag="--scale-lr/--no-scale-lr",
        help="Multiply the learning rate by the number of replicas.",
    )
    # Noise added to clean images to make the training inputs
    noise: str = setting("gaussian", panel="Noise", choices=NOISE_TYPES, commands=_NOISE, help="Noise type.")
    noise_mean: float = setting(0.5, panel="Noise", commands=_NOISE, help="Gaussian noise mean.")
    noise_std: float = setting(
        0.5,
        panel="Noise",
        low=0,
        parse=parse_std,
        metavar="STD",
        commands=_NOISE,
        help="Gaussian/speckle noise std on [0, 1], or on the 0-255 scale as 25/255.",
    )
    # Blind training: each image gets its own std drawn uniformly from [low, high]
    noise_std_range: list[float] | None = setting(
        None,
        panel="Noise",
        low=0,
        parse=parse_std_range,
        metavar="LOW,HIGH",
        commands=_NOISE,
        describe="a list of two numbers",
        default_text="none",
        help="Blind noise: each image's std drawn uniformly from LOW,HIGH (e.g. 0,0.2 or 0/255,50/255).",
    )
    noise_amount: float = setting(
        0.1, panel="Noise", low=0, high=1, commands=_NOISE, help="Salt-pepper amount / mask fraction."
    )
    noise_peak: float = setting(
        30.0, panel="Noise", low=0, low_open=True, commands=_NOISE, help="Poisson peak photon count."
    )
    # Camera noise (poisson-gaussian, camera; dae_cli.noise): variance a x + b^2 per pixel,
    # a and b drawn per image, so one model learns the range of a camera's ISO settings.
    noise_shot_range: list[float] = setting(
        default_factory=lambda: [0.0001, 0.012],
        panel="Noise",
        low=0,
        low_open=True,
        parse=parse_range("--noise-shot-range"),
        metavar="LOW,HIGH",
        commands=_NOISE,
        describe="a list of two numbers",
        help="poisson-gaussian, camera: shot noise gain a (variance a*x), drawn log-uniformly per image.",
    )
    noise_read_range: list[float] = setting(
        default_factory=lambda: [0.0, 0.03],
        panel="Noise",
        low=0,
        parse=parse_range("--noise-read-range"),
        metavar="LOW,HIGH",
        commands=_NOISE,
        describe="a list of two numbers",
        help="poisson-gaussian, camera: read noise std b on [0, 1], drawn uniformly per image.",
    )
    noise_channel_spread: float = setting(
        0.0,
        panel="Noise",
        low=0,
        high=1,
        high_open=True,
        commands=_NOISE,
        help="poisson-gaussian, camera: each channel's noise std times a factor from [1-s, 1+s], per image.",
    )
    noise_jpeg_range: list[int] | None = setting(
        None,
        panel="Noise",
        low=1,
        high=100,
        parse=parse_range("--noise-jpeg-range", int),
        metavar="LOW,HIGH",
        commands=_NOISE,
        describe="a list of two integers",
        default_text="no JPEG",
        help="camera: JPEG-compress each image at a quality drawn from LOW,HIGH.",
    )

    @classmethod
    def keys(cls) -> list[str]:
        return [field.name for field in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> Config:
        """Builds a config from `values`, rejecting unknown keys and wrong types."""
        unknown = sorted(set(values) - set(cls.keys()))
        if unknown:
            raise UsageError(f"{source}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(cls.keys())}")
        config = cls()
        for key, value in values.items():
            setattr(config, key, _check_type(key, value, source))
        return config

    @classmethod
    def from_toml(cls, path: str | Path) -> Config:
        return cls.from_dict(cls.read_toml(path), source=str(path))

    @classmethod
    def read_toml(cls, path: str | Path) -> dict[str, Any]:
        """The keys a TOML file sets (and only those), their names and types checked."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UsageError(f"config file not found: {path}") from None
        except (OSError, UnicodeDecodeError) as error:
            raise UsageError(f"cannot read config file {path}: {error}") from None
        try:
            values = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise UsageError(f"{path}: invalid TOML: {error}") from None
        cls.from_dict(values, source=str(path))  # unknown keys and wrong types raise
        return {key: _check_type(key, value, str(path)) for key, value in values.items()}

    @classmethod
    def resolve(cls, config_file: str | Path | None, overrides: dict[str, Any]) -> Config:
        """Defaults, then the file, then the flags that were given; validated."""
        config = cls.from_toml(config_file) if config_file else cls()
        given = {key: value for key, value in overrides.items() if value is not None}
        merged = {**dataclasses.asdict(config), **given}
        config = cls.from_dict(merged, source="flags" if given else "config")
        config.validate()
        return config

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """Raises `UsageError` naming every value that cannot work."""
        problems = [problem for key in self.keys() if (problem := check_value(key, getattr(self, key))) is not None]

        def require(ok: bool, message: str) -> None:
            if not ok:
                problems.append(message)

        require(
            math.isfinite(self.noise_mean) and math.isfinite(self.noise_std),
            "noise_mean and noise_std must be finite",
        )
        if self.noise_std_range is not None:
            low, high = (self.noise_std_range + [math.nan, math.nan])[:2]
            require(
                len(self.noise_std_range) == 2 and 0 <= low <= high and math.isfinite(high),
                f"noise_std_range must be two numbers low,high with 0 <= low <= high, got {self.noise_std_range}",
            )
        require(
            not self.noise_level_input or self.architecture == "conv",
            'noise_level_input needs architecture = "conv"',
        )
        for key in ("noise_shot_range", "noise_read_range", "noise_jpeg_range", "saturation_range"):
            pair = getattr(self, key)
            if pair is not None:
                require(
                    len(pair) == 2 and pair[0] <= pair[1],
                    f"{key} must be two numbers low,high with low <= high, got {pair}",
                )
        require(
            not self.noise_estimator or (self.architecture == "conv" and not self.noise_level_input),
            'noise_estimator needs architecture = "conv" and excludes noise_level_input (it makes its own level)',
        )
        require(
            not self.noise_level_input or self.noise in LEVEL_NOISES,
            f"noise_level_input needs a noise with a level ({', '.join(LEVEL_NOISES)})",
        )
        for key in ("gray_fraction", "saturation_range"):
            require(
                not getattr(self, key) or (self.patch_size is not None and self.channels == 3),
                f"{key} needs channels = 3 and patch_size",
            )
        if self.targets is not None or self.self_supervised:
            self._check_noisy_data(require)
        if self.patch_size is not None:
            check_divisible((self.patch_size, self.patch_size), self.size_multiple, problems)
        if problems:
            raise UsageError("invalid config: " + "; ".join(problems))

    def _check_noisy_data(self, require) -> None:
        """What training on noisy data (pairs from disk, or self-supervised) needs."""
        flag = "self_supervised" if self.self_supervised else "targets"
        require(not (self.self_supervised and self.targets), "self_supervised and targets exclude each other")
        require(self.data is not None, f"{flag} needs data, a folder of the noisy images")
        require(self.val_data is None, f"{flag} validates on a split of data; val_data cannot be used with it")
        for key in ("gray_fraction", "saturation_range"):
            require(not getattr(self, key), f"{key} cannot be used with {flag}: the images' own noise is kept")
        if self.self_supervised:
            require(
                self.architecture == "conv" and self.patch_size is not None,
                'self_supervised needs architecture = "conv" and patch_size (it trains on half-size crops)',
            )
            require(not self.noise_level_input, "self_supervised trains a blind model: noise_level_input must be off")
            require(
                not self.noise_estimator,
                "self_supervised cannot train a noise_estimator: its estimate learns the true noise, "
                "which needs clean images or targets",
            )
            if self.patch_size is not None:
                require(
                    self.patch_size % (2 * self.size_multiple) == 0,
                    f"self_supervised needs patch_size divisible by {2 * self.size_multiple} (half-size crops)",
                )

    @property
    def size_multiple(self) -> int:
        """What height and width must be divisible by: one halving per downsampling."""
        halvings = len(self.layer_filters) - (self.architecture == "conv")
        if self.noise_estimator:  # its network works on 4x4 squares folded into channels
            halvings = max(halvings, ESTIMATOR_HALVINGS)
        return 2 ** max(0, halvings)


def check_divisible(size: tuple[int, int], factor: int, problems: list[str] | None = None) -> None:
    """Height and width must halve cleanly once per downsampling."""
    if size[0] % factor or size[1] % factor:
        message = (
            f"image size {size[0]}x{size[1]} is not divisible by {factor} "
            f"(one halving per downsampling of layer_filters)"
        )
        if problems is None:
            raise UsageError(message)
        problems.append(message)


def settings(command: str | None = None) -> list[dataclasses.Field]:
    """Config's fields in `--help` order (by panel), all or those that `command` takes."""
    fields = [field for field in dataclasses.fields(Config) if command is None or command in spec(field.name).commands]
    return sorted(fields, key=lambda field: PANELS.index(spec(field.name).panel))


def spec(key: str) -> Setting:
    return _FIELDS[key].metadata["setting"]


def value_type(key: str) -> tuple[type, type | None, bool]:
    """(type, item type of a list or None, may be None) from the field's annotation."""
    hint = _HINTS[key]
    args = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    nullable = type(None) in typing.get_args(hint)
    if nullable:
        hint = args[0]
    base = typing.get_origin(hint) or hint
    items = typing.get_args(hint)
    return base, (items[0] if base is list else None), nullable


def check_value(key: str, value: Any) -> str | None:
    """What is wrong with `value` for `key` (its choices and range), or None."""
    setting_ = spec(key)
    if value is None:
        return None
    if setting_.choices and value not in setting_.choices:
        return f"{key} must be one of {', '.join(map(str, setting_.choices))}"
    if isinstance(value, list):
        if not value:
            return f"{key} must not be empty"
        if any(not _in_range(item, setting_) for item in value):
            return f"{key} must all be {_range_text(setting_)}"
    elif not _in_range(value, setting_):
        return f"{key} must be {_range_text(setting_)}"
    return None


def _in_range(value: Any, setting_: Setting) -> bool:
    if setting_.low is None and setting_.high is None:
        return True
    if isinstance(value, float) and not math.isfinite(value):
        return False
    low_ok = setting_.low is None or (value > setting_.low if setting_.low_open else value >= setting_.low)
    high_ok = setting_.high is None or (value < setting_.high if setting_.high_open else value <= setting_.high)
    return low_ok and high_ok


def _range_text(setting_: Setting) -> str:
    low, high = setting_.low, setting_.high
    if high is not None:
        exclusive = " (exclusive)" if setting_.low_open and setting_.high_open else ""
        return f"between {low} and {high}{exclusive}"
    if (low == 0 and setting_.low_open) or (low == 1 and not setting_.low_open):
        return "positive"
    return "0 or more" if low == 0 else f"at least {low}"


def range_help(key: str) -> str | None:
    """The range as `--help` shows it, or None."""
    setting_ = spec(key)
    if setting_.low is None and setting_.high is None:
        return None
    return _range_text(setting_)


def parse_flag(key: str, text: str) -> Any:
    """A flag's text as the value of `key`, checked: raises `UsageError` naming the problem."""
    setting_ = spec(key)
    base, _, _ = value_type(key)
    if setting_.parse is not None:
        value = setting_.parse(text)
    else:
        try:
            value = base(text)
        except ValueError:
            kind = {int: "an integer", float: "a number"}.get(base, f"a {base.__name__}")
            raise UsageError(f"{text!r} is not {kind}") from None
    problem = check_value(key, value)
    if problem is not None:
        raise UsageError(problem)
    return value


_DESCRIPTIONS = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def _check_type(key: str, value: Any, source: str) -> Any:
    """`value` as the TOML or saved value of `key`, its type checked."""
    base, item, nullable = value_type(key)
    if value is None and nullable:
        return None
    description = spec(key).describe or (
        f"a list of {_DESCRIPTIONS[item].split(' ', 1)[1]}s" if base is list else _DESCRIPTIONS[base]
    )

    def fits(value: Any, kind: type) -> bool:
        # bool is an int subclass in Python; `epochs = true` is still a mistake.
        if isinstance(value, bool):
            return kind is bool
        return isinstance(value, (int, float) if kind is float else kind)

    if base is list:
        ok = isinstance(value, list) and all(fits(v, item) for v in value)
    else:
        ok = fits(value, base)
    if not ok:
        raise UsageError(f"{source}: {key} must be {description}, got {value!r}")
    if base is list:
        return [item(v) for v in value]
    return float(value) if base is float else value


_FIELDS = {field.name: field for field in dataclasses.fields(Config)}
_HINTS = typing.get_type_hints(Config)
