"""The training configuration: defaults, TOML loading, flag overrides and validation.

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
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from dae_cli.errors import UsageError

DATASETS = ("mnist", "mnist-sample")
NOISE_TYPES = ("gaussian", "salt-pepper", "speckle", "poisson", "mask")
ARCHITECTURES = ("dense", "conv")  # dense: the reference design; conv: fully convolutional
DOWNSAMPLINGS = ("strided", "maxpool")
UPSAMPLINGS = ("transpose", "upsample")
LOSSES = ("mse", "mae")
LR_SCHEDULES = ("constant", "cosine")
PRECISIONS = ("auto", "float32", "mixed_bfloat16")  # auto: bfloat16 where the CPU has it
STRATEGIES = ("auto", "one", "mirrored", "multi-worker")  # `dae train --strategy`


@dataclasses.dataclass
class Config:
    """Everything that decides what `dae train` builds and how it trains it."""

    # Data
    dataset: str = "mnist"
    data: str | None = None
    channels: int | None = None
    val_split: float = 0.1
    limit: int | None = None
    patch_size: int | None = None
    seed: int = 0
    # Validation images from another folder (any sizes), instead of a split of `data`
    val_data: str | None = None
    # Model: `dense` is the reference example's encoder/decoder design (a Dense latent
    # vector); `conv` is fully convolutional (the latent is a feature map), any size.
    architecture: str = "dense"
    latent_dim: int = 16
    layer_filters: list = dataclasses.field(default_factory=lambda: [32, 64])
    kernel_size: int = 3
    batch_norm: bool = False
    # The example's alternatives: MaxPooling2D for strided Conv2D, UpSampling2D for
    # strided Conv2DTranspose ("faster but not as good"; measured in BENCHMARKS.md).
    downsampling: str = "strided"
    upsampling: str = "transpose"
    # conv only: convolutions per level; every scale's features in the latent (as a
    # U-Net passes its skips); the decoder predicts the noise and subtracts it.
    blocks_per_level: int = 2
    skips: bool = True
    residual: bool = True
    # Training
    loss: str = "mse"
    epochs: int = 30
    batch_size: int = 128
    # Chosen by measurement (BENCHMARKS.md): a cosine schedule from 0.003, where the
    # example keeps Adam's default 0.001 throughout. configs/mnist.toml holds the keys
    # the issue fixes to the example's values, so it leaves these three out.
    learning_rate: float = 0.003
    lr_schedule: str = "cosine"
    precision: str = "auto"
    jit_compile: bool = False
    # With several replicas the global batch is batch_size x replicas; this scales the
    # learning rate by the replica count to match (the linear scaling rule).
    scale_learning_rate: bool = False
    # Noise added to clean images to make the training inputs
    noise: str = "gaussian"
    noise_mean: float = 0.5
    noise_std: float = 0.5
    # Blind training: each image gets its own std drawn uniformly from [low, high]
    noise_std_range: list | None = None
    noise_amount: float = 0.1
    noise_peak: float = 30.0

    @classmethod
    def keys(cls) -> list[str]:
        return [field.name for field in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> "Config":
        """Builds a config from `values`, rejecting unknown keys and wrong types."""
        unknown = sorted(set(values) - set(cls.keys()))
        if unknown:
            raise UsageError(
                f"{source}: unknown key(s) {', '.join(unknown)}; "
                f"valid keys: {', '.join(cls.keys())}"
            )
        config = cls()
        for key, value in values.items():
            setattr(config, key, _check_type(key, value, source))
        return config

    @classmethod
    def from_toml(cls, path: str | Path) -> "Config":
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
    def resolve(
        cls, config_file: str | Path | None, overrides: dict[str, Any]
    ) -> "Config":
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
        problems = []

        def require(ok: bool, message: str) -> None:
            if not ok:
                problems.append(message)

        require(self.dataset in DATASETS, f"dataset must be one of {', '.join(DATASETS)}")
        require(self.channels in (None, 1, 3), "channels must be 1 or 3")
        require(0 < self.val_split < 1, "val_split must be between 0 and 1 (exclusive)")
        require(self.limit is None or self.limit > 0, "limit must be positive")
        require(
            self.patch_size is None or self.patch_size > 0, "patch_size must be positive"
        )
        require(self.architecture in ARCHITECTURES, f"architecture must be one of {', '.join(ARCHITECTURES)}")
        require(self.downsampling in DOWNSAMPLINGS, f"downsampling must be one of {', '.join(DOWNSAMPLINGS)}")
        require(self.upsampling in UPSAMPLINGS, f"upsampling must be one of {', '.join(UPSAMPLINGS)}")
        require(self.loss in LOSSES, f"loss must be one of {', '.join(LOSSES)}")
        require(self.blocks_per_level > 0, "blocks_per_level must be positive")
        # NumPy and Keras take seeds from 0 to 2**32 - 1.
        require(0 <= self.seed < 2**32, "seed must be between 0 and 4294967295")
        require(self.latent_dim > 0, "latent_dim must be positive")
        require(len(self.layer_filters) > 0, "layer_filters must not be empty")
        require(
            all(filters > 0 for filters in self.layer_filters),
            "layer_filters must all be positive",
        )
        require(self.kernel_size > 0, "kernel_size must be positive")
        require(self.epochs > 0, "epochs must be positive")
        require(self.batch_size > 0, "batch_size must be positive")
        require(
            math.isfinite(self.learning_rate) and self.learning_rate > 0,
            "learning_rate must be positive",
        )
        require(
            self.lr_schedule in LR_SCHEDULES,
            f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}",
        )
        require(
            self.precision in PRECISIONS,
            f"precision must be one of {', '.join(PRECISIONS)}",
        )
        require(self.noise in NOISE_TYPES, f"noise must be one of {', '.join(NOISE_TYPES)}")
        require(
            math.isfinite(self.noise_mean) and math.isfinite(self.noise_std),
            "noise_mean and noise_std must be finite",
        )
        require(self.noise_std >= 0, "noise_std must not be negative")
        if self.noise_std_range is not None:
            low, high = (self.noise_std_range + [math.nan, math.nan])[:2]
            require(
                len(self.noise_std_range) == 2 and 0 <= low <= high and math.isfinite(high),
                f"noise_std_range must be two numbers low,high with 0 <= low <= high, got {self.noise_std_range}",
            )
        require(0 <= self.noise_amount <= 1, "noise_amount must be between 0 and 1")
        require(self.noise_peak > 0, "noise_peak must be positive")
        if self.patch_size is not None:
            check_divisible((self.patch_size, self.patch_size), self.size_multiple, problems)
        if problems:
            raise UsageError("invalid config: " + "; ".join(problems))

    @property
    def size_multiple(self) -> int:
        """What height and width must be divisible by: one halving per downsampling."""
        halvings = len(self.layer_filters) - (self.architecture == "conv")
        return 2 ** max(0, halvings)


def check_divisible(size: tuple[int, int], factor: int, problems=None) -> None:
    """Height and width must halve cleanly once per downsampling."""
    if size[0] % factor or size[1] % factor:
        message = (
            f"image size {size[0]}x{size[1]} is not divisible by {factor} "
            f"(one halving per downsampling of layer_filters)"
        )
        if problems is None:
            raise UsageError(message)
        problems.append(message)


# key -> (accepted python types, description for errors, may be None)
_TYPES: dict[str, tuple[tuple[type, ...], str, bool]] = {
    "dataset": ((str,), "a string", False),
    "data": ((str,), "a path string", True),
    "channels": ((int,), "an integer", True),
    "val_split": ((int, float), "a number", False),
    "limit": ((int,), "an integer", True),
    "patch_size": ((int,), "an integer", True),
    "seed": ((int,), "an integer", False),
    "val_data": ((str,), "a path string", True),
    "architecture": ((str,), "a string", False),
    "downsampling": ((str,), "a string", False),
    "upsampling": ((str,), "a string", False),
    "blocks_per_level": ((int,), "an integer", False),
    "skips": ((bool,), "true or false", False),
    "residual": ((bool,), "true or false", False),
    "loss": ((str,), "a string", False),
    "noise_std_range": ((list,), "a list of two numbers", True),
    "latent_dim": ((int,), "an integer", False),
    "layer_filters": ((list,), "a list of integers", False),
    "kernel_size": ((int,), "an integer", False),
    "batch_norm": ((bool,), "true or false", False),
    "epochs": ((int,), "an integer", False),
    "batch_size": ((int,), "an integer", False),
    "learning_rate": ((int, float), "a number", False),
    "lr_schedule": ((str,), "a string", False),
    "precision": ((str,), "a string", False),
    "jit_compile": ((bool,), "true or false", False),
    "scale_learning_rate": ((bool,), "true or false", False),
    "noise": ((str,), "a string", False),
    "noise_mean": ((int, float), "a number", False),
    "noise_std": ((int, float), "a number", False),
    "noise_amount": ((int, float), "a number", False),
    "noise_peak": ((int, float), "a number", False),
}


def _check_type(key: str, value: Any, source: str) -> Any:
    types, description, nullable = _TYPES[key]
    if value is None and nullable:
        return None
    # bool is an int subclass in Python; `epochs = true` is still a mistake.
    wrong_bool = isinstance(value, bool) and bool not in types
    if wrong_bool or not isinstance(value, types):
        raise UsageError(f"{source}: {key} must be {description}, got {value!r}")
    if key == "layer_filters":
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise UsageError(f"{source}: {key} must be {description}, got {value!r}")
        return list(value)
    if key == "noise_std_range":
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            raise UsageError(f"{source}: {key} must be {description}, got {value!r}")
        return [float(v) for v in value]
    if float in types:
        return float(value)
    return value
