"""`dae noise`: seeded noisy copies of clean images, to make demos and test sets.

Image i of a run gets the stateless seed (seed, i), so its noise does not depend on
which other images are in the run. Each copy keeps its source's format, bit depth,
alpha and metadata, as `dae denoise` keeps them.
"""

from __future__ import annotations

from pathlib import Path

from dae_cli.apply.outcomes import Outcome, OutcomeLog, write_image
from dae_cli.errors import DaeError
from dae_cli.io import image_io
from dae_cli.io.files import OutputExistsError
from dae_cli.io.pixels import to_model


def noise_files(
    paths: list[Path],
    outputs: list[Path],
    noise,
    seed: int,
    *,
    overwrite: bool = False,
    log: OutcomeLog,
    options: image_io.OutputOptions = image_io.OutputOptions(),
) -> None:
    """Writes a noisy copy of each clean image, each in its own channels, with the
    source's format, bit depth, alpha and metadata as `denoise_files` keeps them.

    Image i gets the stateless seed (seed, i), so its noise does not depend on which
    other images are in the run or in what batches they go.
    """
    from dae_cli.backend import tf
    from dae_cli.noise import add_noise

    for index, (path, output) in enumerate(zip(paths, outputs)):
        try:
            if output.exists() and not overwrite:
                raise OutputExistsError(f"{output} exists; pass --overwrite to replace it")
            samples, meta = image_io.read_image(path)
        except DaeError as error:
            log.add(Outcome(str(path), error=str(error)))
            continue
        pixels = to_model(samples, meta.channels)
        samples = None
        noisy = add_noise(pixels, tf.constant([seed, index], tf.int64), noise).numpy()
        log.add(write_image(str(path), noisy, output, meta, overwrite, options))
