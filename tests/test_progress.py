"""Progress on stderr for the commands over many inputs; results on stdout unchanged."""

import io
import json
import os
import re
import sys
import threading

import numpy as np
import pytest
from conftest import cli_env, run_dae, save_gray

from dae_cli.cli import output as output_module


def run_on_terminal(*args, extra_env=None, input=None):
    """Runs dae (in this process) with stderr on a pseudo-terminal and stdout elsewhere.

    Returns (exit code, stdout, what the terminal showed).
    """
    master, slave = os.openpty()
    env = {k: v for k, v in cli_env().items() if k != "NO_COLOR"}
    env.update(TERM="xterm-256color", COLUMNS="120")
    env.update(extra_env or {})
    shown = bytearray()

    def drain():
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the terminal closes once dae's end of it is closed
                return
            if not chunk:
                return
            shown.extend(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    with open(slave, "w", encoding="utf-8") as terminal:
        assert terminal.isatty()
        result = run_dae(*args, env=env, input=input, stderr=terminal)
    reader.join(timeout=10)
    os.close(master)
    return result.returncode, result.stdout, shown.decode("utf-8", "replace")


def bar(shown, label, count, unit="images"):
    """The final bar: label, count/total and a rate."""
    plain = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", shown)
    return re.search(rf"{label} .*━.* {count}/{count} [0-9.]+ {unit}/s", plain)


@pytest.fixture(scope="module")
def digits(tmp_path_factory, mnist_test_images):
    _, noisy = mnist_test_images
    folder = tmp_path_factory.mktemp("digits")
    return [save_gray(noisy[i], folder / f"d{i}.png") for i in range(6)]


def test_denoise_shows_a_bar_on_a_terminal_and_keeps_stdout(trained_model, digits, tmp_path):
    code, stdout, shown = run_on_terminal(
        "denoise", *digits, "-m", trained_model, "-o", tmp_path / "a", "--batch-size", "4"
    )
    assert code == 0, shown
    assert bar(shown, "denoise", 6), shown
    assert stdout.split() == [str(tmp_path / "a" / f"d{i}.denoised.png") for i in range(6)]
    piped = run_dae("denoise", *digits, "-m", trained_model, "-o", tmp_path / "b", "--batch-size", "4")
    assert piped.stdout.replace(str(tmp_path / "b"), str(tmp_path / "a")) == stdout
    assert piped.stderr == ""  # NO_COLOR, not a terminal and a short run: no progress at all


def test_encode_counts_images_not_tiles(trained_model, digits, tmp_path):
    from PIL import Image

    page = tmp_path / "page.png"
    Image.new("L", (56, 42), 30).save(page)  # six tiles
    code, stdout, shown = run_on_terminal("encode", page, *digits[:2], "-m", trained_model, "--tiles")
    assert code == 0, shown
    assert bar(shown, "encode", 3), shown
    assert len(stdout.splitlines()) == 6 + 2


def test_decode_noise_and_evaluate_show_bars(trained_model, digits, tmp_path):
    from PIL import Image

    from dae_cli.models import artifacts
    from dae_cli.models.denoiser import load_denoiser

    images = np.stack([np.asarray(Image.open(path), np.float32)[..., None] / 255 for path in digits])
    latents = load_denoiser(trained_model, parts=(artifacts.ENCODER,)).encode(images)
    encoded = "".join(json.dumps({"source": str(p), "latent": z.tolist()}) + "\n" for p, z in zip(digits, latents))
    code, stdout, shown = run_on_terminal("decode", "-", "-m", trained_model, "-o", tmp_path / "dec", input=encoded)
    assert code == 0 and bar(shown, "decode", 6, "latents"), shown
    assert len(stdout.split()) == 6
    code, stdout, shown = run_on_terminal("noise", *digits, "-o", tmp_path / "noisy")
    assert code == 0 and bar(shown, "noise", 6), shown
    assert len(stdout.split()) == 6
    code, stdout, shown = run_on_terminal("evaluate", "-m", trained_model, "--limit", "300")
    assert code == 0 and bar(shown, "evaluate", 300), shown
    assert "PSNR denoised" in stdout


def test_no_bar_on_a_terminal_with_no_color(digits, tmp_path):
    code, stdout, shown = run_on_terminal("noise", *digits, "-o", tmp_path / "n", extra_env={"NO_COLOR": "1"})
    assert code == 0, shown
    assert shown == ""  # and no plain line either: the run is shorter than PLAIN_INTERVAL
    assert len(stdout.splitlines()) == 6


@pytest.mark.parametrize(
    "options, env, terminal, kind",
    [
        ({}, {}, True, output_module.RichProgress),
        ({"quiet": True}, {}, True, output_module.Progress),
        ({"json_mode": True}, {}, True, output_module.Progress),
        ({}, {"NO_COLOR": "1"}, True, output_module.PlainProgress),
        ({}, {"TERM": "dumb"}, True, output_module.PlainProgress),
        ({}, {}, False, output_module.PlainProgress),
    ],
    ids=["terminal", "quiet", "json", "no-color", "dumb-terminal", "not-a-terminal"],
)
def test_which_progress_each_setting_gets(monkeypatch, options, env, terminal, kind):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: terminal, raising=False)
    with output_module.Output(**options).progress("denoise", 3) as progress:
        assert type(progress) is kind
        progress.advance(3)
        assert progress.done == 3


def test_plain_progress_prints_a_line_at_most_every_interval(monkeypatch):
    now = [100.0]
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    progress = output_module.PlainProgress("denoise", 1000, interval=10, clock=lambda: now[0])
    for _ in range(40):  # 40 images in 5 s: no line yet
        now[0] += 0.125
        progress.advance()
    assert stderr.getvalue() == ""
    for _ in range(80):  # 10 s more: one line at 10 s, none at 15 s
        now[0] += 0.125
        progress.advance()
    assert stderr.getvalue().splitlines() == ["denoise: 80/1000 images, eta 1m55s, 8.0 images/s"]
