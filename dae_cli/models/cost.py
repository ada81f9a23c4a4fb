"""What a model costs to run: floating-point operations per megapixel of image.

Counted by TensorFlow's profiler on the graph of `decoder(encoder(x))` for one image
(a multiply-add is two operations, as the denoising literature counts them: FFDNet's
colour network is about 430 GFLOPs per megapixel). A fully convolutional model costs
the same per pixel at any size, so one `PROBE` x `PROBE` image measures it; a dense
model is counted at its own size. `dae train` writes the figure in the manifest, and
`dae info` shows it.

Example:
    >>> gflops_per_megapixel(encoder, decoder, channels=4)   # doctest: +SKIP
    170.6
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras

PROBE = 256


def gflops_per_megapixel(encoder: keras.Model, decoder: keras.Model) -> float:
    """GFLOPs of one pass of `decoder(encoder(x))`, per megapixel of `x`."""
    from dae_cli.backend import tf

    height, width, channels = encoder.input_shape[1:]
    height, width = height or PROBE, width or PROBE
    spec = tf.TensorSpec([1, height, width, channels], tf.float32)
    graph = tf.function(lambda x: decoder(encoder(x))).get_concrete_function(spec).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    profile = tf.compat.v1.profiler.profile(graph, options=options)
    return round(profile.total_float_ops / (height * width) * 1e6 / 1e9, 1)
