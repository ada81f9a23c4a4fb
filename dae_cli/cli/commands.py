"""The `dae` commands: each parses its flags, calls one function, prints through `Output`.

TensorFlow is imported only inside the functions the commands call, so `dae --help`
and every `--help` stay fast. The process around them (exit codes, signals, errors) is
`entry`'s; the flags several commands share are `flags`'; the tables are `reports`'.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from dae_cli import __version__
from dae_cli.cli import flags, reports
from dae_cli.cli.completion import choices
from dae_cli.cli.flags import EXIT_CODES_HELP, FIT_PANEL
from dae_cli.cli.options import with_settings
from dae_cli.cli.output import Output
from dae_cli.models.export import FORMATS

app = typer.Typer(
    name="dae",
    help="Train convolutional denoising autoencoders and use them: train, encode, decode, denoise.",
    epilog=EXIT_CODES_HELP,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class State:
    """What the global options set for the command that runs."""

    output = Output()
    debug = False


def _version(value: bool) -> None:
    if value:
        print(f"dae {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    json_output: bool = typer.Option(False, "--json", help="Results as JSON lines on stdout (schema_version 1)."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress, information or warnings on stderr."),
    verbose: bool = typer.Option(
        False, "-v", "--verbose", help="Details per input on stderr (the noise level each image was given)."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks (also DAE_DEBUG=1)."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    from dae_cli.cli.entry import enable_debug

    State.output = Output(json_mode=json_output, quiet=quiet, verbose=verbose)
    if debug:
        enable_debug()


@app.command(epilog=EXIT_CODES_HELP)
@with_settings("train")
def train(
    config: Optional[Path] = flags.CONFIG,
    out: Optional[Path] = flags.OUT_MODEL,
    resume: bool = flags.RESUME,
    overwrite: bool = flags.OVERWRITE_MODEL,
    strategy: flags.Strategy = flags.STRATEGY,
    tensorboard: Optional[Path] = flags.TENSORBOARD,
    settings: dict = None,
) -> None:
    """Train a denoising autoencoder and save it as a model directory."""
    from dae_cli.api import run_training

    result = run_training(
        config,
        out=flags.model_dir(out),
        resume=resume,
        overwrite=overwrite,
        strategy=strategy.value,
        tensorboard=tensorboard,
        reporter=State.output.training_reporter(),
        **settings,
    )
    State.output.table("dae train", *reports.training(result))


@app.command(epilog=EXIT_CODES_HELP)
def denoise(
    inputs: List[str] = flags.INPUTS,
    model: Optional[Path] = flags.MODEL,
    out: Optional[Path] = flags.OUT_IMAGES,
    overwrite: bool = flags.OVERWRITE,
    format: Optional[flags.ImageFormat] = flags.FORMAT,
    quality: int = flags.QUALITY,
    bit_depth: Optional[flags.BitDepth] = flags.BIT_DEPTH,
    strip_metadata: bool = flags.STRIP_METADATA,
    resize: bool = flags.RESIZE,
    tile: Optional[bool] = typer.Option(
        None,
        "--tile/--no-tile",
        rich_help_panel=FIT_PANEL,
        help="dense models: other-sized images by overlapping tiles (default); --no-tile makes them an error.",
    ),
    overlap: Optional[int] = flags.OVERLAP,
    batch_size: Optional[int] = flags.BATCH_SIZE,
    max_megapixels: Optional[float] = typer.Option(
        None,
        "--max-megapixels",
        min=0.01,
        rich_help_panel=FIT_PANEL,
        help="conv models: images up to this size (default 1; 0.5 for a model that estimates its own noise) go through"
        " whole, larger ones by overlapping windows of it.",
    ),
    sigma: Optional[str] = flags.SIGMA,
    strength: Optional[str] = flags.STRENGTH,
    tta: bool = typer.Option(
        False, "--tta", rich_help_panel=FIT_PANEL, help="conv models: average the 8 flips and rotations (8x the time)."
    ),
    precision: Optional[flags.InferencePrecision] = flags.PRECISION,
    fail_fast: bool = flags.FAIL_FAST,
    no_verify: bool = flags.NO_VERIFY,
) -> None:
    """Denoise images with the encoder and decoder SavedModels; print one output path per line."""
    from dae_cli.apply import jobs

    fit = dict(resize=resize, tile=tile, overlap=overlap, batch_size=batch_size, max_megapixels=max_megapixels, tta=tta)
    options = flags.apply_options(sigma, strength, precision=precision, **fit)
    files = flags.files(overwrite, fail_fast, no_verify, format, bit_depth, quality, strip_metadata)
    jobs.denoise(inputs, flags.model_dir(model), out, options, files, State.output)


@app.command(epilog=EXIT_CODES_HELP)
def encode(
    inputs: List[str] = flags.INPUTS,
    model: Optional[Path] = flags.MODEL,
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", help="Write latents to .npy, .npz, .csv or .json (default: JSON lines on stdout)."
    ),
    overwrite: bool = flags.OVERWRITE,
    resize: bool = flags.RESIZE,
    tiles: bool = typer.Option(
        False,
        "--tiles",
        rich_help_panel=FIT_PANEL,
        help="dense models: one latent per overlapping tile of other-sized images (source <path>#<y>,<x>).",
    ),
    overlap: Optional[int] = flags.OVERLAP,
    batch_size: Optional[int] = flags.BATCH_SIZE,
    sigma: Optional[str] = flags.SIGMA,
    fail_fast: bool = flags.FAIL_FAST,
    no_verify: bool = flags.NO_VERIFY,
) -> None:
    """Encode images to latents with the encoder SavedModel alone: vectors, or feature maps (conv) to .npz."""
    from dae_cli.apply import jobs

    options = flags.apply_options(sigma, resize=resize, tiles=tiles, overlap=overlap, batch_size=batch_size)
    jobs.encode(
        inputs, flags.model_dir(model), out, options, flags.files(overwrite, fail_fast, no_verify), State.output
    )


@app.command(epilog=EXIT_CODES_HELP)
def decode(
    latents_file: str = typer.Argument(
        ..., metavar="LATENTS", help="A file written by 'dae encode', or - for JSON lines on stdin."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Directory for the images."),
    model: Optional[Path] = flags.MODEL,
    overwrite: bool = flags.OVERWRITE,
    format: Optional[flags.ImageFormat] = typer.Option(
        None,
        "--format",
        rich_help_panel=flags.OUTPUT_PANEL,
        help="Write every image in this format (default: its source's, as named in the latents; else PNG).",
    ),
    quality: int = flags.QUALITY,
    bit_depth: Optional[flags.BitDepth] = typer.Option(
        None,
        "--bit-depth",
        rich_help_panel=flags.OUTPUT_PANEL,
        help="Bits per channel (default: the source's, as encode recorded it; else 8).",
    ),
    batch_size: Optional[int] = flags.BATCH_SIZE,
    fail_fast: bool = flags.FAIL_FAST,
    no_verify: bool = flags.NO_VERIFY,
) -> None:
    """Decode latents (vectors, or a conv model's feature maps) to images with the decoder SavedModel alone."""
    from dae_cli.apply import jobs

    files = flags.files(overwrite, fail_fast, no_verify, format=format, bit_depth=bit_depth, quality=quality)
    jobs.decode(
        latents_file, flags.model_dir(model), out, flags.apply_options(batch_size=batch_size), files, State.output
    )


@app.command(epilog=EXIT_CODES_HELP)
def info(model: Optional[Path] = flags.MODEL_ARGUMENT) -> None:
    """Show a model directory's manifest."""
    from dae_cli.models.denoiser import open_model

    State.output.table("dae info", *reports.model_info(open_model(flags.model_dir(model))))


@app.command(epilog=EXIT_CODES_HELP)
@with_settings("evaluate", default_help="the model's")
def evaluate(
    model: Optional[Path] = flags.MODEL,
    batch_size: Optional[int] = flags.BATCH_SIZE,
    sigma: Optional[str] = flags.SIGMA,
    strength: Optional[str] = flags.STRENGTH,
    no_verify: bool = flags.NO_VERIFY,
    settings: dict = None,
) -> None:
    """Score a model on held-out images: PSNR and SSIM before and after denoising, and images/s."""
    from dae_cli.apply import jobs

    directory = flags.model_dir(model)
    options = flags.apply_options(sigma, strength, batch_size=batch_size)
    report = jobs.evaluate(directory, settings, options, flags.files(no_verify=no_verify), State.output)
    State.output.table("dae evaluate", *reports.evaluation(directory, report))


@app.command("noise", epilog=EXIT_CODES_HELP)
@with_settings("noise")
def noise_command(
    inputs: List[str] = typer.Argument(..., help="Clean image files, directories (recursive) or globs."),
    out: Optional[Path] = flags.OUT_IMAGES,
    overwrite: bool = flags.OVERWRITE,
    format: Optional[flags.ImageFormat] = flags.FORMAT,
    quality: int = flags.QUALITY,
    bit_depth: Optional[flags.BitDepth] = flags.BIT_DEPTH,
    strip_metadata: bool = flags.STRIP_METADATA,
    fail_fast: bool = flags.FAIL_FAST,
    settings: dict = None,
) -> None:
    """Add noise to clean images (seeded), to make demos and test sets; writes <stem>.noisy.<ext>."""
    from dae_cli.apply import jobs

    files = flags.files(
        overwrite, fail_fast, format=format, bit_depth=bit_depth, quality=quality, strip_metadata=strip_metadata
    )
    jobs.add_noise(inputs, out, settings, files, State.output)


@app.command("export", epilog=EXIT_CODES_HELP)
def export_command(
    model: Optional[Path] = flags.MODEL_ARGUMENT,
    out: Path = typer.Option(..., "--out", "-o", help="Directory to write: the serving SavedModel, or the ONNX files."),
    format: str = typer.Option(
        "saved-model",
        "--format",
        help="saved-model: one SavedModel with encode, decode and denoise; onnx: encoder.onnx, decoder.onnx and denoiser.onnx (needs dae-cli[onnx]).",
        autocompletion=choices(FORMATS),
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing export."),
    no_verify: bool = typer.Option(
        False, "--no-verify", help="Export even if autoencoder.keras differs from the manifest's sha256."
    ),
) -> None:
    """Export the model for serving: one SavedModel for TensorFlow Serving, or ONNX files for ONNX Runtime."""
    from dae_cli.models.export import export_model

    record = export_model(flags.model_dir(model), out, format, verify=not no_verify, overwrite=overwrite)
    State.output.record(record, record["output"])


@app.command("ui", epilog=EXIT_CODES_HELP)
def ui_command(model: List[str] = flags.UI_MODELS, host: str = flags.HOST, port: int = flags.PORT) -> None:
    """Serve a local web page to denoise images and compare, with an API for gradio_client (needs dae-cli[ui])."""
    from dae_cli.ui import serve

    serve(model, host, port, State.output)
