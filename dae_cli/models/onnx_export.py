"""`dae export --format onnx`: the encoder, the decoder and the denoiser as ONNX files.

Works for any Keras encoder/decoder pair: the encoder may return one latent tensor or
a structure of several (feature maps at several scales, U-Net style), and the decoder
takes the same structure. Every `None` in the Keras input shapes stays dynamic in the
ONNX files: the batch always, height and width too for a fully convolutional model.

The tensors are named for ONNX Runtime users:

| file | inputs | outputs |
| --- | --- | --- |
| `encoder.onnx` | `images` | `latents` (or `latents_0`, `latents_1`, ...) |
| `decoder.onnx` | `latents` (or `latents_0`, ...) | `images` |
| `denoiser.onnx` | `images` | `denoised` |

The conversion is Keras' own `Model.export(format="onnx")` (tf2onnx underneath). ONNX
Runtime has no bfloat16 convolutions, so a model trained in mixed precision is
exported in float32, from the same float32 weights.

Example:
    >>> write_onnx(encoder, decoder, Path("onnx-out"))  # doctest: +SKIP
    ['encoder.onnx', 'decoder.onnx', 'denoiser.onnx']
"""

from __future__ import annotations

import logging
from pathlib import Path

FILES = ("encoder.onnx", "decoder.onnx", "denoiser.onnx")


def write_onnx(encoder, decoder, directory: Path) -> list[str]:
    """Writes the three ONNX files of `encoder` and `decoder` into `directory`."""
    from dae_cli.backend import tf

    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    models = onnx_models(float32_copy(encoder), float32_copy(decoder))
    for name, model in zip(FILES, models):
        path = Path(directory) / name
        specs = [tf.TensorSpec(tensor.shape, tf.float32, name=tensor.name) for tensor in model.inputs]
        model.export(str(path), format="onnx", verbose=False, input_signature=[specs] if len(specs) > 1 else specs)
        _name_batch_dimension(path)
    return list(FILES)


def onnx_models(encoder, decoder):
    """Keras models of the three files, with their inputs and outputs named as above."""
    from dae_cli.backend import keras

    if len(encoder.inputs) != 1:
        raise ValueError(f"the encoder takes {len(encoder.inputs)} inputs; one image input is expected")
    images = keras.Input(shape=encoder.inputs[0].shape[1:], name="images")
    latents = encoder(images)
    flat = keras.tree.flatten(latents)
    names = ["latents"] if len(flat) == 1 else [f"latents_{i}" for i in range(len(flat))]
    latent_inputs = [keras.Input(shape=tensor.shape[1:], name=name) for name, tensor in zip(names, flat)]
    decoded = decoder(keras.tree.pack_sequence_as(latents, latent_inputs))
    return (
        keras.Model(images, dict(zip(names, flat)), name="onnx_encoder"),
        keras.Model(latent_inputs, {"images": decoded}, name="onnx_decoder"),
        keras.Model(images, {"denoised": decoder(latents)}, name="onnx_denoiser"),
    )


def float32_copy(model):
    """`model` rebuilt with every layer in float32, holding the same weights.

    Mixed-precision layers keep their weights in float32 already, so nothing is lost.
    """
    return policy_copy(model, "float32")


def policy_copy(model, policy: str):
    """`model` rebuilt with every layer under the dtype policy `policy`, holding the same
    weights (`model` itself if every layer has it already)."""
    from dae_cli.backend import keras

    config = keras.saving.serialize_keras_object(model)
    if not _set_policy(config, policy):
        return model
    copy = keras.saving.deserialize_keras_object(config)
    copy.set_weights(model.get_weights())
    return copy


def _set_policy(config, policy: str) -> bool:
    """Sets every dtype policy in a serialized Keras config to `policy`; True if any was not."""
    changed = False
    if isinstance(config, dict):
        if config.get("class_name") in ("DTypePolicy", "FloatDTypePolicy") and isinstance(config.get("config"), dict):
            changed = config["config"].get("name") != policy
            config["config"]["name"] = policy
        for value in config.values():
            changed = _set_policy(value, policy) or changed
    elif isinstance(config, list):
        for value in config:
            changed = _set_policy(value, policy) or changed
    return changed


def _name_batch_dimension(path: Path) -> None:
    """Names the first, dynamic dimension of every input and output `batch`."""
    import onnx

    model = onnx.load(str(path))
    for value in [*model.graph.input, *model.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_param = "batch"
    onnx.save(model, str(path))
