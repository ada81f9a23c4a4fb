"""`dae ui`: a local web page to denoise an image and compare (the `ui` extra, Gradio).

`denoising` is what the page does with an upload, without Gradio: the models offered and
one image denoised by `apply.jobs.denoise`, the function `dae denoise` calls. `page` is
the Gradio page and its API endpoint, and `serve`, what the command runs.
"""
