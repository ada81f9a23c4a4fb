"""The photograph models as users run them: real noise, camera noise, Gaussian noise as
PNG and as JPEG, and clean photographs, against issue 24's targets.

Each model (`--models`: built-in names or model directories) runs as a user runs it,
`dae denoise NOISY_DIR -m MODEL -o OUT --format png`, a whole process (start-up
included) given no `--sigma` (only `--strength S` or `--sigma LEVEL` when given, to see
what a model would give with another level; a model without a level refuses them, and
its figures read "failed (exit 2)"). Its 8-bit outputs are
scored against the references: mean PSNR per set, a colour image's over its three
channels together, as the literature reports it (Set12 is gray and scored gray), and
megapixels per second of the whole process. The sets (`--sets`):

- `polyu100`: real camera noise, `../shared/data/photos-real/polyu100/{noisy,clean}`
  (100 pairs; validation and benchmark only, never training);
- `camera`: Kodak24 through `bench/camera_noise.py`'s check-set camera (written apart
  from training's simulator), at its three levels (`--levels`), JPEG quality 90;
- `set12` (gray), `kodak24`, `mcmaster` (colour): Gaussian noise at `--sigmas`, seeded,
  clipped and saved as 8-bit PNGs (`bench/photos.py`'s `make_noisy_set`); with `--jpeg`
  (the default) the same noisy pixels saved as quality-90 JPEGs as well (the decoded
  JPEG is the noisy input scored); with `--clean` (the default) the clean images given
  as they are (target: 40 dB from themselves).

With `--cbm3d`, beside each real set (PolyU100 and each camera level) CBM3D
(`bm3d.bm3d_rgb`; `pip install bm3d`: a benchmark comparator, no dependency of dae)
given its best single sigma: each of `--cbm3d-factors` times the set's RMS noise (measured against the
references) is tried on the first `--cbm3d-limit` images and the best one reported, an
oracle a user does not have, beside the models' PSNR on the same images (a best sigma at
the grid's edge is said). CBM3D took 3.5-5.5 minutes a megapixel per sigma on a busy
2-core CPU: all of PolyU100 and the camera set with four sigmas would be 13-20 hours,
the first 10 images of each about 3.5-5 hours. `--cbm3d-jobs N` runs N images at a time,
each in its own process (CBM3D uses one core).

FFDNet's published Kodak24 figures are on 500x500 centre crops: `--ffdnet-crops` scores
the Gaussian, JPEG and clean Kodak24 sets on those crops (the camera set stays whole).
Noisy files and outputs go in a temporary folder. Stdout is a Markdown table for
`BENCHMARKS.md` (machine, command and date in its header) with the issue's targets;
progress goes to stderr; `--json PATH` writes every figure, per image too.

    python bench/photo_model.py --models photo photo-gaussian --cbm3d --cbm3d-limit 10 \\
        --json bench/results/photo-model.json
    python bench/photo_model.py --models photo --sets set12 kodak24 mcmaster --sigmas 25 --no-clean
    python bench/photo_model.py --models photo --limit 2 --sigmas 25 --cbm3d --cbm3d-limit 1 --cbm3d-factors 1 1.5
    python bench/photo_model.py --models photo --sets kodak24 mcmaster --sigmas --no-jpeg   # clean only
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from camera_noise import LEVELS, make_check_set
from photos import SETS, SHARED, bm3d_denoise, make_noisy_set, psnr, read, run_dae_denoise

POLYU = SHARED / "photos-real" / "polyu100"
SET_NAMES = ("polyu100", "camera", "set12", "kodak24", "mcmaster")
LABELS = {"polyu100": "PolyU100", "camera": "Camera (Kodak24)", "set12": "Set12", "kodak24": "Kodak24"}
LABELS["mcmaster"] = "McMaster"
JPEG_QUALITY = 90
# FFDNet's published figures (Zhang, Zuo and Zhang, 2018), mean PSNR at sigma 15 / 25 / 50.
FFDNET = {
    "set12": {15: 32.75, 25: 30.43, 50: 27.32},
    "kodak24": {15: 34.63, 25: 32.13, 50: 28.98},
    "mcmaster": {15: 34.66, 25: 32.35, 50: 29.18},
}
REAL_TARGET = 38.4  # above Self2Self's 38.37 on PolyU100
CLEAN_TARGET = 40.0
JPEG_GAIN_TARGET = 5.0  # dB above the noisy JPEG, sigma 25, Kodak24 and McMaster
MAX_PSNR = 100.0  # an image scored against itself (a clean input) counts as 100 dB, not infinity


@dataclass
class Case:
    """One noisy set on disk: input file name -> reference on [0, 1]."""

    set: str
    kind: str  # real, camera, gaussian, jpeg, clean
    level: str  # "real", a camera level, or the sigma
    mode: str
    noisy_dir: Path
    references: dict = field(repr=False)
    label: str = ""

    def noisy(self, name: str) -> np.ndarray:
        return read(self.noisy_dir / name, self.mode)

    def megapixels(self) -> float:
        return sum(image.shape[0] * image.shape[1] for image in self.references.values()) / 1e6


def score(reference: np.ndarray, image: np.ndarray) -> float:
    """PSNR in dB, at most `MAX_PSNR` (identical images)."""
    return round(psnr(reference, image) if np.any(reference != image) else MAX_PSNR, 3)


def ffdnet_crop(image: np.ndarray) -> np.ndarray:
    """FFDNet's 500x500 Kodak24 centre crop of a 512x768 or 768x512 image."""
    if image.shape[0] < image.shape[1]:
        return image[6:506, 134:634]
    return image[134:634, 6:506]


def load_clean(set_name: str, limit: int | None, crops: bool) -> dict:
    folder, mode = SETS[set_name]
    clean = {path.name: read(path, mode) for path in sorted(folder.glob("*.png"))[:limit]}
    if crops and set_name == "kodak24":
        clean = {name: ffdnet_crop(image) for name, image in clean.items()}
    return clean


def save_pixels(image: np.ndarray, path: Path, **options) -> None:
    Image.fromarray(np.rint(image * 255).astype(np.uint8)).save(path, **options)


def polyu_case(limit: int | None, work: Path) -> Case:
    folder = work / "polyu100-noisy"
    folder.mkdir(parents=True)
    references = {}
    for path in sorted((POLYU / "noisy").glob("*.png"))[:limit]:
        shutil.copyfile(path, folder / path.name)
        references[path.name] = read(POLYU / "clean" / path.name, "RGB")
    return Case("polyu100", "real", "real", "RGB", folder, references, set_label("polyu100", limit, False))


def camera_cases(levels: list, limit: int | None, work: Path):
    paths = sorted(SETS["kodak24"][0].glob("*.png"))[:limit]
    for level in [level for level in LEVELS if level[0] in levels]:
        folder = work / f"camera-{level[0]}"
        references, _ = make_check_set(paths, level, JPEG_QUALITY, folder)
        yield Case("camera", "camera", level[0], "RGB", folder, references, set_label("camera", limit, False))


def gaussian_cases(set_name: str, clean: dict, sigmas: list, jpeg: bool, work: Path, label: str):
    mode = SETS[set_name][1]
    for sigma in sigmas:
        folder = work / f"{set_name}-s{sigma:g}"
        noisy = make_noisy_set(clean, sigma, folder)
        yield Case(set_name, "gaussian", f"{sigma:g}", mode, folder, clean, label)
        if jpeg:
            jpeg_folder = work / f"{set_name}-s{sigma:g}-jpeg"
            jpeg_folder.mkdir(parents=True)
            references = {}
            for name, image in sorted(noisy.items()):
                save_pixels(image, jpeg_folder / f"{Path(name).stem}.jpg", quality=JPEG_QUALITY)
                references[f"{Path(name).stem}.jpg"] = clean[name]
            yield Case(set_name, "jpeg", f"{sigma:g}", mode, jpeg_folder, references, label)


def clean_case(set_name: str, clean: dict, work: Path, label: str) -> Case:
    folder = work / f"{set_name}-clean"
    folder.mkdir(parents=True)
    for name, image in clean.items():
        save_pixels(image, folder / name)
    return Case(set_name, "clean", "0", SETS[set_name][1], folder, clean, label)


def set_label(set_name: str, limit: int | None, crops: bool) -> str:
    label = LABELS[set_name] + (" (gray)" if set_name == "set12" else "")
    if crops and set_name == "kodak24":
        label += ", FFDNet's 500x500 crops"
    return label + (f", first {limit}" if limit else "")


def all_cases(args, work: Path):
    """The cases in order, each made on disk only when it comes."""
    if "polyu100" in args.sets:
        yield polyu_case(args.limit, work)
    if "camera" in args.sets:
        yield from camera_cases(args.levels, args.limit, work)
    for set_name in [s for s in ("set12", "kodak24", "mcmaster") if s in args.sets]:
        clean = load_clean(set_name, args.limit, args.ffdnet_crops)
        label = set_label(set_name, args.limit, args.ffdnet_crops)
        yield from gaussian_cases(set_name, clean, args.sigmas, args.jpeg, work, label)
        if args.clean:
            yield clean_case(set_name, clean, work, label)


def level_flags(args) -> list[str]:
    """The `--strength` and `--sigma` given to this benchmark, as `dae denoise` flags."""
    given = (("--strength", args.strength), ("--sigma", args.sigma))
    return [text for flag, value in given if value is not None for text in (flag, f"{value:g}")]


def score_model(case: Case, model: str, level: list[str], work: Path) -> dict:
    """`dae denoise NOISY_DIR -m MODEL -o OUT --format png [LEVEL FLAGS]`, scored; the
    outputs removed."""
    out = work / "out"
    flags = ["--format", "png", *level]
    try:
        seconds = run_dae_denoise(model, case.noisy_dir, out, *flags)
    except subprocess.CalledProcessError as error:
        shutil.rmtree(out, ignore_errors=True)
        return {"error": f"dae denoise exited {error.returncode}", "exit_code": error.returncode}
    per_image = {
        name: score(reference, read(out / f"{Path(name).stem}.denoised.png", case.mode))
        for name, reference in sorted(case.references.items())
    }
    shutil.rmtree(out)
    return {
        "psnr": round(float(np.mean(list(per_image.values()))), 3),
        "seconds": round(seconds, 2),
        "mp_per_s": round(case.megapixels() / seconds, 4),
        "per_image": per_image,
    }


def target(case: Case, psnr_noisy: float, crops: bool) -> dict | None:
    """The issue's target for this row: a threshold and where it comes from."""
    if case.kind == "real":
        return {"threshold": REAL_TARGET, "text": f">= {REAL_TARGET:.2f} (Self2Self 38.37)"}
    if case.kind == "camera":
        return {"threshold": None, "text": "> CBM3D given its best sigma (`--cbm3d`)"}
    if case.kind == "clean":
        return {"threshold": CLEAN_TARGET, "text": f">= {CLEAN_TARGET:.0f}"}
    if case.kind == "jpeg" and case.set in ("kodak24", "mcmaster") and case.level == "25":
        threshold = round(psnr_noisy + JPEG_GAIN_TARGET, 3)
        return {"threshold": threshold, "text": f">= {threshold:.2f} (noisy + 5)"}
    published = FFDNET.get(case.set, {}).get(int(float(case.level))) if case.kind == "gaussian" else None
    if published is None:
        return None
    note = "" if case.set != "kodak24" or crops else ", on crops"
    return {"threshold": published, "text": f">= {published:.2f} (FFDNet{note})"}


def measure(case: Case, args, work: Path) -> dict:
    names = sorted(case.references)
    per_image_noisy = {n: score(case.references[n], case.noisy(n)) for n in names}
    psnr_noisy = float(np.mean(list(per_image_noisy.values())))
    row = {
        "set": case.set,
        "label": case.label,
        "kind": case.kind,
        "level": case.level,
        "images": len(names),
        "megapixels": round(case.megapixels(), 3),
        "psnr_noisy": round(psnr_noisy, 3),
        "per_image_noisy": per_image_noisy,
        "models": {model: score_model(case, model, level_flags(args), work) for model in args.models},
    }
    row["target"] = target(case, psnr_noisy, args.ffdnet_crops)
    if row["target"] and row["target"]["threshold"] is not None:
        threshold = row["target"]["threshold"]
        row["target"]["met_by"] = [m for m, s in row["models"].items() if s.get("psnr", -1) >= threshold]
    return row


def cbm3d_score(reference: np.ndarray, noisy: np.ndarray, sigma: float) -> float:
    """PSNR of CBM3D's output given `sigma`, rounded to 8 bits as a saved image is."""
    return score(reference, np.rint(bm3d_denoise(noisy, sigma) * 255) / 255)


def cbm3d_row(case: Case, row: dict, limit: int | None, factors: list, jobs: int = 1) -> dict:
    """CBM3D given its best single sigma on the first `limit` images, beside the models;
    `jobs` images at a time, each in a process of its own (CBM3D uses one core)."""
    names = sorted(case.references)[:limit]
    noisy = {n: case.noisy(n) for n in names}
    rms = float(np.sqrt(np.mean([np.mean((case.references[n] - noisy[n]) ** 2) for n in names])) * 255)
    references, inputs = [case.references[n] for n in names], [noisy[n] for n in names]
    by_sigma, started = {}, time.perf_counter()
    with concurrent.futures.ProcessPoolExecutor(jobs) as pool:
        for sigma in sorted({round(factor * rms, 1) for factor in factors}):
            scores = list(pool.map(cbm3d_score, references, inputs, [sigma] * len(names)))
            by_sigma[sigma] = round(float(np.mean(scores)), 3)
            print(f"  CBM3D sigma {sigma:g}: {by_sigma[sigma]:.3f} dB", file=sys.stderr, flush=True)
    best = max(by_sigma, key=by_sigma.get)
    models = {
        model: round(float(np.mean([scores["per_image"][n] for n in names])), 3)
        for model, scores in row["models"].items()
        if "per_image" in scores
    }
    return {
        "set": case.set,
        "label": f"{LABELS[case.set]}, first {len(names)}",
        "level": case.level,
        "images": len(names),
        "rms_noise": round(rms, 2),
        "psnr_noisy": round(float(np.mean([row["per_image_noisy"][n] for n in names])), 3),
        "models": models,
        "cbm3d_by_sigma": {f"{k:g}": v for k, v in by_sigma.items()},
        "cbm3d_best_sigma": best,
        "best_at_grid_edge": best in (min(by_sigma), max(by_sigma)) and len(by_sigma) > 1,
        "psnr_cbm3d_best": by_sigma[best],
        "cbm3d_seconds": round(time.perf_counter() - started, 1),
        "met_by": [m for m, v in models.items() if v > by_sigma[best]],
    }


def noise_text(kind: str, level: str) -> str:
    return {
        "real": "real (camera JPEGs)",
        "camera": f"camera sim., {level}, JPEG {JPEG_QUALITY}",
        "gaussian": f"Gaussian {level}, PNG",
        "jpeg": f"Gaussian {level}, JPEG {JPEG_QUALITY}",
        "clean": "none (clean)",
    }[kind]


def cell(scores: dict) -> str:
    return f"{scores['psnr']:.2f}" if "psnr" in scores else f"failed (exit {scores['exit_code']})"


def table(result: dict) -> list[str]:
    models = result["models"]
    lines = [
        "| set | noise | images | noisy | " + " | ".join(f"`{m}`" for m in models) + " | target | met by |",
        "| --- | --- | ---: | ---: | " + " | ".join("---:" for _ in models) + " | --- | --- |",
    ]
    for row in result["rows"]:
        goal = {"met_by": [], **(row["target"] or {"text": "-"})}
        figures = " | ".join(cell(row["models"][m]) for m in models)
        met = ", ".join(goal["met_by"]) or ("-" if goal.get("threshold") is None else "none")
        noisy = "-" if row["kind"] == "clean" else f"{row['psnr_noisy']:.2f}"
        noise = noise_text(row["kind"], row["level"])
        lines.append(f"| {row['label']} | {noise} | {row['images']} | {noisy} | {figures} | ")
        lines[-1] += f"{goal['text']} | {met} |"
    for row in result["cbm3d"]:
        figures = " | ".join(f"{row['models'][m]:.2f}" if m in row["models"] else "failed" for m in models)
        noise = noise_text("real" if row["set"] == "polyu100" else "camera", row["level"])
        edge = ", at the grid's edge" if row["best_at_grid_edge"] else ""
        goal = f"> {row['psnr_cbm3d_best']:.2f} (CBM3D, best sigma {row['cbm3d_best_sigma']:g}{edge})"
        lines.append(
            f"| {row['label']} | {noise} | {row['images']} | {row['psnr_noisy']:.2f} | "
            f"{figures} | {goal} | {', '.join(row['met_by']) or 'none'} |"
        )
    return lines


def speed_table(result: dict) -> list[str]:
    lines = [
        "| model | `dae denoise` runs | megapixels | seconds | megapixels/s |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for model in result["models"]:
        runs = [(r["megapixels"], r["models"][model]) for r in result["rows"] if "seconds" in r["models"][model]]
        megapixels, seconds = sum(mp for mp, _ in runs), sum(s["seconds"] for _, s in runs)
        rate = f"{megapixels / seconds:.3f}" if seconds else "-"
        lines.append(f"| `{model}` | {len(runs)} | {megapixels:.1f} | {seconds:.0f} | {rate} |")
    return lines


def markdown(result: dict) -> str:
    machine = result["machine"]
    flags = {flag: flag in machine["bf16_flags"] for flag in ("avx512_bf16", "amx_bf16", "amx_tile")}
    header = [
        f"Machine: {machine['cpu']}, {machine['nproc']} cores, {machine['memory_gb']} GiB; "
        + ", ".join(f"{flag} {'yes' if present else 'no'}" for flag, present in flags.items())
        + f"; Python {machine['python']}, TensorFlow {machine.get('tensorflow', '?')}, "
        f"Keras {machine.get('keras', '?')}. Date: {machine['date']}.",
        "",
        f"    {result['command']}",
        "",
        "Mean PSNR (dB) of the 8-bit outputs against the references; `dae denoise` given "
        + (f"`{' '.join(result['level_flags'])}`" if result["level_flags"] else "no sigma")
        + "; a colour image's PSNR over its three channels together; Set12 gray; an image"
        f" identical to its reference counts {MAX_PSNR:.0f} dB.",
        "",
    ]
    speed = ["", "Speed of the whole `dae denoise` process (start-up included), over all the rows above:", ""]
    return "\n".join(header + table(result) + speed + speed_table(result)) + "\n"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--models", nargs="+", default=["photo", "photo-gaussian"], help="built-in names or directories"
    )
    parser.add_argument("--strength", type=float, default=None, help="pass --strength S to dae denoise")
    parser.add_argument("--sigma", type=float, default=None, help="pass --sigma LEVEL (0-255) to dae denoise")
    parser.add_argument("--sets", nargs="+", default=list(SET_NAMES), choices=SET_NAMES)
    parser.add_argument("--sigmas", type=float, nargs="*", default=[15, 25, 50], help="none: no Gaussian sets")
    parser.add_argument("--levels", nargs="+", default=[lv[0] for lv in LEVELS], choices=[lv[0] for lv in LEVELS])
    parser.add_argument("--jpeg", action=argparse.BooleanOptionalAction, default=True, help="also the JPEG sets")
    parser.add_argument("--clean", action=argparse.BooleanOptionalAction, default=True, help="also clean sets")
    parser.add_argument("--ffdnet-crops", action="store_true", help="Kodak24 on FFDNet's 500x500 centre crops")
    parser.add_argument("--limit", type=int, default=None, help="the first N images of each set")
    parser.add_argument("--cbm3d", action="store_true", help="CBM3D with its best sigma beside each real set (slow)")
    parser.add_argument("--cbm3d-limit", type=int, default=None, help="CBM3D on the first N images only")
    parser.add_argument("--cbm3d-factors", type=float, nargs="+", default=[0.6, 1.0, 1.5, 2.2])
    parser.add_argument("--cbm3d-jobs", type=int, default=1, help="CBM3D on this many images at a time")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure here")
    return parser.parse_args()


def progress(row: dict) -> None:
    figures = {m: s.get("psnr", s.get("error")) for m, s in row["models"].items()}
    noise = noise_text(row["kind"], row["level"])
    print(f"{row['label']} | {noise}: noisy {row['psnr_noisy']:.2f} dB, {figures}", file=sys.stderr, flush=True)


def main() -> None:
    args = parse_args()
    command = "python bench/photo_model.py " + shlex.join(sys.argv[1:])
    result = {"command": command, "models": args.models, "level_flags": level_flags(args), "rows": [], "cbm3d": []}
    with tempfile.TemporaryDirectory(prefix="dae-photo-model-") as temporary:
        work = Path(temporary)
        for case in all_cases(args, work):
            row = measure(case, args, work)
            result["rows"].append(row)
            progress(row)
            if args.cbm3d and case.kind in ("real", "camera"):
                result["cbm3d"].append(cbm3d_row(case, row, args.cbm3d_limit, args.cbm3d_factors, args.cbm3d_jobs))
            shutil.rmtree(case.noisy_dir)
    from common import machine

    result["machine"] = machine()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(markdown(result), end="")


if __name__ == "__main__":
    main()
