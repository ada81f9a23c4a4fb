"""The README's screenshot of `dae ui`, `docs/ui.png`, taken in headless Chromium.

It starts `dae ui` on a free port of 127.0.0.1, uploads the shipped photograph of a cat
(`tests/data/chelsea.png`, CC0) with Gaussian noise of sigma 25 (seeded), waits for the
`photo` model's result and takes the page, reduced to 256 colours to keep the file small.
Needs the `ui` extra, Playwright and a Chromium (Debian's `chromium` package):

    python scripts/ui_screenshot.py            # writes docs/ui.png
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "ui.png"
VIEWPORT = {"width": 1100, "height": 800}


def noisy_photo(folder: Path) -> Path:
    clean = np.asarray(Image.open(ROOT / "tests" / "data" / "chelsea.png").convert("RGB"), np.float64) / 255
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 25 / 255, clean.shape), 0, 1)
    path = folder / "cat.png"
    Image.fromarray(np.rint(noisy * 255).astype(np.uint8)).save(path)
    return path


def serve(port: int) -> subprocess.Popen:
    server = subprocess.Popen(
        [sys.executable, "-m", "dae_cli", "ui", "--port", str(port)], stderr=subprocess.PIPE, text=True, cwd=ROOT
    )
    for line in server.stderr:
        if "serving the page at" in line:
            return server
    raise SystemExit(f"dae ui did not start (exit {server.wait()})")


def main() -> None:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = serve(port)
    try:
        with tempfile.TemporaryDirectory() as folder, sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=chromium, headless=True)
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(f"http://127.0.0.1:{port}/")
            page.locator("#upload input[type=file]").set_input_files(str(noisy_photo(Path(folder))))
            page.locator("#result a").first.wait_for(timeout=300_000)
            page.wait_for_timeout(1000)  # the previews drawn
            page.screenshot(path=str(Path(folder) / "page.png"))
            browser.close()
            shot = Image.open(Path(folder) / "page.png").convert("RGB")
            shot.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(OUT, optimize=True)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait()
    print(OUT, f"{OUT.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()
