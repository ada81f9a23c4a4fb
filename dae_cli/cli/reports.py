"""The tables `dae train`, `dae info` and `dae evaluate` print: rows for text, a record for JSON.

Each function returns (rows, record); `Output.table` renders one or the other.
"""

from __future__ import annotations

from typing import Any

from dae_cli.cli.output import format_spread, format_summary

Rows = list[tuple[str, str]]


def quality_rows(metrics: dict) -> Rows:
    """PSNR and SSIM of the noisy input and of the model's output, as training measured them."""
    if "psnr_denoised" not in metrics:
        return [("PSNR, SSIM", "none: trained without clean images (self-supervised)")]
    psnr = f"{format_summary(metrics['psnr_noisy'], 2)} -> {format_summary(metrics['psnr_denoised'], 2, ' dB')}"
    ssim = f"{format_summary(metrics['ssim_noisy'], 3)} -> {format_summary(metrics['ssim_denoised'], 3)}"
    return [("PSNR noisy -> denoised", psnr), ("SSIM noisy -> denoised", ssim)]


def training(result) -> tuple[Rows, dict[str, Any]]:
    """What `dae train` made (a `TrainResult`)."""
    manifest = result.manifest
    metrics = manifest["metrics"]
    rows = [
        ("model", str(result.model_dir)),
        ("epochs", str(manifest["epochs_done"])),
        ("training time", f"{manifest['training_seconds']:.1f}s"),
        ("val_loss", f"{metrics['val_loss']:.5f}"),
        *quality_rows(metrics),
    ]
    record = {
        "model": str(result.model_dir),
        "epochs_done": manifest["epochs_done"],
        "training_seconds": manifest["training_seconds"],
        "metrics": metrics,
    }
    return rows, record


def noise_text(config: dict) -> str:
    """The training noise as `dae info` shows it: levels on the 0-255 scale."""
    kind = str(config.get("noise", "?"))
    if config.get("self_supervised"):
        return "none added: trained on the noisy images themselves (self-supervised)"
    if config.get("targets"):
        return f"none added: trained on noisy/target pairs (targets {config['targets']})"
    if kind in ("poisson-gaussian", "camera"):
        shot, read, jpeg = config["noise_shot_range"], config["noise_read_range"], config.get("noise_jpeg_range")
        return (
            f"{kind}, shot gain {shot[0]:g} to {shot[1]:g}, read std {read[0] * 255:g} to {read[1] * 255:g} "
            "(0-255 scale)" + (f", JPEG quality {jpeg[0]} to {jpeg[1]}" if jpeg else "")
        )
    if kind not in ("gaussian", "speckle"):
        return kind
    if config.get("noise_std_range"):
        low, high = config["noise_std_range"]
        return f"{kind}, std {low * 255:g} to {high * 255:g} (0-255 scale), one per image"
    return f"{kind}, mean {config.get('noise_mean', 0) * 255:g}, std {config.get('noise_std', 0) * 255:g} (0-255 scale)"


def model_info(model) -> tuple[Rows, dict[str, Any]]:
    """A model directory as `dae info` shows it (`model`: a `Denoiser`, nothing loaded)."""
    manifest, config = model.manifest, model.manifest["config"]
    shipped = f", shipped as {manifest['inference_precision']}" if manifest.get("inference_precision") else ""
    if model.estimates_noise:
        level_input = "its own estimate, a map: --strength S scales it, --sigma LEVEL replaces it"
    elif model.takes_noise_level:
        level_input = "yes: --sigma auto (estimated) or --sigma LEVEL, times --strength"
    else:
        level_input = "no"
    cost = manifest.get("gflops_per_megapixel")
    rows = [
        ("model", str(model.directory)),
        ("format version", str(manifest["format_version"])),
        ("created", str(manifest.get("created", "?"))),
        ("versions", ", ".join(f"{k} {v}" for k, v in manifest.get("versions", {}).items())),
        ("architecture", model.architecture),
        ("image shape", "x".join("any" if d is None else str(d) for d in manifest["image_shape"])),
        ("latent size", model.describe_latent()),
        ("layer filters", ",".join(map(str, config.get("layer_filters", [])))),
        ("data", str(manifest.get("data_source", "?"))),
        ("noise", noise_text(config)),
        ("noise level", level_input),
        ("cost", "unknown (trained before dae counted it)" if cost is None else f"{cost:g} GFLOPs per megapixel"),
        ("precision", str(config.get("precision", "?")) + shipped),
        ("epochs", str(manifest.get("epochs_done", "?"))),
        ("training time", f"{manifest.get('training_seconds', 0):.1f}s"),
    ]
    metrics = manifest.get("metrics", {})
    if metrics:
        rows += [("val_loss", f"{metrics['val_loss']:.5f}"), *quality_rows(metrics)]
    return rows, {"model": str(model.directory), "manifest": manifest}


def _sigma_text(report: dict) -> str:
    """The noise level the model was given, as `dae evaluate` shows it."""
    levels = report["sigma_per_image"]
    if not levels:
        return "none: no images"
    if report["sigma"] != "auto":
        return f"{levels[0]:.1f} (given, 0-255 scale)"
    return f"estimated per image, {min(levels):.1f} to {max(levels):.1f} (0-255 scale)"


def evaluation(directory, report: dict) -> tuple[Rows, dict[str, Any]]:
    """`dae evaluate`'s scores."""
    rows = [
        ("model", str(directory)),
        ("data", f"{report['data_source']}, {report['images']} images"),
        ("noise", f"{report['noise']['noise']}, seed {report['seed']}"),
        *([("sigma", _sigma_text(report))] if report.get("sigma") else []),
        ("PSNR noisy", format_spread(report["psnr_noisy"], 2, " dB")),
        ("PSNR denoised", format_spread(report["psnr_denoised"], 2, " dB")),
        ("SSIM noisy", format_spread(report["ssim_noisy"], 3)),
        ("SSIM denoised", format_spread(report["ssim_denoised"], 3)),
        ("images/s", f"{report['images_per_second']:.0f}"),
    ]
    return rows, {"model": str(directory), **report}
