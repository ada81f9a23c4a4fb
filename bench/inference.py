"""Inference: `dae denoise DIR` over PNG files against in-memory prediction, and latency.

1. The fixed noisy test set is written as 28x28 grayscale PNGs (bench/results/png/).
2. `dae denoise DIR -o OUT` runs on the first 1,000 and on all 10,000 files, each in a
   fresh process under `/usr/bin/time -v` (wall time and peak RSS of the whole command,
   TensorFlow start-up and model loading included). Steady-state images/s is
   (10,000 - 1,000) / (t_10000 - t_1000): the per-file cost without the fixed start-up.
3. In-memory: a fresh process loads the same SavedModels with `dae_cli.models.artifacts` and
   times `LoadedModel.denoise` over the same arrays (already decoded, batches of 256).
4. Latency (median of several interleaved runs): `dae --help`, `dae denoise one.png`,
   and `python -c "import tensorflow"`.

With `--baseline REF` (a git commit or branch), step 2 runs the code of REF too, from
a `git archive` of its `dae_cli/` on PYTHONPATH, in the same venv: the two take turns
(REF small, this small, REF all, this all) for `--rounds` rounds, and each steady-state
figure is the median over rounds, so both meet the same load on a shared machine.

    .venv/bin/python bench/inference.py --model bench/results/models/default
    .venv/bin/python bench/inference.py --model M --baseline main --rounds 3 --name inference-vs-main
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

IN_MEMORY = r"""
import json, sys, time, resource
import numpy as np
from dae_cli.models import artifacts
from dae_cli.models.denoiser import load_denoiser
model = load_denoiser(sys.argv[1])
noisy = np.load(sys.argv[2]).astype(np.float32)[..., None] / 255.0
model.denoise(noisy[:256])  # trace once, as the CLI's first batch does
best = None
for _ in range(3):
    started = time.perf_counter()
    for i in range(0, len(noisy), 256):
        model.denoise(noisy[i : i + 256])
    seconds = time.perf_counter() - started
    best = seconds if best is None else min(best, seconds)
print(json.dumps({"seconds": best, "images_per_second": len(noisy) / best,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def timed(command, env=None, cwd=None):
    """(wall seconds, peak RSS MB, completed process) of `command` under /usr/bin/time -v."""
    started = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True, text=True, env=env, cwd=cwd)
    wall = time.perf_counter() - started
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"{command} failed: {done.stderr[-2000:]}")
    return wall, (int(match.group(1)) / 1024 if match else None), done


def export_code(ref: str, folder: Path) -> Path:
    """`dae_cli/` as of git `ref`, unpacked under `folder`; returns the PYTHONPATH entry."""
    folder.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(common.ROOT), "archive", ref, "dae_cli"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def denoise_runs(contenders: dict, folders: list, model: str, work: Path, env: dict, rounds: int) -> dict:
    """Whole-process `dae denoise DIR` runs, contenders and folders taking turns."""
    runs = {name: {label: [] for label, _, _ in folders} for name in contenders}
    for round_number in range(rounds):
        for label, folder, count in folders:
            for name, pythonpath in contenders.items():
                out = work / f"{name}-{label}"
                command = [common.PYTHON, "-m", "dae_cli", "-q", "denoise", str(folder), "-m", model, "-o", str(out)]
                run_env = {**env, "PYTHONPATH": str(pythonpath)} if pythonpath else env
                # Run from `work`: `python -m` puts the working directory first on sys.path.
                wall, rss, done = timed(command, run_env, cwd=work)
                cpu = sum(
                    float(re.search(rf"{kind} time \(seconds\): ([\d.]+)", done.stderr).group(1))
                    for kind in ("User", "System")
                )
                written = sum(1 for _ in out.rglob("*.png"))
                assert written == count, (written, count)
                shutil.rmtree(out)
                runs[name][label].append({"wall_seconds": wall, "cpu_seconds": cpu, "peak_rss_mb": rss})
                print(
                    f"round {round_number + 1} {name:>8} {count:6d} files: {wall:6.2f}s {count / wall:5.0f} img/s "
                    f"CPU {cpu:6.2f}s peak RSS {rss:.0f} MB",
                    flush=True,
                )
    return runs


def write_pngs(folder: Path, noisy_uint8: np.ndarray) -> list[Path]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, pixels in enumerate(noisy_uint8):
        path = folder / f"{i:05d}.png"
        if not path.exists():
            Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(common.RESULTS / "models" / "default"))
    parser.add_argument("--files", type=int, default=10000)
    parser.add_argument(
        "--small", type=int, default=1000, help="The smaller folder, for steady-state rate and flat memory."
    )
    parser.add_argument("--repeats", type=int, default=5, help="Runs per latency figure.")
    parser.add_argument("--name", default="inference")
    parser.add_argument("--baseline", default=None, help="A git ref whose dae_cli takes turns with this checkout's.")
    parser.add_argument("--rounds", type=int, default=1, help="Rounds of the whole-process denoise runs.")
    args = parser.parse_args(argv)
    env = {**os.environ, "NO_COLOR": "1"}

    _, x_test = common.load_mnist()
    noisy, _ = common.noisy_test_set(x_test[: args.files])
    noisy_uint8 = np.rint(noisy[..., 0] * 255).astype(np.uint8)
    png_root = common.RESULTS / "png"
    all_paths = write_pngs(png_root / "all", noisy_uint8)
    small = png_root / f"first{args.small}"
    if not small.exists():
        small.mkdir(parents=True)
        for path in all_paths[: args.small]:
            os.link(path, small / path.name)
    arrays = common.RESULTS / "png" / "noisy.npy"
    np.save(arrays, noisy_uint8)

    result = {"machine": common.machine(), "argv": sys.argv, "model": args.model, "files": args.files}
    work = Path(tempfile.mkdtemp(prefix="dae-bench-"))
    try:
        contenders = {"this": None}
        if args.baseline:
            contenders = {"baseline": export_code(args.baseline, work / "baseline-code"), "this": None}
            result["baseline"] = args.baseline
        folders = [("small", small, args.small), ("all", png_root / "all", args.files)]
        measured = denoise_runs(contenders, folders, args.model, work, env, args.rounds)
        result["cli_rounds"] = measured
        for name, by_folder in measured.items():
            steady = [
                (args.files - args.small) / (big["wall_seconds"] - little["wall_seconds"])
                for little, big in zip(by_folder["small"], by_folder["all"])
            ]
            figures = {
                label: {
                    "files": count,
                    "wall_seconds": common.median([r["wall_seconds"] for r in by_folder[label]]),
                    "peak_rss_mb": max(r["peak_rss_mb"] or 0 for r in by_folder[label]),
                }
                for label, _, count in folders
            }
            for label, figure in figures.items():
                figure["images_per_second"] = figure["files"] / figure["wall_seconds"]
            figures["steady_images_per_second"] = common.median(steady)
            figures["steady_per_round"] = steady
            # CPU (user + system, all threads) per extra file: what load on the machine moves least.
            figures["steady_cpu_us_per_image"] = common.median(
                [
                    (big["cpu_seconds"] - little["cpu_seconds"]) / (args.files - args.small) * 1e6
                    for little, big in zip(by_folder["small"], by_folder["all"])
                ]
            )
            result["cli" if name == "this" else "cli_baseline"] = figures
            print(
                f"{name}: steady state {common.median(steady):.0f} img/s (rounds: "
                f"{', '.join(f'{v:.0f}' for v in steady)}), {figures['steady_cpu_us_per_image']:.0f} µs of CPU per image",
                flush=True,
            )
        runs, steady = result["cli"], result["cli"]["steady_images_per_second"]

        done = subprocess.run(
            [common.PYTHON, "-c", IN_MEMORY, args.model, str(arrays)], capture_output=True, text=True, env=env
        )
        if done.returncode != 0:
            raise RuntimeError(done.stderr[-2000:])
        result["in_memory"] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"in-memory: {result['in_memory']}", flush=True)

        one = all_paths[0]
        latency = {}
        commands = {
            "dae --help": [common.DAE, "--help"],
            "dae denoise one.png": [
                common.DAE,
                "-q",
                "denoise",
                str(one),
                "-m",
                args.model,
                "-o",
                str(work / "one.png"),
                "--overwrite",
            ],
            "python -c 'import tensorflow'": [common.PYTHON, "-c", "import tensorflow"],
        }
        times = {label: [] for label in commands}
        for _ in range(args.repeats):  # interleaved, so background load hits all three alike
            for label, command in commands.items():
                started = time.perf_counter()
                subprocess.run(command, capture_output=True, env=env, check=True)
                times[label].append(time.perf_counter() - started)
        for label, measured in times.items():
            latency[label] = {"median_seconds": common.median(measured), "runs": measured}
            print(f"{label}: median {common.median(measured):.3f}s", flush=True)
        result["latency"] = latency
        result["summary"] = {
            "cli_images_per_second": runs["all"]["images_per_second"],
            "cli_steady_images_per_second": steady,
            "in_memory_images_per_second": result["in_memory"]["images_per_second"],
            "cli_fraction_of_in_memory": runs["all"]["images_per_second"] / result["in_memory"]["images_per_second"],
            "cli_steady_fraction_of_in_memory": steady / result["in_memory"]["images_per_second"],
            "rss_small_mb": runs["small"]["peak_rss_mb"],
            "rss_all_mb": runs["all"]["peak_rss_mb"],
            "baseline_steady_images_per_second": result.get("cli_baseline", {}).get("steady_images_per_second"),
            "cli_steady_cpu_us_per_image": runs["steady_cpu_us_per_image"],
            "baseline_steady_cpu_us_per_image": result.get("cli_baseline", {}).get("steady_cpu_us_per_image"),
            "help_seconds": latency["dae --help"]["median_seconds"],
            "denoise_one_minus_tf_import_seconds": latency["dae denoise one.png"]["median_seconds"]
            - latency["python -c 'import tensorflow'"]["median_seconds"],
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    path = common.save(args.name, result)
    print(json.dumps(result["summary"], indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
