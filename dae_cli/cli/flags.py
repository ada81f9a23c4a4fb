"""The flags several commands share, declared once, and what they become.

Declared as plain Typer options so that `--help` imports neither NumPy nor Pillow;
`files(...)` and `apply_options(...)` turn the parsed values into what the jobs take.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dae_cli.cli.completion import choices, complete_model
from dae_cli.cli.options import choice_enum
from dae_cli.config import STRATEGIES

EXIT_CODES_HELP = (
    "Exit codes: 0 success; 1 failure; 2 usage error (bad flags, config or arguments); "
    "3 partial failure (some inputs failed, the others were processed); "
    "130 interrupted (Ctrl-C or SIGTERM); 141 stdout closed by its reader (say | head)."
)
DEFAULT_MODEL = "dae-model"
MODEL_HELP = (
    "Model directory or built-in model (photo, photo-gaussian, mnist; photo-real and photo-gray are photo);"
    " default: $DAE_MODEL, else ./dae-model."
)
OUTPUT_PANEL = "Output files"
FIT_PANEL = "Fitting images to the model"

MODEL = typer.Option(None, "--model", "-m", help=MODEL_HELP, autocompletion=complete_model)
MODEL_ARGUMENT = typer.Argument(None, help=MODEL_HELP, autocompletion=complete_model)
INPUTS = typer.Argument(..., help="Image files, directories (recursive) or globs.")
OUT_IMAGES = typer.Option(
    None,
    "--out",
    "-o",
    help="Output directory, or a file (.png, .jpg, .tif, .webp, .bmp) for one input (default: beside each input).",
)
OVERWRITE = typer.Option(False, "--overwrite", help="Replace existing output files.")
FAIL_FAST = typer.Option(False, "--fail-fast", help="Stop at the first bad input.")
NO_VERIFY = typer.Option(
    False, "--no-verify", help="Load the model even if its files differ from the manifest's sha256."
)
OVERLAP = typer.Option(
    None,
    "--overlap",
    rich_help_panel=FIT_PANEL,
    help="Overlap of windows in pixels (default: half a tile for dense models, 64 for conv models).",
)
BATCH_SIZE = typer.Option(
    None,
    "--batch-size",
    min=1,
    rich_help_panel=FIT_PANEL,
    help="Images, windows or latents per model call (default: 256 for dense models, 1 for conv models, within --max-megapixels).",
)
RESIZE = typer.Option(
    False,
    "--resize",
    rich_help_panel=FIT_PANEL,
    help="dense models: resize other-sized images to the model's size (denoise: and back).",
)
SIGMA = typer.Option(
    None,
    "--sigma",
    metavar="auto|LEVEL",
    help="Models that take the noise level: auto (default; estimated per image) or the level, "
    "15 on the 0-255 scale, 15/255 or 0.06. Lower keeps more texture.",
)
STRENGTH = typer.Option(
    None,
    "--strength",
    metavar="S",
    help="Models that denoise by a noise level: times that level (default 1). 0 gives the image back, "
    "below 1 keeps more texture, above 1 smooths more.",
)
ImageFormat = choice_enum("ImageFormat", ("png", "jpeg", "tiff", "webp", "bmp"))
BitDepth = choice_enum("BitDepth", ("8", "16"))
InferencePrecision = choice_enum("InferencePrecision", ("float32", "bfloat16"))
PRECISION = typer.Option(
    None,
    "--precision",
    help="float32 (default), or bfloat16 where the CPU computes it itself (AVX512-BF16 or AMX); "
    "refused elsewhere, where emulated bfloat16 is slower than float32.",
)
FORMAT = typer.Option(
    None,
    "--format",
    rich_help_panel=OUTPUT_PANEL,
    help="Write every output in this format (default: each input's own; another one's outputs are PNG).",
)
QUALITY = typer.Option(
    95,
    "--quality",
    min=1,
    max=100,
    rich_help_panel=OUTPUT_PANEL,
    help="JPEG and WebP quality; the default is visually lossless at a fraction of PNG's size, so no artefacts show.",
)
BIT_DEPTH = typer.Option(
    None,
    "--bit-depth",
    rich_help_panel=OUTPUT_PANEL,
    help="Bits per channel of the outputs (default: the input's; 16 for PNG and TIFF only).",
)
STRIP_METADATA = typer.Option(
    False,
    "--strip-metadata",
    rich_help_panel=OUTPUT_PANEL,
    help="Do not copy the input's ICC colour profile and EXIF to its output.",
)


# `dae train`'s own.
CONFIG = typer.Option(
    None,
    "--config",
    "-c",
    metavar="FILE",
    help="TOML config file (default: the reference MNIST config).",
    rich_help_panel="Data",
)
OUT_MODEL = typer.Option(
    None,
    "--out",
    "-o",
    metavar="DIR",
    help="Model directory to write (default: $DAE_MODEL, else ./dae-model).",
    rich_help_panel="Output",
)
RESUME = typer.Option(
    False, "--resume", help="Continue an interrupted run, or train a finished model further.", rich_help_panel="Output"
)
OVERWRITE_MODEL = typer.Option(
    False,
    "--overwrite",
    help="Replace an existing model directory (once the new one is complete).",
    rich_help_panel="Output",
)
STRATEGY = typer.Option(
    "auto",
    "--strategy",
    help="tf.distribute strategy: auto (mirrored on several GPUs, else one), one, mirrored, multi-worker "
    "(from TF_CONFIG). --batch-size is per replica.",
    autocompletion=choices(STRATEGIES),
    rich_help_panel="Training",
)
TENSORBOARD = typer.Option(
    None,
    "--tensorboard",
    metavar="DIR",
    help="Write TensorBoard logs here: loss, val_loss, PSNR, SSIM and sample images per epoch "
    "(needs dae-cli[tensorboard]).",
    file_okay=False,
    rich_help_panel="Output",
)
Strategy = choice_enum("Strategy", STRATEGIES)


# `dae ui`'s own.
UI_MODELS = typer.Option(
    [],
    "--model",
    "-m",
    help="Offer this model too (a directory or built-in name); repeatable, the first is the page's default.",
    autocompletion=complete_model,
)
HOST = typer.Option("127.0.0.1", "--host", help="Address to listen on; the default lets no other machine in.")
PORT = typer.Option(7860, "--port", min=1, max=65535, help="Port to listen on.")


def model_dir(model: Optional[Path]) -> Path:
    """`-m`: a directory or a built-in model's name; default $DAE_MODEL, else ./dae-model."""
    import os

    from dae_cli.models.builtin_models import resolve_model

    return resolve_model(model or Path(os.environ.get("DAE_MODEL") or DEFAULT_MODEL))


def files(
    overwrite=False, fail_fast=False, no_verify=False, format=None, bit_depth=None, quality=95, strip_metadata=False
):
    """`jobs.Files` of the parsed flags."""
    from dae_cli.apply.jobs import Files
    from dae_cli.io.image_io import OutputOptions

    output = OutputOptions(
        format=format.value.upper() if format is not None else None,
        bit_depth=int(bit_depth.value) if bit_depth is not None else None,
        quality=quality,
        strip_metadata=strip_metadata,
    )
    return Files(overwrite=overwrite, fail_fast=fail_fast, verify=not no_verify, output=output)


def apply_options(sigma: Optional[str] = None, strength: Optional[str] = None, **given):
    """`ApplyOptions` of the parsed flags; `--sigma` parsed to `auto` or a std on [0, 1],
    `--strength` to a number of at least 0."""
    from dae_cli.models.denoiser import ApplyOptions
    from dae_cli.noise_level import parse_sigma, parse_strength

    if given.get("precision") is not None:
        given["precision"] = given["precision"].value
    return ApplyOptions(
        sigma=None if sigma is None else parse_sigma(sigma),
        strength=None if strength is None else parse_strength(strength),
        **given,
    )
