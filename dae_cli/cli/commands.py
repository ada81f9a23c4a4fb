"""The `dae` command line: parse arguments, call one function, print its results.

TensorFlow is imported only inside the commands that need it, so `dae --help` and
every `--help` stay fast.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import sys
import threading
import traceback
import warnings
from pathlib import Path
from typing import List, Optional

import typer

from dae_cli import __version__
from dae_cli.cli.completion import choices, complete_model
from dae_cli.cli.options import choice_enum, with_settings
from dae_cli.cli.output import Output
from dae_cli.config import STRATEGIES
from dae_cli.errors import DaeError, ExitCode, UsageError
from dae_cli.models.export import FORMATS

EXIT_CODES_HELP = (
    "Exit codes: 0 success; 1 failure; 2 usage error (bad flags, config or arguments); "
    "3 partial failure (some inputs failed, the others were processed); "
    "130 interrupted (Ctrl-C or SIGTERM); 141 stdout closed by its reader (say | head)."
)
DEFAULT_MODEL = "dae-model"
MODEL_HELP = (
    "Model directory or built-in model (photo, photo-real, photo-gray, mnist); default: $DAE_MODEL, else ./dae-model."
)

# Options that several commands share, declared once.
MODEL_OPTION = typer.Option(None, "--model", "-m", help=MODEL_HELP, autocompletion=complete_model)
OVERWRITE_OPTION = typer.Option(False, "--overwrite", help="Replace existing output files.")
FAIL_FAST_OPTION = typer.Option(False, "--fail-fast", help="Stop at the first bad input.")
NO_VERIFY_OPTION = typer.Option(
    False, "--no-verify", help="Load the model even if its files differ from the manifest's sha256."
)
OVERLAP_OPTION = typer.Option(None, "--overlap", help="Tile overlap in pixels (default: half a tile).")
BATCH_SIZE_OPTION = typer.Option(256, "--batch-size", min=1, help="Images, tiles or vectors per model call.")
INPUTS_ARGUMENT = typer.Argument(..., help="Image files, directories (recursive) or globs.")
SIGMA_OPTION = typer.Option(
    None,
    "--sigma",
    metavar="auto|LEVEL",
    help="Models that take the noise level: auto (default; estimated per image) or the level, "
    "15 on the 0-255 scale, 15/255 or 0.06. Lower keeps more texture.",
)
Strategy = choice_enum("Strategy", STRATEGIES)
# How images are written (`image_io.OutputOptions`): kept here as plain values so that
# --help does not import numpy and Pillow.
ImageFormat = choice_enum("ImageFormat", ("png", "jpeg", "tiff", "webp", "bmp"))
BitDepth = choice_enum("BitDepth", ("8", "16"))
OUTPUT_PANEL = "Output files"
FORMAT_OPTION = typer.Option(
    None,
    "--format",
    rich_help_panel=OUTPUT_PANEL,
    help="Write every output in this format (default: each input's own; another one's outputs are PNG).",
)
QUALITY_OPTION = typer.Option(
    95,
    "--quality",
    min=1,
    max=100,
    rich_help_panel=OUTPUT_PANEL,
    help="JPEG and WebP quality; the default is visually lossless at a fraction of PNG's size, so no artefacts show.",
)
BIT_DEPTH_OPTION = typer.Option(
    None,
    "--bit-depth",
    rich_help_panel=OUTPUT_PANEL,
    help="Bits per channel of the outputs (default: the input's; 16 for PNG and TIFF only, gray images only).",
)
STRIP_METADATA_OPTION = typer.Option(
    False,
    "--strip-metadata",
    rich_help_panel=OUTPUT_PANEL,
    help="Do not copy the input's ICC colour profile and EXIF to its output.",
)

app = typer.Typer(
    name="dae",
    help="Train convolutional denoising autoencoders and use them: train, encode, decode, denoise.",
    epilog=EXIT_CODES_HELP,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class State:
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
    State.output = Output(json_mode=json_output, quiet=quiet, verbose=verbose)
    if debug:
        _enable_debug()


def _model_dir(model: Optional[Path]) -> Path:
    from dae_cli.models.builtin_models import resolve_model

    return resolve_model(model or Path(os.environ.get("DAE_MODEL") or DEFAULT_MODEL))


@app.command(epilog=EXIT_CODES_HELP)
@with_settings("train")
def train(
    config: Optional[Path] = typer.Option(
        None,
        "--config",
        "-c",
        metavar="FILE",
        help="TOML config file (default: the reference MNIST config).",
        rich_help_panel="Data",
    ),
    out: Optional[Path] = typer.Option(
        None,
        "--out",
        "-o",
        metavar="DIR",
        help="Model directory to write (default: $DAE_MODEL, else ./dae-model).",
        rich_help_panel="Output",
    ),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Continue an interrupted run, or train a finished model further.",
        rich_help_panel="Output",
    ),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Replace an existing model directory (once the new one is complete).",
        rich_help_panel="Output",
    ),
    strategy: Strategy = typer.Option(
        "auto",
        "--strategy",
        help="tf.distribute strategy: auto (mirrored on several GPUs, else one), one, mirrored, multi-worker (from TF_CONFIG). --batch-size is per replica.",
        autocompletion=choices(STRATEGIES),
        rich_help_panel="Training",
    ),
    tensorboard: Optional[Path] = typer.Option(
        None,
        "--tensorboard",
        metavar="DIR",
        help="Write TensorBoard logs here: loss, val_loss, PSNR, SSIM and sample images per epoch (needs dae-cli[tensorboard]).",
        file_okay=False,
        rich_help_panel="Output",
    ),
    settings: dict = None,
) -> None:
    """Train a denoising autoencoder and save it as a model directory."""
    from dae_cli.training.trainer import train as run_training

    if tensorboard is not None:
        from dae_cli.extras import require

        require("tensorboard", extra="tensorboard", feature="--tensorboard")

    output = State.output
    result = run_training(
        str(config) if config else None,
        settings,
        _model_dir(out),
        resume=resume,
        overwrite=overwrite,
        strategy=strategy.value,
        reporter=output.training_reporter(),
        tensorboard=tensorboard,
    )
    manifest = result.manifest
    metrics = manifest["metrics"]
    output.table(
        "dae train",
        [
            ("model", str(result.model_dir)),
            ("epochs", str(manifest["epochs_done"])),
            ("training time", f"{manifest['training_seconds']:.1f}s"),
            ("val_loss", f"{metrics['val_loss']:.5f}"),
            *_quality_rows(metrics),
        ],
        {
            "model": str(result.model_dir),
            "epochs_done": manifest["epochs_done"],
            "training_seconds": manifest["training_seconds"],
            "metrics": metrics,
        },
    )


def _quality_rows(metrics: dict) -> list:
    from dae_cli.cli.output import format_summary

    if "psnr_denoised" not in metrics:
        return [("PSNR, SSIM", "none: trained without clean images (self-supervised)")]
    return [
        (
            "PSNR noisy -> denoised",
            f"{format_summary(metrics['psnr_noisy'], 2)} -> {format_summary(metrics['psnr_denoised'], 2, ' dB')}",
        ),
        (
            "SSIM noisy -> denoised",
            f"{format_summary(metrics['ssim_noisy'], 3)} -> {format_summary(metrics['ssim_denoised'], 3)}",
        ),
    ]


def _report_outcome(outcome, text: Optional[str]) -> None:
    output = State.output
    if not outcome.ok:
        output.error(outcome.error)
    if outcome.ok or output.json_mode:
        output.record(outcome.record(), text if outcome.ok else None)


def _outcome_log(fail_fast: bool, on_outcome=None, progress=None):
    from dae_cli.apply.outcomes import OutcomeLog

    report = on_outcome or (lambda o: _report_outcome(o, o.output))
    warned: set = set()

    def tell(outcome) -> None:
        for note in outcome.notes:  # what an output could not keep: once per run
            if note not in warned:
                warned.add(note)
                State.output.warn(note)
        report(outcome)

    return OutcomeLog(tell, fail_fast, progress)


def _output_options(format, bit_depth, quality: int, strip_metadata: bool = False):
    """`image_io.OutputOptions` of the parsed `--format`, `--bit-depth`, `--quality`, `--strip-metadata`."""
    from dae_cli.io.image_io import OutputOptions

    return OutputOptions(
        format=format.value.upper() if format is not None else None,
        bit_depth=int(bit_depth.value) if bit_depth is not None else None,
        quality=quality,
        strip_metadata=strip_metadata,
    )


def _batch_exit(log) -> None:
    code = log.exit_code()
    if code != ExitCode.OK:
        failed = sum(not outcome.ok for outcome in log.outcomes)
        raise DaeError(f"{failed} of {len(log.outcomes)} input(s) failed", code)


@app.command(epilog=EXIT_CODES_HELP)
def denoise(
    inputs: List[str] = INPUTS_ARGUMENT,
    model: Optional[Path] = MODEL_OPTION,
    out: Optional[Path] = typer.Option(
        None,
        "--out",
        "-o",
        help="Output directory, or a file (.png, .jpg, .tif, .webp, .bmp) for one input (default: beside each input).",
    ),
    overwrite: bool = OVERWRITE_OPTION,
    format: Optional[ImageFormat] = FORMAT_OPTION,
    quality: int = QUALITY_OPTION,
    bit_depth: Optional[BitDepth] = BIT_DEPTH_OPTION,
    strip_metadata: bool = STRIP_METADATA_OPTION,
    resize: bool = typer.Option(False, "--resize", help="Resize other-sized images to the model's size and back."),
    tile: bool = typer.Option(
        True,
        "--tile/--no-tile",
        help="Denoise other-sized images by overlapping tiles (default); --no-tile makes them an error.",
    ),
    overlap: Optional[int] = OVERLAP_OPTION,
    batch_size: int = BATCH_SIZE_OPTION,
    max_megapixels: float = typer.Option(
        1.0,
        "--max-megapixels",
        min=0.01,
        help="conv models: images up to this size go through whole, larger ones by overlapping windows of it.",
    ),
    sigma: Optional[str] = SIGMA_OPTION,
    tta: bool = typer.Option(False, "--tta", help="conv models: average the 8 flips and rotations (8x the time)."),
    fail_fast: bool = FAIL_FAST_OPTION,
    no_verify: bool = NO_VERIFY_OPTION,
) -> None:
    """Denoise images with the encoder and decoder SavedModels; print one output path per line."""
    from dae_cli.apply import inference, outcomes
    from dae_cli.io import image_io
    from dae_cli.models import artifacts

    level = _parse_sigma(sigma)
    options = _output_options(format, bit_depth, quality, strip_metadata)
    paths = image_io.expand_inputs(inputs, note=State.output.info)
    outputs = outcomes.output_paths(paths, out, "denoised", options.format)
    image_io.check_output_options(outputs, options)
    loaded = artifacts.load_model(_model_dir(model), verify=not no_verify)
    _check_sigma(level, loaded)
    size_mode = "resize" if resize else "tile" if tile else "error"
    if loaded.architecture != "conv":
        _check_overlap(overlap, loaded)
        if tta:
            raise UsageError("--tta is for fully convolutional models (--arch conv); this model is dense")
    with State.output.progress("denoise", len(paths)) as progress:
        log = _outcome_log(fail_fast, progress=progress)
        if loaded.architecture == "conv":
            from dae_cli.apply import whole_images

            whole_images.denoise_files(
                loaded,
                paths,
                outputs,
                overwrite=overwrite,
                max_pixels=int(max_megapixels * 1e6),
                overlap=whole_images.DEFAULT_OVERLAP if overlap is None else overlap,
                sigma=level,
                tta=tta,
                log=log,
                warn=State.output.warn,
                detail=State.output.detail,
                options=options,
            )
        else:
            inference.denoise_files(
                loaded,
                paths,
                outputs,
                size_mode=size_mode,
                overlap=overlap,
                overwrite=overwrite,
                batch_size=batch_size,
                log=log,
                warn=State.output.warn,
                options=options,
            )
    _batch_exit(log)


@app.command(epilog=EXIT_CODES_HELP)
def encode(
    inputs: List[str] = INPUTS_ARGUMENT,
    model: Optional[Path] = MODEL_OPTION,
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", help="Write latents to .npy, .npz, .csv or .json (default: JSON lines on stdout)."
    ),
    overwrite: bool = OVERWRITE_OPTION,
    resize: bool = typer.Option(False, "--resize", help="Resize other-sized images to the model's size."),
    tiles: bool = typer.Option(
        False, "--tiles", help="One latent per overlapping tile of other-sized images (source <path>#<y>,<x>)."
    ),
    overlap: Optional[int] = OVERLAP_OPTION,
    batch_size: int = BATCH_SIZE_OPTION,
    sigma: Optional[str] = SIGMA_OPTION,
    fail_fast: bool = FAIL_FAST_OPTION,
    no_verify: bool = NO_VERIFY_OPTION,
) -> None:
    """Encode images to latents with the encoder SavedModel alone: vectors, or feature maps (conv) to .npz."""
    import numpy as np

    from dae_cli.apply import inference
    from dae_cli.io import image_io, latents
    from dae_cli.models import artifacts

    output = State.output
    if out is not None and out.suffix.lower() not in latents.SUFFIXES:
        raise UsageError(f"-o {out}: unknown latent format; use one of {', '.join(latents.SUFFIXES)}")
    if out is not None and out.exists() and not overwrite:
        raise UsageError(f"{out} exists; pass --overwrite to replace it")
    level = _parse_sigma(sigma)
    directory = _model_dir(model)
    if artifacts.read_manifest(directory).get("architecture") == "conv":
        return _encode_maps(inputs, directory, out, overwrite, fail_fast, no_verify, level)
    paths = image_io.expand_inputs(inputs, note=State.output.info)
    loaded = artifacts.load_model(directory, parts=(artifacts.ENCODER,), verify=not no_verify)
    _check_sigma(level, loaded)

    def on_outcome(outcome):
        if not outcome.ok:
            _report_outcome(outcome, None)
        elif out is None:
            record = {"source": outcome.input, "latent": outcome.latent.tolist()}
            if outcome.kind:
                record["image"] = outcome.kind  # what decode needs to write the same kind of file
            output.record(record, json.dumps(record))  # JSON lines are the data, --json or not

    _check_overlap(overlap, loaded)
    size_mode = "resize" if resize else "tile" if tiles else "error"
    with output.progress("encode", len(paths)) as progress:
        log = _outcome_log(fail_fast, on_outcome, progress)
        inference.encode_files(loaded, paths, size_mode=size_mode, overlap=overlap, batch_size=batch_size, log=log)
    good = [o for o in log.outcomes if o.ok]
    if out is not None and good:
        latents.write_latents(
            out,
            [o.input for o in good],
            np.stack([o.latent for o in good]),
            overwrite=overwrite,
            kinds=[o.kind for o in good],
        )
        output.record({"output": str(out), "count": len(good)}, str(out))
    _batch_exit(log)


def _encode_maps(
    inputs, directory: Path, out: Optional[Path], overwrite: bool, fail_fast: bool, no_verify: bool, level=None
) -> None:
    """`encode` for a conv model: one latent feature map per image, to .npz or .npy."""
    from dae_cli.apply import whole_images
    from dae_cli.io import image_io, latent_maps
    from dae_cli.models import artifacts

    whole_images.check_latent_format(out)
    paths = image_io.expand_inputs(inputs, note=State.output.info)
    if out.suffix.lower() == ".npy" and len(paths) != 1:
        raise UsageError(f"-o {out}: .npy holds the latent of one image, got {len(paths)}; use .npz")
    loaded = artifacts.load_model(directory, parts=(artifacts.ENCODER,), verify=not no_verify)
    _check_sigma(level, loaded)
    with State.output.progress("encode", len(paths)) as progress:
        log = _outcome_log(fail_fast, lambda outcome: None if outcome.ok else _report_outcome(outcome, None), progress)
        encoded = whole_images.encode_files(
            loaded, paths, sigma=level, log=log, warn=State.output.warn, detail=State.output.detail
        )
    if encoded:
        latent_maps.write_maps(out, encoded, overwrite=overwrite)
        State.output.record({"output": str(out), "count": len(encoded)}, str(out))
    _batch_exit(log)


def _parse_sigma(text: Optional[str]):
    """`--sigma` as `auto`, a std on [0, 1], or None when not given."""
    if text is None:
        return None
    from dae_cli.apply.noise_level import parse_sigma

    return parse_sigma(text)


def _check_sigma(level, loaded) -> None:
    if level is not None and not loaded.takes_noise_level:
        raise UsageError(
            f"--sigma is for models that take the noise level as an input; {loaded.directory} does not "
            "(train one with --noise-level-input, or use -m photo)"
        )


def _check_overlap(overlap: Optional[int], loaded) -> None:
    if overlap is not None and not 0 <= overlap < min(loaded.image_shape[:2]):
        raise UsageError(f"--overlap must be between 0 and {min(loaded.image_shape[:2]) - 1}")


@app.command(epilog=EXIT_CODES_HELP)
def decode(
    latents_file: str = typer.Argument(
        ..., metavar="LATENTS", help="A file written by 'dae encode', or - for JSON lines on stdin."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Directory for the images."),
    model: Optional[Path] = MODEL_OPTION,
    overwrite: bool = OVERWRITE_OPTION,
    format: Optional[ImageFormat] = typer.Option(
        None,
        "--format",
        rich_help_panel=OUTPUT_PANEL,
        help="Write every image in this format (default: its source's, as named in the latents; else PNG).",
    ),
    quality: int = QUALITY_OPTION,
    bit_depth: Optional[BitDepth] = typer.Option(
        None,
        "--bit-depth",
        rich_help_panel=OUTPUT_PANEL,
        help="Bits per channel (default: the source's, as encode recorded it for a conv model; else 8).",
    ),
    batch_size: int = BATCH_SIZE_OPTION,
    fail_fast: bool = FAIL_FAST_OPTION,
    no_verify: bool = NO_VERIFY_OPTION,
) -> None:
    """Decode latents (vectors, or a conv model's feature maps) to images with the decoder SavedModel alone."""
    from dae_cli.apply import inference
    from dae_cli.io import latents
    from dae_cli.models import artifacts

    if out.exists() and not out.is_dir():
        raise UsageError(f"-o {out} is a file; decode writes a directory of images")
    options = _output_options(format, bit_depth, quality)
    if options.bit_depth == 16 and options.format in ("JPEG", "WEBP", "BMP"):
        raise UsageError(f"--bit-depth 16: {options.format} holds 8 bits per channel; use --format png or tiff")
    directory = _model_dir(model)
    if artifacts.read_manifest(directory).get("architecture") == "conv":
        from dae_cli.apply import whole_images
        from dae_cli.io import latent_maps

        maps = latent_maps.read_maps(latents_file)
        loaded = artifacts.load_model(directory, parts=(artifacts.DECODER,), verify=not no_verify)
        with State.output.progress("decode", len(maps), unit="latents") as progress:
            log = _outcome_log(fail_fast, progress=progress)
            whole_images.decode_maps(loaded, maps, out, overwrite=overwrite, log=log, options=options)
        return _batch_exit(log)
    items = latents.read_latents(latents_file)
    loaded = artifacts.load_model(directory, parts=(artifacts.DECODER,), verify=not no_verify)
    with State.output.progress("decode", len(items), unit="latents") as progress:
        log = _outcome_log(fail_fast, progress=progress)
        inference.decode_latents(
            loaded, items, out, overwrite=overwrite, batch_size=batch_size, log=log, options=options
        )
    _batch_exit(log)


def _noise_text(config: dict) -> str:
    """The training noise as `dae info` shows it: Gaussian levels on the 0-255 scale."""
    kind = str(config.get("noise", "?"))
    if config.get("self_supervised"):
        return "none added: trained on the noisy images themselves (self-supervised)"
    if config.get("targets"):
        return f"none added: trained on noisy/target pairs (targets {config['targets']})"
    if kind in ("poisson-gaussian", "camera"):
        jpeg = config.get("noise_jpeg_range")
        return (
            f"{kind}, shot gain {config['noise_shot_range'][0]:g} to {config['noise_shot_range'][1]:g}, "
            f"read std {config['noise_read_range'][0] * 255:g} to {config['noise_read_range'][1] * 255:g} "
            "(0-255 scale)" + (f", JPEG quality {jpeg[0]} to {jpeg[1]}" if jpeg else "")
        )
    if kind not in ("gaussian", "speckle"):
        return kind
    if config.get("noise_std_range"):
        low, high = config["noise_std_range"]
        return f"{kind}, std {low * 255:g} to {high * 255:g} (0-255 scale), one per image"
    return f"{kind}, mean {config.get('noise_mean', 0) * 255:g}, std {config.get('noise_std', 0) * 255:g} (0-255 scale)"


@app.command(epilog=EXIT_CODES_HELP)
def info(
    model: Optional[Path] = typer.Argument(None, help=MODEL_HELP, autocompletion=complete_model),
) -> None:
    """Show a model directory's manifest."""
    from dae_cli.models import artifacts

    directory = _model_dir(model)
    manifest = artifacts.read_manifest(directory)
    metrics = manifest.get("metrics", {})
    config = manifest["config"]
    rows = [
        ("model", str(directory)),
        ("format version", str(manifest["format_version"])),
        ("created", str(manifest.get("created", "?"))),
        ("versions", ", ".join(f"{k} {v}" for k, v in manifest.get("versions", {}).items())),
        ("architecture", manifest.get("architecture", "dense")),
        ("image shape", "x".join("any" if d is None else str(d) for d in manifest["image_shape"])),
        (
            "latent size",
            str(manifest["latent_dim"])
            if manifest.get("architecture", "dense") == "dense"
            else f"feature map of {manifest['latent_dim']} channels at 1/{manifest.get('size_multiple', 1)} of the image size",
        ),
        ("layer filters", ",".join(map(str, config.get("layer_filters", [])))),
        ("data", str(manifest.get("data_source", "?"))),
        ("noise", _noise_text(config)),
        (
            "noise level input",
            "yes: --sigma auto (estimated) or --sigma LEVEL" if manifest.get("noise_level_input") else "no",
        ),
        (
            "precision",
            str(config.get("precision", "?"))
            + (f", shipped as {manifest['inference_precision']}" if manifest.get("inference_precision") else ""),
        ),
        ("epochs", str(manifest.get("epochs_done", "?"))),
        ("training time", f"{manifest.get('training_seconds', 0):.1f}s"),
    ]
    if metrics:
        rows += [
            ("val_loss", f"{metrics['val_loss']:.5f}"),
            *_quality_rows(metrics),
        ]
    State.output.table("dae info", rows, {"model": str(directory), "manifest": manifest})


@app.command(epilog=EXIT_CODES_HELP)
@with_settings("evaluate", default_help="the model's")
def evaluate(
    model: Optional[Path] = MODEL_OPTION,
    batch_size: int = BATCH_SIZE_OPTION,
    sigma: Optional[str] = SIGMA_OPTION,
    no_verify: bool = NO_VERIFY_OPTION,
    settings: dict = None,
) -> None:
    """Score a model on held-out images: PSNR and SSIM before and after denoising, and images/s."""
    from dae_cli.apply import evaluation
    from dae_cli.models import artifacts

    level = _parse_sigma(sigma)
    directory = _model_dir(model)
    overrides = {key: value for key, value in settings.items() if key != "seed"}
    # Checked against the manifest first: a bad combination fails before TensorFlow loads.
    evaluation.evaluation_config(artifacts.read_manifest(directory), overrides)
    loaded = artifacts.load_model(directory, verify=not no_verify)
    _check_sigma(level, loaded)
    config = evaluation.evaluation_config(loaded.manifest, overrides)
    seed = settings["seed"]
    if seed is None:
        seed = int(loaded.manifest["config"].get("seed", 0))
    with State.output.progress("evaluate") as progress:
        report = evaluation.evaluate(loaded, config, seed=seed, batch_size=batch_size, progress=progress, sigma=level)
    from dae_cli.cli.output import format_spread as spread

    State.output.table(
        "dae evaluate",
        [
            ("model", str(directory)),
            ("data", f"{report['data_source']}, {report['images']} images"),
            ("noise", f"{report['noise']['noise']}, seed {report['seed']}"),
            *([("sigma", _sigma_text(report))] if report.get("sigma") else []),
            ("PSNR noisy", spread(report["psnr_noisy"], 2, " dB")),
            ("PSNR denoised", spread(report["psnr_denoised"], 2, " dB")),
            ("SSIM noisy", spread(report["ssim_noisy"], 3)),
            ("SSIM denoised", spread(report["ssim_denoised"], 3)),
            ("images/s", f"{report['images_per_second']:.0f}"),
        ],
        {"model": str(directory), **report},
    )


def _sigma_text(report: dict) -> str:
    """The noise level the model was given, as `dae evaluate` shows it."""
    levels = report["sigma_per_image"]
    if not levels:
        return "none: no images"
    if report["sigma"] != "auto":
        return f"{levels[0]:.1f} (given, 0-255 scale)"
    return f"estimated per image, {min(levels):.1f} to {max(levels):.1f} (0-255 scale)"


@app.command("noise", epilog=EXIT_CODES_HELP)
@with_settings("noise")
def noise_command(
    inputs: List[str] = typer.Argument(..., help="Clean image files, directories (recursive) or globs."),
    out: Optional[Path] = typer.Option(
        None,
        "--out",
        "-o",
        help="Output directory, or a file (.png, .jpg, .tif, .webp, .bmp) for one input (default: beside each input).",
    ),
    overwrite: bool = OVERWRITE_OPTION,
    format: Optional[ImageFormat] = FORMAT_OPTION,
    quality: int = QUALITY_OPTION,
    bit_depth: Optional[BitDepth] = BIT_DEPTH_OPTION,
    strip_metadata: bool = STRIP_METADATA_OPTION,
    fail_fast: bool = FAIL_FAST_OPTION,
    settings: dict = None,
) -> None:
    """Add noise to clean images (seeded), to make demos and test sets; writes <stem>.noisy.<ext>."""
    from dae_cli.apply import inference, outcomes
    from dae_cli.config import Config
    from dae_cli.io import image_io
    from dae_cli.noise import NoiseSpec

    config = Config.resolve(None, settings)
    options = _output_options(format, bit_depth, quality, strip_metadata)
    paths = image_io.expand_inputs(inputs, note=State.output.info)
    outputs = outcomes.output_paths(paths, out, "noisy", options.format)
    image_io.check_output_options(outputs, options)
    with State.output.progress("noise", len(paths)) as progress:
        log = _outcome_log(fail_fast, progress=progress)
        inference.noise_files(
            paths, outputs, NoiseSpec.from_config(config), config.seed, overwrite=overwrite, log=log, options=options
        )
    _batch_exit(log)


@app.command("export", epilog=EXIT_CODES_HELP)
def export_command(
    model: Optional[Path] = typer.Argument(None, help=MODEL_HELP, autocompletion=complete_model),
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

    record = export_model(_model_dir(model), out, format, verify=not no_verify, overwrite=overwrite)
    State.output.record(record, record["output"])


_interrupted = threading.Event()


def _raise_keyboard_interrupt(signum, frame):
    # Remembered as well as raised: the exception raised here can be lost on its way out
    # (seen in `dae denoise DIR`, which then ran on and exited 0; where it is caught was
    # not found), so a command that finishes after a Ctrl-C still exits 130.
    _interrupted.set()
    raise KeyboardInterrupt


def _set_json(ctx, param, value) -> None:
    if value:
        State.output.json_mode = True


def _set_quiet(ctx, param, value) -> None:
    if value:
        State.output.quiet = True


def _set_verbose(ctx, param, value) -> None:
    if value:
        State.output.verbose = True


def _set_debug(ctx, param, value) -> None:
    if value:
        _enable_debug()


def _enable_debug() -> None:
    """Tracebacks, Python warnings and TensorFlow's own start-up log (read by backend)."""
    State.debug = True
    os.environ["DAE_DEBUG"] = "1"
    warnings.resetwarnings()
    warnings.simplefilter("default")


GLOBAL_OPTION_CALLBACKS = {"json_output": _set_json, "quiet": _set_quiet, "verbose": _set_verbose, "debug": _set_debug}


def build_command():
    """The Click command of `app`, with the global options accepted after any command too.

    `dae -q train` and `dae train -q` mean the same: each subcommand gets a copy of the
    group's `--json`, `-q` and `--debug` that sets the same state instead of passing a
    value to the command's function.
    """
    import copy

    command = typer.main.get_command(app)
    shared = [param for param in command.params if param.name in GLOBAL_OPTION_CALLBACKS]
    for subcommand in command.commands.values():
        for param in shared:
            option = copy.copy(param)
            option.expose_value = False
            option.callback = GLOBAL_OPTION_CALLBACKS[param.name]
            subcommand.params.append(option)
    for each in (command, *command.commands.values()):
        for param in each.params:
            _drop_flag_placeholder(param)
        each.get_help_option = _without_placeholder(each.get_help_option)
    return command


def _drop_flag_placeholder(param) -> None:
    if getattr(param, "is_flag", False):
        param.metavar = ""  # on/off flags take no value: no `<bool>` placeholder in --help


def _without_placeholder(get_help_option):
    def get_plain_help_option(context):
        option = get_help_option(context)
        if option is not None:
            _drop_flag_placeholder(option)
        return option

    return get_plain_help_option


def main(argv: Optional[list] = None) -> int:
    """Entry point of the `dae` console script; returns the exit code.

    The command is invoked here rather than through Click's `main`, which (in the copy
    of Click that Typer bundles) turns Ctrl-C into a silent exit 130 and a closed pipe
    into exit 1 before this function could see them.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    State.output, State.debug = Output(), os.environ.get("DAE_DEBUG", "") not in ("", "0")
    if State.debug:
        _enable_debug()
    else:
        warnings.filterwarnings("ignore")  # library warnings are noise on a user's stderr
    command = build_command()
    # Shell completion (the script of `dae --show-completion` runs dae with
    # _DAE_COMPLETE set): answered here, and dae exits.
    command._main_shell_completion({}, "dae", None)
    if not args:
        args = ["--help"]  # a bare `dae` asks what it can do: help, exit 0
    # SIGTERM ends dae as Ctrl-C does (exit 130); `train` turns both into a checkpoint.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not ignored, as in a background job
        signal.signal(signal.SIGINT, _raise_keyboard_interrupt)
    try:
        with command.make_context("dae", args) as context:
            command.invoke(context)
        if _interrupted.is_set():
            raise KeyboardInterrupt  # the one raised at the signal was lost on the way
        sys.stdout.flush()  # a reader gone away shows here, not at interpreter exit
        return ExitCode.OK
    except typer.Exit as done:
        return done.exit_code
    except typer.TyperException as error:  # Click's usage errors: bad flags, missing arguments
        context = getattr(error, "ctx", None)
        name = context.command_path if context is not None else "dae"
        State.output.error(f"{error.format_message()} (see '{name} --help')")
        return getattr(error, "exit_code", ExitCode.USAGE)
    except (typer.Abort, KeyboardInterrupt):
        State.output.error("interrupted")
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        return _stdout_closed()
    except DaeError as error:
        if State.debug:
            traceback.print_exc()
        State.output.error(str(error))
        return error.exit_code
    except OSError as error:  # disk full, read-only or vanished paths, outside any one input
        if error.errno == errno.EPIPE:
            return _stdout_closed()
        if State.debug:
            traceback.print_exc()
        where = f"{error.filename}: " if error.filename else ""
        State.output.error(f"{where}{error.strerror or error}")
        return ExitCode.FAILURE
    except Exception as error:  # the last line of defence: no traceback without --debug
        if State.debug:
            traceback.print_exc()
        else:
            State.output.error(f"unexpected {type(error).__name__}: {error} (run with --debug for the traceback)")
        return ExitCode.FAILURE


def _stdout_closed() -> int:
    """The reader of stdout went away (say `| head`): stop quietly, as `SIGPIPE` would.

    What is still buffered for stdout is dropped (sent to /dev/null), so Python's own
    flush at exit does not complain either.
    """
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return ExitCode.BROKEN_PIPE


def run() -> None:
    sys.exit(main())
