"""The commands that apply a model, one function each: what the command line calls.

Each takes what the user asked for, loads the model (`load_denoiser`, refusing flags the
model has no use for before anything slow), runs the pipeline and reports through a
`Listener` (the command line's output layer): messages, progress, one outcome per input,
results. A run where some inputs failed ends in `DaeError` with exit code 3 (1 if all did).

Example:
    >>> denoise(["photos/"], Path("photo"), None, ApplyOptions(sigma="auto"), Files(), listener)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Callable, Protocol

from dae_cli.apply import pipeline
from dae_cli.apply.outcomes import Outcome, OutcomeLog, output_paths
from dae_cli.errors import DaeError, ExitCode, UsageError
from dae_cli.io import image_io
from dae_cli.models import artifacts
from dae_cli.models.denoiser import ApplyOptions, Denoiser, open_model


class Listener(Protocol):
    """What the jobs tell the user: the command line's `Output` is one."""

    def info(self, message: str) -> None: ...
    def warn(self, message: str) -> None: ...
    def detail(self, message: str) -> None: ...
    def progress(self, label: str, total: int | None = None, unit: str = "images") -> Any: ...
    def outcome(self, outcome: Outcome, show: bool = True) -> None: ...
    def record(self, record: dict[str, Any], text: str | None = None) -> None: ...


@dataclasses.dataclass(frozen=True)
class Files:
    """How a job treats files: `--overwrite`, `--fail-fast`, `--no-verify`, and how
    output images are written (`--format`, `--bit-depth`, `--quality`, `--strip-metadata`)."""

    overwrite: bool = False
    fail_fast: bool = False
    verify: bool = True
    output: image_io.OutputOptions = image_io.OutputOptions()


def _checked_model(directory: Path, command: str, options: ApplyOptions) -> Denoiser:
    """The model in `directory`, its SavedModels not loaded yet, that takes every flag given
    to `command`: a wrong flag fails before anything slow (`Denoiser.check`)."""
    denoiser = open_model(directory)
    denoiser.check(command, options)
    return denoiser


def _finish(log: OutcomeLog) -> None:
    code = log.exit_code()
    if code != ExitCode.OK:
        failed = sum(not outcome.ok for outcome in log.outcomes)
        raise DaeError(f"{failed} of {len(log.outcomes)} input(s) failed", code)


def denoise(
    inputs: list[str],
    model: Path | Denoiser,
    out: Path | None,
    options: ApplyOptions,
    files: Files,
    listener: Listener,
    windows: Callable[[int, int], None] | None = None,
) -> None:
    """`dae denoise`: each input's denoised image beside it, under `out`, or as `out`.

    `model` is a model directory, or a model already loaded (the web page keeps its models
    loaded between images); `windows`, if given, follows the model calls
    (`pipeline.denoise_files`).
    """
    paths = image_io.expand_inputs(inputs, note=listener.info)
    outputs = output_paths(paths, out, "denoised", files.output.format)
    image_io.check_output_options(outputs, files.output)
    if isinstance(model, Denoiser):
        denoiser = model
        denoiser.check("denoise", options)
    else:
        denoiser = _checked_model(model, "denoise", options).load(verify=files.verify, precision=options.precision)
    with listener.progress("denoise", len(paths)) as progress:
        log = OutcomeLog(listener.outcome, files.fail_fast, progress)
        pipeline.denoise_files(
            denoiser,
            paths,
            outputs,
            options,
            log=log,
            overwrite=files.overwrite,
            output_options=files.output,
            warn=listener.warn,
            detail=listener.detail,
            windows=windows,
        )
    _finish(log)


def encode(
    inputs: list[str], model: Path, out: Path | None, options: ApplyOptions, files: Files, listener: Listener
) -> None:
    """`dae encode`: the latents of the inputs, to `out` or (vectors) as JSON lines on stdout."""
    denoiser = _checked_model(model, "encode", options)
    paths = image_io.expand_inputs(inputs, note=listener.info)
    denoiser.latents.check_output(out, len(paths), files.overwrite)
    denoiser.load((artifacts.ENCODER,), verify=files.verify)

    def tell(outcome: Outcome) -> None:
        if outcome.ok and out is None:  # JSON lines are the data, --json or not
            record = denoiser.latents.record(outcome.input, outcome.latent, outcome.kind)
            listener.record(record, json.dumps(record))
        else:
            listener.outcome(outcome, show=False)

    with listener.progress("encode", len(paths)) as progress:
        log = OutcomeLog(tell, files.fail_fast, progress)
        encoded = pipeline.encode_files(denoiser, paths, options, log=log, warn=listener.warn, detail=listener.detail)
    if out is not None and encoded:
        denoiser.latents.write(out, encoded, files.overwrite)
        listener.record({"output": str(out), "count": len(encoded)}, str(out))
    _finish(log)


def decode(latents: str, model: Path, out: Path, options: ApplyOptions, files: Files, listener: Listener) -> None:
    """`dae decode`: one image per latent in the file `latents` (`-`: stdin), under `out`."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"-o {out} is a file; decode writes a directory of images")
    if files.output.bit_depth == 16 and files.output.format in ("JPEG", "WEBP", "BMP"):
        raise UsageError(f"--bit-depth 16: {files.output.format} holds 8 bits per channel; use --format png or tiff")
    denoiser = _checked_model(model, "decode", options)
    items = denoiser.latents.read(latents)
    denoiser.load((artifacts.DECODER,), verify=files.verify)
    with listener.progress("decode", len(items), unit="latents") as progress:
        log = OutcomeLog(listener.outcome, files.fail_fast, progress)
        pipeline.decode_files(
            denoiser, items, out, options, log=log, overwrite=files.overwrite, output_options=files.output
        )
    _finish(log)


def add_noise(inputs: list[str], out: Path | None, settings: dict, files: Files, listener: Listener) -> None:
    """`dae noise`: a seeded noisy copy of each clean input (`<stem>.noisy.<ext>`)."""
    from dae_cli.apply.noisy_copies import noise_files
    from dae_cli.config import Config
    from dae_cli.noise import NoiseSpec

    config = Config.resolve(None, settings)
    paths = image_io.expand_inputs(inputs, note=listener.info)
    outputs = output_paths(paths, out, "noisy", files.output.format)
    image_io.check_output_options(outputs, files.output)
    with listener.progress("noise", len(paths)) as progress:
        log = OutcomeLog(listener.outcome, files.fail_fast, progress)
        noise_files(
            paths,
            outputs,
            NoiseSpec.from_config(config),
            config.seed,
            overwrite=files.overwrite,
            log=log,
            options=files.output,
        )
    _finish(log)


def evaluate(model: Path, settings: dict, options: ApplyOptions, files: Files, listener: Listener) -> dict[str, Any]:
    """`dae evaluate`: the model's scores on its held-out images (`evaluation.evaluate`)."""
    from dae_cli.apply import evaluation

    overrides = {key: value for key, value in settings.items() if key != "seed"}
    denoiser = _checked_model(model, "evaluate", options)
    # Checked against the manifest first: a bad combination fails before TensorFlow loads.
    config = evaluation.evaluation_config(denoiser.manifest, overrides)
    denoiser.load(verify=files.verify)
    seed = settings["seed"]
    if seed is None:
        seed = int(denoiser.manifest["config"].get("seed", 0))
    with listener.progress("evaluate") as progress:
        return evaluation.evaluate(denoiser, config, seed=seed, options=options, progress=progress)
