"""The reference and `dae` side by side on one GPU: training images/s, time to the
reference's final PSNR, and denoising images/s and megapixels/s.

One command, one process for the training part:

    .venv/bin/python bench/gpu.py                  # on a machine with one GPU (~15-25 min)
    .venv/bin/python bench/gpu.py --quick          # a smoke run, on a CPU too (~1-3 min)
    .venv/bin/python bench/gpu.py --contender conv:configs/conv.toml   # more dae contenders

1. Training (`compare.py`'s method): the Keras example as plain Keras and
   `dae_cli.training.trainer.train` with the default config (plus any `--contender`) take turns
   epoch by epoch in one process on the same device, each epoch timed on its own;
   images/s counts training steps only. The reference runs 30 epochs as the example
   does, so "time to the reference's PSNR" is the dae time (cumulative epoch seconds,
   validation included) until its test PSNR first reaches the reference's 30-epoch
   figure, over the reference's whole time.
2. Denoising in memory, on the device: the reference Keras model's `predict` and each
   dae model's `LoadedModel.denoise` (its two SavedModels, as `dae denoise` runs them)
   over the fixed noisy test set in batches of `--batch-size`, best of 3 after a warm-up
   pass; images/s and megapixels/s (images/s x pixels per image / 1e6).
3. Denoising files: `dae denoise DIR` on `--files` PNGs, as a whole command; this part
   is bound by the CPU and the disk, not the device.

Results: bench/results/gpu.json (gpu-quick.json with --quick) and a summary on stdout.
Without a GPU the script says so and stops, unless --quick or --allow-cpu.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
import compare  # noqa: E402


def device_info() -> dict:
    from dae_cli.backend import tf

    gpus = tf.config.list_physical_devices("GPU")
    details = []
    for gpu in gpus:
        try:
            details.append(tf.config.experimental.get_device_details(gpu))
        except Exception as error:  # details are optional; the run is not
            details.append({"error": str(error)})
    return {"gpus": [gpu.name for gpu in gpus], "details": details}


def best_rate(function, arrays, batch_size: int, repeats: int = 3) -> float:
    """Images/s of `function` over `arrays` in batches: best of `repeats` after a warm-up."""
    function(arrays[:batch_size])
    best = None
    for _ in range(repeats):
        started = time.perf_counter()
        for start in range(0, len(arrays), batch_size):
            function(arrays[start : start + batch_size])
        seconds = time.perf_counter() - started
        best = seconds if best is None else min(best, seconds)
    return len(arrays) / best


def denoise_in_memory(results: dict, test_noisy, batch_size: int) -> dict:
    from dae_cli.backend import keras
    from dae_cli.models.denoiser import load_denoiser

    pixels = int(test_noisy.shape[1] * test_noisy.shape[2])
    rates = {}
    reference = results.get("reference", {}).get("model")
    if reference is not None:
        rates["reference"] = best_rate(lambda x: reference.predict_on_batch(x), test_noisy, batch_size)
    for name, result in results.items():
        if result.get("model_dir"):
            loaded = load_denoiser(result["model_dir"])
            rates[name] = best_rate(loaded.denoise, test_noisy, batch_size)
    keras.backend.clear_session()
    return {
        name: {"images_per_second": rate, "megapixels_per_second": rate * pixels / 1e6} for name, rate in rates.items()
    }


def denoise_files(model_dir: str, test_noisy, count: int) -> dict:
    from PIL import Image

    work = Path(tempfile.mkdtemp(prefix="dae-gpu-bench-"))
    try:
        inputs = work / "in"
        inputs.mkdir()
        for i, pixels in enumerate(test_noisy[:count]):
            Image.fromarray((pixels[..., 0] * 255).round().astype("uint8")).save(inputs / f"{i:05d}.png")
        started = time.perf_counter()
        subprocess.run(
            [common.DAE, "-q", "denoise", str(inputs), "-m", model_dir, "-o", str(work / "out")],
            check=True,
            capture_output=True,
            env={**os.environ, "NO_COLOR": "1"},
        )
        seconds = time.perf_counter() - started
        return {"files": count, "seconds": seconds, "images_per_second": count / seconds}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contender", action="append", default=[], help="More dae contenders, as in compare.py.")
    parser.add_argument(
        "--epochs", type=int, default=None, help="Epochs for every contender (default: reference 30, dae its config's)."
    )
    parser.add_argument("--limit", type=int, default=None, help="Use only the first N training images.")
    parser.add_argument("--test-images", type=int, default=None, help="Score and denoise only the first N test images.")
    parser.add_argument("--batch-size", type=int, default=1024, help="Batch size of the in-memory denoising figures.")
    parser.add_argument(
        "--files", type=int, default=10000, help="PNG files for the `dae denoise DIR` figure (0: skip)."
    )
    parser.add_argument(
        "--quick", action="store_true", help="2 epochs on 2,000 images, 500 test images, 200 files; runs on a CPU too."
    )
    parser.add_argument("--allow-cpu", action="store_true", help="Run the full benchmark even without a GPU.")
    parser.add_argument("--name", default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.limit = args.epochs or 2, args.limit or 2000
        args.test_images, args.files = args.test_images or 500, min(args.files, 200)
    name = args.name or ("gpu-quick" if args.quick else "gpu")

    device = device_info()
    if not device["gpus"] and not (args.quick or args.allow_cpu):
        print("no GPU visible to TensorFlow; run with --quick (a smoke run) or --allow-cpu", file=sys.stderr)
        return 2
    print(f"device: {device['details'] or 'CPU only'}", flush=True)

    contenders = [compare.parse_contender("reference"), compare.parse_contender("default:")]
    contenders += [compare.parse_contender(spec) for spec in args.contender]
    out_dir = common.RESULTS / "models" / name
    results = compare.run(contenders, args.epochs, args.limit, out_dir, test_limit=args.test_images, keep_models=True)

    _, x_test = common.load_mnist()
    test_noisy, _ = common.noisy_test_set(x_test[: args.test_images] if args.test_images else x_test)
    in_memory = denoise_in_memory(results, test_noisy, args.batch_size)
    files = (
        denoise_files(results["default"]["model_dir"], test_noisy, args.files)
        if args.files and results["default"].get("model_dir")
        else None
    )

    reference = results["reference"].get("summary", {})
    summary = {}
    for contender, result in results.items():
        mine = result.get("summary", {})
        summary[contender] = {
            "training_images_per_second": mine.get("median_images_per_second"),
            "training_vs_reference": mine.get("throughput_ratio"),
            "final_test_psnr": mine.get("final_test_psnr"),
            "time_to_reference_psnr_seconds": mine.get("time_to_reference_psnr"),
            "time_to_reference_psnr_fraction": mine.get("time_fraction_of_reference"),
            "denoise_images_per_second": in_memory.get(contender, {}).get("images_per_second"),
            "denoise_megapixels_per_second": in_memory.get(contender, {}).get("megapixels_per_second"),
            "error": result.get("error"),
        }
    record = {
        "machine": common.machine(),
        "device": device,
        "argv": sys.argv,
        "epochs": args.epochs,
        "limit": args.limit,
        "test_images": len(test_noisy),
        "reference_total_seconds": reference.get("total_seconds"),
        "summary": summary,
        "in_memory": in_memory,
        "denoise_files": files,
        "contenders": {key: {k: v for k, v in value.items() if k != "model"} for key, value in results.items()},
    }
    path = common.save(name, record)
    for contender, figures in summary.items():
        print(
            f"{contender:>10}: train {figures['training_images_per_second'] or 0:8.0f} img/s "
            f"(x{figures['training_vs_reference'] or 0:.2f})  final PSNR {figures['final_test_psnr'] or 0:.2f}  "
            f"time to ref PSNR {figures['time_to_reference_psnr_fraction'] or float('nan'):.3f}  "
            f"denoise {figures['denoise_images_per_second'] or 0:9.0f} img/s "
            f"{figures['denoise_megapixels_per_second'] or 0:7.1f} MP/s",
            flush=True,
        )
    if files:
        print(
            f"dae denoise DIR: {files['files']} files in {files['seconds']:.1f}s, {files['images_per_second']:.0f} img/s"
        )
    print(f"wrote {path}")
    return 1 if any(result.get("error") for result in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
