"""`dae ui`: a local web page to denoise an image and compare (the `ui` extra, Gradio).

`denoising` is what the page does with an upload, without Gradio: the models offered and
one image denoised by `apply.jobs.denoise`, the function `dae denoise` calls. `page` is
the Gradio page and its API endpoint, and `page.serve`, what the command runs; `serve`
here checks first that Gradio is installed.
"""

from __future__ import annotations

from dae_cli.errors import ExitCode
from dae_cli.extras import require


def serve(models: list[str], host: str, port: int, listener) -> None:
    """`dae ui`: without the `ui` extra, one line naming it (exit 2); else `page.serve`."""
    require("gradio", extra="ui", feature="dae ui", exit_code=ExitCode.USAGE)
    from dae_cli.ui.page import serve as serve_page

    serve_page(models, host, port, listener)
