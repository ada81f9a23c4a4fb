"""The Gradio page of `dae ui`, its API endpoint, and `serve`, what the command runs.

The page: an upload (any format dae reads), the model (the built-in ones and each
`--model`), for a model that denoises by a noise level the strength and the level (auto
or a value), noisy and
denoised in Gradio's `ImageSlider` (a wipe between them over the full-resolution
images, wheel to zoom, drag to pan), what the estimate and the clock said, and the
denoised file to download. Uploading, changing a control or pressing Denoise runs
`denoising.denoise_upload`; so does the API endpoint `denoise` (file in, file out) that
`gradio_client` calls. All of them go one at a time, and a failure is one line on the
page (`gr.Error`), never a traceback.

Gradio is told to reach nothing outside this machine: no analytics (set before it is
imported), no share link, no server-side rendering process, no MCP server, no run
history kept in the browser; its fonts are files of its own.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
import time
import traceback
from pathlib import Path

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # read when Gradio is imported

import gradio as gr  # noqa: E402 - after the analytics setting
from gradio.utils import get_upload_folder  # noqa: E402

from dae_cli.errors import DaeError  # noqa: E402
from dae_cli.io import image_io  # noqa: E402
from dae_cli.noise_level import AUTO  # noqa: E402
from dae_cli.ui.denoising import Models, Result, Workspace, denoise_upload, upload_limit  # noqa: E402

TITLE = "dae: denoise and compare"
FILE_TYPES = sorted(image_io.IMAGE_SUFFIXES)
CONCURRENCY = {"concurrency_id": "denoise", "concurrency_limit": 1}  # one image at a time, page and API
INTRO = (
    "Drop or pick a noisy image. Drag the slider over it to wipe between noisy and denoised; "
    "scroll to zoom, drag to pan. The file offered below is what `dae denoise FILE -m MODEL` writes."
)
API_HELP = (
    "Denoises one image (PNG, JPEG, TIFF, WebP or BMP) as `dae denoise IMAGE -m MODEL --sigma SIGMA "
    "--strength STRENGTH` does and returns the file it writes, byte for byte. model: a name the page "
    "offers; for models that denoise by a noise level, sigma: auto (the default: estimated) or a level, "
    "15 on the 0-255 scale, 15/255 or 0.06, and strength: times that level (default 1; 0 gives the image back)."
)


def _denoise(models: Models, workspace: Workspace, upload, model: str, sigma: str, strength, progress) -> Result:
    """`denoise_upload` with the page's progress bar; any failure one line on the page."""

    def windows(done: int, planned: int) -> None:
        progress((done, planned), desc="denoising", unit="windows")

    if upload is None:
        raise gr.Error("no image: drop or pick one", print_exception=False)
    progress(0, desc="reading")
    try:
        return denoise_upload(upload, Path(get_upload_folder()), models, model, sigma, strength, workspace, windows)
    except DaeError as error:
        raise gr.Error(str(error), print_exception=False) from None
    except Exception as error:  # the last line of defence: never a traceback on the page
        raise gr.Error(f"unexpected {type(error).__name__}: {error}", print_exception=False) from None


def _page_handler(models: Models, workspace: Workspace):
    def on_page(upload, model, strength, sigma_mode, sigma_level, progress=gr.Progress()):
        if upload is None:
            return None, None, INTRO
        if not models.uses_noise_level(model):  # the controls are hidden: as when no flag is given
            strength, sigma_mode = 1, "auto"
        sigma = f"{sigma_level}/255" if sigma_mode == "set" else AUTO
        result = _denoise(models, workspace, upload, model, sigma, strength, progress)
        previews = (str(result.noisy_preview), str(result.denoised_preview))
        return previews, str(result.output), result.summary()

    return on_page


def _api_handler(models: Models, workspace: Workspace):
    def denoise(image, model, sigma, strength, progress=gr.Progress()):
        return str(_denoise(models, workspace, image, model, sigma, strength, progress).output)

    return denoise


def _level_controls(visible: bool) -> dict:
    """Strength and sigma, shown for a model that denoises by a noise level."""
    strength = gr.Slider(
        0,
        2,
        value=1,
        step=0.05,
        label="Strength",
        visible=visible,
        elem_id="strength",
        info="times the noise level: 0 gives the image back; below 1 keeps texture, above 1 smooths",
    )
    sigma_mode = gr.Radio(
        ["auto", "set"],
        value="auto",
        label="Noise level",
        visible=visible,
        elem_id="sigma-mode",
        info="auto: estimated from the image (or by the model itself), as dae denoise does",
    )
    sigma_level = gr.Slider(
        0,
        75,
        value=25,
        step=0.5,
        label="sigma (0-255 scale)",
        info="lower keeps more texture",
        interactive=False,
        visible=visible,
        elem_id="sigma-level",
    )
    return {"strength": strength, "sigma_mode": sigma_mode, "sigma_level": sigma_level}


def _controls(models: Models) -> dict:
    """The page's components, by name."""
    shown: dict = {}
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            shown["upload"] = gr.File(
                label="Noisy image (PNG, JPEG, TIFF, WebP, BMP)", file_types=FILE_TYPES, elem_id="upload"
            )
            shown["model"] = gr.Dropdown(models.names, value=models.default, label="Model", elem_id="model")
            shown.update(_level_controls(models.uses_noise_level(models.default)))
            shown["run"] = gr.Button("Denoise", variant="primary", elem_id="run")
        with gr.Column(scale=3):
            shown["compare"] = gr.ImageSlider(
                label="noisy | denoised",
                type="filepath",
                format="png",
                interactive=False,
                max_height=720,
                elem_id="compare",
            )
            shown["summary"] = gr.Markdown(INTRO, elem_id="summary")
            shown["result"] = gr.File(
                label="Denoised file, as dae denoise writes it", interactive=False, elem_id="result"
            )
    return shown


def _page_events(shown: dict, models: Models, workspace: Workspace) -> None:
    run = {
        "fn": _page_handler(models, workspace),
        "inputs": [shown[name] for name in ("upload", "model", "strength", "sigma_mode", "sigma_level")],
        "outputs": [shown[name] for name in ("compare", "result", "summary")],
        "api_visibility": "private",
        "trigger_mode": "always_last",
        **CONCURRENCY,
    }
    private = {"api_visibility": "private", "queue": False}

    level_controls = [shown[name] for name in ("strength", "sigma_mode", "sigma_level")]

    def level_controls_shown(model):
        return [gr.update(visible=models.uses_noise_level(model))] * len(level_controls)

    shown["upload"].upload(**run)
    shown["run"].click(**run)
    shown["upload"].clear(lambda: (None, None, INTRO), None, run["outputs"], **private)
    shown["model"].input(level_controls_shown, shown["model"], level_controls, **private).then(**run)
    shown["sigma_mode"].input(
        lambda mode: gr.update(interactive=mode == "set"), shown["sigma_mode"], shown["sigma_level"], **private
    ).then(**run)
    shown["sigma_level"].release(**run)
    shown["strength"].release(**run)


def _api(models: Models, workspace: Workspace) -> None:
    """The endpoint `denoise` for `gradio_client`, on components the page never shows."""
    with gr.Column(visible=False):
        image = gr.File(label="image", file_types=FILE_TYPES)
        model = gr.Dropdown(models.names, value=models.default, label="model")
        sigma = gr.Textbox(AUTO, label="sigma")
        strength = gr.Number(1, label="strength", minimum=0)
        denoised = gr.File(label="denoised")
        trigger = gr.Button("denoise")
    trigger.click(
        _api_handler(models, workspace),
        [image, model, sigma, strength],
        denoised,
        api_name="denoise",
        api_description=API_HELP,
        **CONCURRENCY,
    )


def build_page(models: Models, workspace: Workspace) -> gr.Blocks:
    """The page and its API endpoint; files Gradio keeps (uploads, results) go after an hour."""
    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=(3600, 3600)) as page:
        gr.Markdown(f"## {TITLE}")
        _page_events(_controls(models), models, workspace)
        _api(models, workspace)
    return page


def _check_address(host: str, port: int) -> None:
    """A one-line error now if `host:port` cannot be listened on (Gradio's own says less)."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as error:
        raise DaeError(f"cannot listen on {host}:{port}: {error.strerror or error} (choose another --port or --host)")


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class _OneLineTracebacks:
    """Stands in for the `traceback` module where Gradio reports a request it refused
    (a model it does not offer, a file that was not uploaded): one line on stderr, as
    every dae error is; the traceback with --debug."""

    def __init__(self, listener):
        self.listener = listener

    def print_exc(self, *args, **kwargs) -> None:
        error = sys.exc_info()[1]
        self.listener.error(f"request refused: {type(error).__name__}: {error}")

    def __getattr__(self, name: str):
        return getattr(traceback, name)


def _quiet_gradio(listener) -> None:
    if os.environ.get("DAE_DEBUG", "") in ("", "0"):
        import gradio.queueing
        import gradio.routes

        gradio.queueing.traceback = gradio.routes.traceback = _OneLineTracebacks(listener)


def serve(model_specs: list[str], host: str, port: int, listener) -> None:
    """`dae ui`: serves the page on `host:port` until Ctrl-C or SIGTERM (exit 130)."""
    models = Models(model_specs)
    _check_address(host, port)
    _quiet_gradio(listener)
    workspace = Workspace()
    page = build_page(models, workspace)
    try:
        _, url, _ = page.launch(
            server_name=host,
            server_port=port,
            share=False,
            quiet=True,
            prevent_thread_lock=True,
            max_file_size=upload_limit(),
            footer_links=["api"],
            run_history=False,
            ssr_mode=False,
            mcp_server=False,
            enable_monitoring=False,
            show_error=True,
        )
        listener.info(f"dae ui: serving the page at {url} (Ctrl-C stops it)")
        if not _loopback(host):
            listener.warn(f"--host {host}: anyone who can reach this machine can use the page (it has no password)")
        while True:
            time.sleep(0.5)
    finally:
        page.close(verbose=False)
        workspace.close()
