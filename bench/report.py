"""Turns bench/results/*.json into Markdown tables: bench/results/report.md (and stdout)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def load(name):
    path = common.RESULTS / f"{name}.json"
    if not path.exists():
        return None
    result = json.loads(path.read_text())
    if "contenders" in result:
        import compare

        compare.summarize(result["contenders"])  # figures derived from the per-epoch rows
    return result


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt(value, digits=2, suffix=""):
    return "—" if value is None else f"{value:.{digits}f}{suffix}"


def machine_section(machine):
    return "\n".join(
        [
            f"- CPU: {machine['cpu']}, {machine['nproc']} cores (`nproc`), {machine['memory_gb']} GiB RAM; "
            f"bfloat16 flags: {', '.join(machine['bf16_flags']) or 'none'}",
            f"- TensorFlow {machine.get('tensorflow')}, Keras {machine.get('keras')}, Python {machine['python']}",
            f"- Date: {machine['date']}",
        ]
    )


def compare_section(result, title, gains=False):
    contenders = result["contenders"]
    out = [
        f"### {title}",
        "",
        f"Command: `{' '.join(Path(a).name if i == 0 else a for i, a in enumerate(result['argv']))}`",
        "",
    ]
    header = [
        "contender",
        "epochs",
        "median img/s",
        "× reference",
        "median epoch s",
        "total s",
        "final test PSNR",
        "final test SSIM",
        "Δ PSNR vs ref",
        "time to ref PSNR",
        "fraction of ref time (measured / by medians)",
        "total as fraction of ref (measured / by medians)",
    ]
    rows = []
    for name, c in contenders.items():
        s = c.get("summary")
        if not s:
            rows.append([name, "error" if c.get("error") else "—"] + ["—"] * (len(header) - 2))
            continue
        rows.append(
            [
                name,
                s["epochs_run"],
                fmt(s["median_images_per_second"], 0),
                fmt(s.get("throughput_ratio"), 2),
                fmt(s["median_epoch_seconds"], 2),
                fmt(s["total_seconds"], 1),
                fmt(s["final_test_psnr"], 2),
                fmt(s["final_test_ssim"], 4),
                fmt(s.get("psnr_gain_db"), 2, " dB"),
                fmt(s.get("time_to_reference_psnr"), 1, " s")
                + (f" (epoch {s['epochs_to_reference_psnr']})" if s.get("epochs_to_reference_psnr") else ""),
                fmt(s.get("time_fraction_of_reference"), 3)
                + " / "
                + fmt(s.get("time_fraction_of_reference_by_medians"), 3),
                fmt(s.get("wall_fraction_of_reference"), 3)
                + " / "
                + fmt(s.get("wall_fraction_of_reference_by_medians"), 3),
            ]
        )
    out.append(table(header, rows))
    ref_total = contenders.get("reference", {}).get("summary", {}).get("total_seconds")
    lines = []
    for name, c in contenders.items():
        s = c.get("summary") or {}
        for gain in (0.5, 2.0):
            seconds = s.get(f"time_to_reference_plus_{gain}db")
            if name != "reference" and "reference_final_psnr" in s:
                lines.append(
                    f"- {name}: reference's final PSNR + {gain} dB "
                    + (
                        f"first reached after epoch {s[f'epochs_to_reference_plus_{gain}db']}, at {seconds:.1f} s "
                        f"({seconds / ref_total:.2f} of the reference's {ref_total:.1f} s)"
                        if seconds
                        else "not reached"
                    )
                )
    if lines and gains:
        out += ["", *lines]
    return "\n".join(out)


def epochs_section(result):
    contenders = {n: c for n, c in result["contenders"].items() if c.get("epochs")}
    names = list(contenders)
    header = ["epoch"] + [f"{n} {field}" for n in names for field in ("s", "img/s", "PSNR", "SSIM")]
    most = max(len(c["epochs"]) for c in contenders.values())
    rows = []
    for i in range(most):
        row = [i + 1]
        for n in names:
            e = contenders[n]["epochs"][i] if i < len(contenders[n]["epochs"]) else None
            row += (
                [
                    fmt(e["epoch_seconds"], 2),
                    fmt(e["images_per_second"], 0),
                    fmt(e["test_psnr"], 2),
                    fmt(e["test_ssim"], 4),
                ]
                if e
                else ["", "", "", ""]
            )
        rows.append(row)
    return table(header, rows)


def main():
    parts = []
    sections = {name: load(name) for name in ("levers", "train", "train_cli", "inference", "classical")}
    first = next((s for s in sections.values() if s), None)
    if first:
        parts += ["## Machine", "", machine_section(first["machine"]), ""]
    if sections["levers"]:
        parts += [
            compare_section(sections["levers"], "Levers (short runs, all in one process, alternating epochs)"),
            "",
        ]
    if sections["train"]:
        parts += [
            compare_section(
                sections["train"], "Training: reference vs dae (alternating epochs, one process)", gains=True
            ),
            "",
            "Per epoch (epoch seconds include the per-epoch validation both sides run; img/s counts training steps only):",
            "",
            epochs_section(sections["train"]),
            "",
        ]
    if sections["train_cli"]:
        t = sections["train_cli"]
        parts += [
            "### `dae train` CLI on full MNIST",
            "",
            f"Command: `{' '.join(Path(a).name if i == 0 else a for i, a in enumerate(t['command']))}`",
            "",
            table(
                ["epochs", "wall s (whole command)", "training s", "peak RSS MB", "val PSNR", "val SSIM"],
                [
                    [
                        t["epochs"],
                        fmt(t["wall_seconds"], 1),
                        fmt(t["training_seconds"], 1),
                        fmt(t["peak_rss_mb"], 0),
                        fmt(t["metrics"]["psnr_denoised"]["mean"], 2),
                        fmt(t["metrics"]["ssim_denoised"]["mean"], 4),
                    ]
                ],
            ),
            "",
        ]
    if sections["inference"]:
        i = sections["inference"]
        cli, mem, lat = i["cli"], i["in_memory"], i["latency"]
        rows = [
            [
                f"`dae denoise DIR` ({cli['small']['files']} PNGs)",
                fmt(cli["small"]["wall_seconds"], 2),
                fmt(cli["small"]["images_per_second"], 0),
                fmt(cli["small"]["peak_rss_mb"], 0),
            ],
            [
                f"`dae denoise DIR` ({cli['all']['files']} PNGs)",
                fmt(cli["all"]["wall_seconds"], 2),
                fmt(cli["all"]["images_per_second"], 0),
                fmt(cli["all"]["peak_rss_mb"], 0),
            ],
            [
                "`dae denoise` steady state (marginal, start-up excluded)",
                "",
                fmt(cli["steady_images_per_second"], 0),
                "",
            ],
            [
                "in-memory `LoadedModel.denoise`, same arrays",
                fmt(mem["seconds"], 3),
                fmt(mem["images_per_second"], 0),
                fmt(mem["peak_rss_mb"], 0),
            ],
        ]
        parts += [
            "### Inference",
            "",
            table(["what", "seconds", "images/s", "peak RSS MB"], rows),
            "",
            table(["command", "median s"], [[k, fmt(v["median_seconds"], 3)] for k, v in lat.items()]),
            "",
        ]
    if sections["classical"]:
        c = sections["classical"]
        rows = [
            ["noisy input", "", fmt(c["noisy"]["psnr_noisy"]["mean"], 2), fmt(c["noisy"]["ssim_noisy"]["mean"], 4), ""]
        ]
        for name, m in c["methods"].items():
            rows.append(
                [
                    name,
                    f"{m['parameter']}={m['value']}",
                    fmt(m["psnr_denoised"]["mean"], 2),
                    fmt(m["ssim_denoised"]["mean"], 4),
                    fmt(m["images_per_second"], 0),
                ]
            )
        if sections["train"]:
            for name, t in sections["train"]["contenders"].items():
                if t.get("summary"):
                    rows.append(
                        [
                            f"autoencoder: {name}",
                            f"{t['summary']['epochs_run']} epochs",
                            fmt(t["summary"]["final_test_psnr"], 2),
                            fmt(t["summary"]["final_test_ssim"], 4),
                            "",
                        ]
                    )
        parts += [
            "### Classical denoisers (scikit-image), same noisy test images",
            "",
            f"Test images: {next(iter(c['methods'].values()))['images']}",
            "",
            table(["method", "parameter (tuned)", "PSNR dB", "SSIM", "images/s"], rows),
            "",
        ]
    text = "\n".join(parts)
    (common.RESULTS / "report.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
