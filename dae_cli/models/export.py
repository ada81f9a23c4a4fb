"""`dae export`: one SavedModel with `encode`, `decode` and `denoise` endpoints, for serving.

The model directory keeps the encoder and the decoder apart; a server wants one
artifact. `export_model` rebuilds both halves from `autoencoder.keras` (loaded with
`safe_mode=True` after its hash is checked) and writes them with Keras'
`ExportArchive`, whose endpoints are all visible to TensorFlow Serving as signatures;
`denoise` is also `serving_default`.

`--format onnx` writes `encoder.onnx`, `decoder.onnx` and `denoiser.onnx` instead
(see `onnx_export`), for ONNX Runtime; it needs the `onnx` extra.

Example:
    $ dae export dae-model --format saved-model -o serving/dae/1
    $ saved_model_cli show --dir serving/dae/1 --all
    $ dae export dae-model --format onnx -o dae-onnx
"""

from __future__ import annotations

from pathlib import Path

from dae_cli.errors import UsageError
from dae_cli.io.files import commit_directory, staging_directory
from dae_cli.models import artifacts

FORMATS = ("saved-model", "onnx")
ENDPOINTS = ("denoise", "encode", "decode")


def export_model(
    model_dir: Path, out: Path, format: str = "saved-model", *, verify: bool = True, overwrite: bool = False
) -> dict:
    """Writes `model_dir` to `out` in `format` (one of `FORMATS`); returns what it wrote."""
    if format not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, got {format!r}")
    if format == "onnx":
        from dae_cli.extras import require

        require("onnx", "tf2onnx", extra="onnx", feature="dae export --format onnx")
    out = Path(out)
    marker = "saved_model.pb" if format == "saved-model" else "denoiser.onnx"
    if out.exists() and not overwrite:
        raise UsageError(f"{out} exists; pass --overwrite to replace it")
    if out.exists() and not (out / marker).exists() and any(out.iterdir()):
        raise UsageError(f"{out} is a non-empty directory that is not a {format} export; refusing to replace it")
    from dae_cli.models.denoiser import open_model

    model = open_model(model_dir)
    manifest = model.manifest
    if verify:
        artifacts.verify_files(Path(model_dir), manifest, (artifacts.KERAS_MODEL,))
    autoencoder = artifacts.load_keras_model(Path(model_dir) / artifacts.KERAS_MODEL)

    from dae_cli.models.networks import split_autoencoder

    encoder, decoder = split_autoencoder(autoencoder)
    with staging_directory(out) as staging:
        if format == "onnx":
            from dae_cli.models.onnx_export import write_onnx

            written = {"files": write_onnx(encoder, decoder, staging)}
        else:
            written = {"endpoints": _write_saved_model(autoencoder, encoder, decoder, model, staging)}
        commit_directory(staging, out)
    return {"output": str(out), "format": format, **written}


def _write_saved_model(autoencoder, encoder, decoder, model, staging: Path) -> list[str]:
    from dae_cli.backend import keras, tf

    images = tf.TensorSpec((None, *model.image_shape), tf.float32, name="images")
    latents = tf.TensorSpec((None, *model.latent_shape), tf.float32, name="latents")
    archive = keras.export.ExportArchive()
    archive.track(autoencoder)
    archive.add_endpoint(
        "denoise", lambda x: decoder(encoder(x, training=False), training=False), input_signature=[images]
    )
    archive.add_endpoint("encode", lambda x: encoder(x, training=False), input_signature=[images])
    archive.add_endpoint("decode", lambda z: decoder(z, training=False), input_signature=[latents])
    archive.write_out(str(staging), verbose=False)
    return list(ENDPOINTS)
