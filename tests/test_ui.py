"""`dae ui`: the local web page and its API endpoint, served by a real `dae ui` process.

The page is driven in a real headless Chromium (the system's, through Playwright; none
is downloaded): it loads, an uploaded noisy image comes back denoised with a higher
PSNR, the noise level control changes the result, a bad upload shows one line. The API
endpoint `denoise`, called through `gradio_client`, returns the very bytes `dae denoise`
writes. The browser tests are skipped where no Chromium is installed, and everything
here without the `ui` extra, unless DAE_TEST_BROWSER=required (`.ci/run`, which installs
both): then they fail instead.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, assert_clean_error, cli_env, run_dae, shipped
from PIL import Image
from test_bad_input import decompression_bomb

REQUIRED = os.environ.get("DAE_TEST_BROWSER") == "required"
if not REQUIRED:
    pytest.importorskip("gradio", reason="needs the ui extra: pip install -e '.[ui]'")

CHROMIUM = next((path for path in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if path), None)
SIGMA = 25 / 255


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def psnr(clean: np.ndarray, other: np.ndarray) -> float:
    return float(10 * np.log10(1 / np.mean((clean - other) ** 2)))


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), np.float64) / 255


@pytest.fixture(scope="module")
def clean() -> np.ndarray:
    return shipped("astronaut", "RGB")[100:164, 180:244]  # a face: 64x64, quick on any CPU


@pytest.fixture(scope="module")
def images(tmp_path_factory, clean) -> Path:
    folder = tmp_path_factory.mktemp("images")
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, SIGMA, clean.shape), 0, 1)
    Image.fromarray(np.rint(noisy * 255).astype(np.uint8)).save(folder / "noisy.png")
    gray = np.rint(noisy.mean(axis=-1) * 65535).astype(np.uint16)
    Image.fromarray(gray).save(folder / "noisy16.tif")  # 16-bit gray TIFF: dae writes it back as such
    (folder / "bad.png").write_text("this is not a PNG\n")
    decompression_bomb(folder / "bomb.png")
    return folder


class Server:
    """A `dae ui` process on a free port of 127.0.0.1, its stderr collected."""

    def __init__(self, tmp: Path, *args: str):
        self.port = free_port()
        self.tmp = tmp
        (tmp / "gradio").mkdir()
        env = cli_env(GRADIO_TEMP_DIR=str(tmp / "gradio"), TMPDIR=str(tmp))
        command = [sys.executable, "-m", "dae_cli", "ui", "--port", str(self.port), *args]
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.stderr: list[str] = []
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self.ready.wait(300) or self.process.poll() is not None:
            self.stop()
            raise AssertionError(f"dae ui did not start: {''.join(self.stderr)}")
        self.url = f"http://127.0.0.1:{self.port}/"

    def _read(self) -> None:
        for line in self.process.stderr:
            self.stderr.append(line)
            if "serving the page at" in line:
                self.ready.set()

    def stop(self) -> tuple[int, str]:
        self.process.send_signal(signal.SIGTERM)
        stdout, _ = self.process.communicate(timeout=60)
        return self.process.returncode, stdout


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ui")
    own_model = tmp / "my-model"
    shutil.copytree(ROOT / "dae_cli" / "trained_models" / "photo", own_model)  # a model directory of one's own
    running = Server(tmp, "--model", str(own_model))
    running.own_model = own_model
    yield running
    code, stdout = running.stop()
    assert code == 130 and stdout == ""  # stopped as Ctrl-C stops dae; nothing on stdout, ever
    assert not list(tmp.glob("dae-ui-*")), "the private folder is left behind"
    assert "Traceback" not in "".join(running.stderr)


def test_without_the_extra_dae_ui_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "gradio", None)  # as after a plain `pip install dae-cli`
    result = run_dae("ui")
    assert_clean_error(result, 2, "dae ui needs gradio", 'pip install "dae-cli[ui]"')
    assert len(result.stderr.splitlines()) == 1


def test_help_imports_neither_tensorflow_nor_gradio():
    script = (
        "import sys\nfrom dae_cli.cli.entry import main\n"
        "assert main(['--help']) == 0 and main(['ui', '--help']) == 0\n"
        "print('tensorflow' in sys.modules or 'gradio' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=cli_env())
    assert result.returncode == 0, result.stderr
    assert "--host" in result.stdout and "127.0.0.1" in result.stdout
    assert result.stdout.strip().endswith("False")


def test_a_bad_model_directory_or_a_busy_port_stops_it_before_serving(tmp_path):
    result = run_dae("ui", "--model", tmp_path / "no-such-model")
    assert_clean_error(result, 1, "no-such-model")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_dae("ui", "--port", port)
    assert_clean_error(result, 1, f"cannot listen on 127.0.0.1:{port}")


def test_it_listens_on_127_0_0_1_says_where_and_limits_uploads_by_the_bomb_rule(server):
    from PIL import Image as PillowImage

    from dae_cli.ui.denoising import upload_limit

    assert f"serving the page at http://127.0.0.1:{server.port}/" in "".join(server.stderr)
    assert upload_limit() == PillowImage.MAX_IMAGE_PIXELS * 8 + (16 << 20)
    import httpx

    config = httpx.get(server.url + "config").json()
    assert config["max_file_size"] == upload_limit()


def cli_denoise(source: Path, tmp_path: Path, *flags) -> bytes:
    result = run_dae("denoise", source, "-o", tmp_path / f"cli{source.suffix}", *flags)
    assert result.returncode == 0, result.stderr
    return (tmp_path / f"cli{source.suffix}").read_bytes()


@pytest.mark.parametrize(
    "name, model, sigma, strength, flags",
    [
        ("noisy.png", "photo", "auto", 1, ("-m", "photo")),
        ("noisy.png", "photo", "15", 0.5, ("-m", "photo", "--sigma", "15", "--strength", "0.5")),
        ("noisy.png", "photo", "auto", 1.5, ("-m", "photo", "--strength", "1.5")),
        ("noisy16.tif", "photo-gaussian", "auto", 1, ("-m", "photo-gaussian")),
    ],
)
def test_the_api_endpoint_returns_the_bytes_dae_denoise_writes(
    server, images, tmp_path, name, model, sigma, strength, flags
):
    from gradio_client import Client, handle_file

    client = Client(server.url, verbose=False)
    returned = Path(client.predict(handle_file(str(images / name)), model, sigma, strength, api_name="/denoise"))
    assert returned.name == f"{Path(name).stem}.denoised{Path(name).suffix}"
    assert returned.read_bytes() == cli_denoise(images / name, tmp_path, *flags)


def test_strength_0_gives_the_image_back_and_a_blind_model_refuses_a_strength(server, images):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    client = Client(server.url, verbose=False)
    returned = client.predict(handle_file(str(images / "noisy.png")), "photo", "auto", 0, api_name="/denoise")
    assert np.array_equal(pixels(Path(returned).read_bytes()), pixels((images / "noisy.png").read_bytes()))
    with pytest.raises(AppError, match="^--strength is for models that denoise by a noise level"):
        client.predict(handle_file(str(images / "noisy.png")), "mnist", "auto", 0.5, api_name="/denoise")


def test_the_api_endpoint_refuses_a_decompression_bomb_in_one_line(server, images):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    client = Client(server.url, verbose=False)
    with pytest.raises(AppError, match=r"^bomb.png: refused: more pixels than Pillow's decompression-bomb limit"):
        client.predict(handle_file(str(images / "bomb.png")), "photo", "auto", 1, api_name="/denoise")


def test_only_a_loopback_address_is_taken_for_private():
    from dae_cli.ui.page import _loopback

    assert all(map(_loopback, ("127.0.0.1", "::1", "localhost", "127.0.0.2")))
    assert not any(map(_loopback, ("0.0.0.0", "::", "192.168.1.5", "example.org")))


def test_the_api_endpoint_is_documented_and_opens_no_path_it_is_given(server, images):
    import httpx
    from gradio_client import Client

    info = Client(server.url, verbose=False).view_api(print_info=False, return_format="dict")
    endpoint = info["named_endpoints"]["/denoise"]
    assert [p["parameter_name"] for p in endpoint["parameters"]] == ["image", "model", "sigma", "strength"]
    # A file on this machine named by path instead of uploaded, and a model named by path: refused.
    local = {"path": str(images / "noisy.png"), "meta": {"_type": "gradio.FileData"}}
    for data in ([local, "photo", "auto", 1], [None, str(ROOT / "dae_cli" / "trained_models" / "photo"), "auto", 1]):
        call = httpx.post(server.url + "gradio_api/call/denoise", json={"data": data}).json()
        events = httpx.get(server.url + f"gradio_api/call/denoise/{call['event_id']}").text
        assert "event: error" in events and "denoised" not in events, events
    for _ in range(100):  # the server's stderr arrives in its own time
        refusals = [line for line in server.stderr if "request refused" in line]
        if len(refusals) >= 2:
            break
        time.sleep(0.1)
    assert [line.startswith("error: request refused: ") for line in refusals] == [True, True], server.stderr


# The page, in a real browser.

needs_browser = pytest.mark.skipif(
    CHROMIUM is None and not REQUIRED, reason="no Chromium installed (apt-get install chromium)"
)


@pytest.fixture(scope="module")
def browser():
    if REQUIRED:
        import playwright.sync_api as playwright

        assert CHROMIUM is not None, "DAE_TEST_BROWSER=required, and no Chromium is installed"
    else:
        playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.requested = []
    page.on("request", lambda request: page.requested.append(request.url))
    page.goto(server.url)
    page.wait_for_selector("#upload")
    yield page
    context.close()


def upload(page, path: Path) -> None:
    page.locator("#upload input[type=file]").set_input_files(str(path))


def drag_to(page, slider: str, fraction: float) -> None:
    """Moves a slider with the mouse to `fraction` of its track and lets go."""
    box = page.locator(f"{slider} input[type=range]").bounding_box()
    page.mouse.click(box["x"] + box["width"] * fraction, box["y"] + box["height"] / 2)


def result_bytes(page, after: str | None = None) -> tuple[str, bytes]:
    """The download link's address once it is there (and differs from `after`), and its file."""
    link = page.locator("#result a").first
    link.wait_for(timeout=120_000)
    if after is not None:
        page.wait_for_function(
            "old => document.querySelector('#result a')?.getAttribute('href') !== old", arg=after, timeout=120_000
        )
    href = link.get_attribute("href")
    return href, page.request.get(href).body()


@needs_browser
def test_the_page_loads_and_offers_the_models(page, server):
    assert page.title() == "dae: denoise and compare"
    page.locator("#model input").click()
    offered = page.locator("ul[role=listbox] li").all_inner_texts()
    assert [text.strip("✓\n ") for text in offered] == ["mnist", "photo", "photo-gaussian", str(server.own_model)]
    assert page.locator("#model input").input_value() == str(server.own_model)  # the first --model
    assert page.get_by_text("Use via API").is_visible()  # the API's documentation, a click away


@needs_browser
def test_an_uploaded_noisy_image_comes_back_denoised(page, server, images, clean, tmp_path):
    upload(page, images / "noisy.png")
    href, data = result_bytes(page)
    assert href.endswith("/noisy.denoised.png")
    noisy = pixels((images / "noisy.png").read_bytes())
    assert psnr(clean, pixels(data)) > psnr(clean, noisy) + 5
    assert data == cli_denoise(images / "noisy.png", tmp_path, "-m", server.own_model)
    summary = page.locator("#summary").inner_text()
    assert "noisy.denoised.png: 64x64, model" in summary and " s\n" in summary  # the time it took
    level = float(summary.split("denoised by level ")[1].split(":")[0])
    assert level == pytest.approx(25, rel=0.15)  # photo's own map, its median
    assert f"denoised by level {level:.1f}: strength 1 x the model's own estimate" in summary
    assert page.locator("#compare img").count() == 2  # noisy and denoised, under the wipe
    assert {url.split("/")[2] for url in page.requested} == {f"127.0.0.1:{server.port}"}  # nothing from outside


@needs_browser
def test_the_noise_level_control_changes_the_result(page, images, clean):
    upload(page, images / "noisy.png")
    href, automatic = result_bytes(page)
    page.locator("#sigma-mode label", has_text="set").click()  # the level slider, at 25, now given
    href, at_25 = result_bytes(page, after=href)
    drag_to(page, "#sigma-level", 0.1)  # down to a few levels on the 0-255 scale
    href, low = result_bytes(page, after=href)
    level = float(page.locator("#sigma-level input[type=number]").input_value())
    assert 0 < level < 10
    assert f"strength 1 x the level given, {level:g}" in page.locator("#summary").inner_text()
    assert at_25 != automatic and low != at_25
    # Too low a level keeps noise: the result is worse than at the true level (by less
    # than a model that takes the level alone would be: photo's body sees the noise too).
    assert psnr(clean, pixels(low)) < psnr(clean, pixels(at_25)) - 1


@needs_browser
def test_the_strength_slider_changes_the_result(page, images, clean):
    upload(page, images / "noisy.png")
    href, full = result_bytes(page)
    drag_to(page, "#strength", 0.3)
    href, weaker = result_bytes(page, after=href)
    strength = float(page.locator("#strength input[type=number]").input_value())
    assert 0.2 < strength < 0.8
    assert f"strength {strength:g} x the model's own estimate" in page.locator("#summary").inner_text()
    # Less than the noise's own level keeps some of the noise: the result is worse.
    assert psnr(clean, pixels(weaker)) < psnr(clean, pixels(full)) - 0.3
    drag_to(page, "#strength", 0.0)  # 0: the image back, as it came
    href, same = result_bytes(page, after=href)
    assert float(page.locator("#strength input[type=number]").input_value()) == 0
    assert np.array_equal(pixels(same), pixels((images / "noisy.png").read_bytes()))


@needs_browser
def test_a_bad_upload_shows_one_line_not_a_traceback(page, server, images):
    upload(page, images / "bad.png")
    toast = page.locator(".toast-body")
    toast.wait_for(timeout=120_000)
    assert "bad.png: not an image Pillow can read" in toast.inner_text()
    assert "Traceback" not in toast.inner_text() and "Traceback" not in "".join(server.stderr)
    assert page.locator("#result a").count() == 0
