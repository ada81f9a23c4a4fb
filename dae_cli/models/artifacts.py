"""The model directory: what `dae train` writes, and how the other commands load it.

    DIR/
      encoder/            SavedModel (Model.export), signature `serve`: image -> latent
      decoder/            SavedModel, signature `serve`: latent -> image
      autoencoder.keras   full Keras model with optimizer state, for --resume
      dae.json            manifest: versions, config, shapes, metrics, sha256 of files
      history.csv         one row per epoch
      samples.png         clean / noisy / denoised validation images

A SavedModel can hold arbitrary TensorFlow ops, so a model directory is code: the
manifest's hashes are checked before anything is loaded, and `autoencoder.keras` is
loaded with `safe_mode=True`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import platform
from pathlib import Path
from typing import Any

from dae_cli import __version__
from dae_cli.errors import ModelError
from dae_cli.io.files import write_bytes_atomic

FORMAT_VERSION = 1
MANIFEST = "dae.json"
ENCODER, DECODER, KERAS_MODEL = "encoder", "decoder", "autoencoder.keras"
HISTORY, SAMPLES = "history.csv", "samples.png"
HISTORY_FIELDS = ("epoch", "loss", "val_loss", "seconds")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def hash_tree(root: Path) -> dict[str, str]:
    """sha256 of every file under `root` but the manifest, by POSIX relative path."""
    return {
        path.relative_to(root).as_posix(): sha256_file(path)
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != MANIFEST
    }


def history_csv(rows: list[dict[str, Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=HISTORY_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode()


def read_history(path: Path) -> list[dict[str, Any]]:
    with open(path, newline="") as handle:
        return [
            {"epoch": int(row["epoch"]), **{k: float(row[k]) for k in HISTORY_FIELDS[1:]}}
            for row in csv.DictReader(handle)
        ]


def versions() -> dict[str, str]:
    from dae_cli.backend import keras, tf

    return {
        "dae": __version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
    }


def write_model_dir(
    directory: Path,
    autoencoder,
    encoder,
    decoder,
    manifest: dict[str, Any],
    history: list[dict[str, Any]],
    samples_png: bytes | None,
) -> dict[str, Any]:
    """Writes every artifact into `directory` (a fresh staging directory); returns the manifest."""
    directory = Path(directory)
    encoder.export(str(directory / ENCODER), verbose=False)
    decoder.export(str(directory / DECODER), verbose=False)
    autoencoder.save(directory / KERAS_MODEL)
    (directory / HISTORY).write_bytes(history_csv(history))
    if samples_png is not None:
        (directory / SAMPLES).write_bytes(samples_png)
    manifest = {"format_version": FORMAT_VERSION, **manifest, "files": hash_tree(directory)}
    write_manifest(directory, manifest, overwrite=False)
    return manifest


def write_manifest(directory: Path, manifest: dict[str, Any], overwrite: bool = True) -> None:
    text = json.dumps(manifest, indent=2, sort_keys=False) + "\n"
    write_bytes_atomic(Path(directory) / MANIFEST, text.encode(), overwrite=overwrite)


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """The manifest of a model directory, or a `ModelError` saying what is wrong."""
    directory = Path(directory)
    if not directory.exists():
        from dae_cli.models.builtin_models import BUILTIN_MODELS

        raise ModelError(
            f"model directory {directory} does not exist; train one with 'dae train --out {directory}' "
            f"or pass -m MODEL (built-in models: {', '.join(BUILTIN_MODELS)})"
        )
    if not directory.is_dir():
        raise ModelError(f"{directory} is not a directory, so not a dae model")
    path = directory / MANIFEST
    if not path.exists():
        raise ModelError(f"{directory} is not a dae model directory (no {MANIFEST})")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelError(f"{path}: unreadable manifest ({error})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("format_version"), int):
        raise ModelError(f"{path}: not a dae manifest (no format_version)")
    if manifest["format_version"] > FORMAT_VERSION:
        raise ModelError(
            f"{directory} has model format version {manifest['format_version']}, newer than "
            f"this dae {__version__} reads ({FORMAT_VERSION}); upgrade dae"
        )
    for key in ("image_shape", "latent_dim", "files", "config"):
        if key not in manifest:
            raise ModelError(f"{path}: manifest lacks {key!r}")
    return manifest


def verify_files(directory: Path, manifest: dict[str, Any], parts: tuple[str, ...]) -> None:
    """Checks the sha256 of every manifest file under `parts` (names or subdirectories)."""
    directory = Path(directory)
    for part in parts:
        if not (directory / part).exists():
            raise ModelError(f"{directory} is incomplete: {part} is missing")
        listed = {
            name: digest for name, digest in manifest["files"].items() if name == part or name.startswith(part + "/")
        }
        if not listed:
            raise ModelError(f"{directory}: manifest lists no files for {part}")
        for name, expected in listed.items():
            path = directory / name
            if not path.is_file():
                raise ModelError(f"{directory} is incomplete: {name} is missing")
            if sha256_file(path) != expected:
                raise ModelError(
                    f"{path} does not match the sha256 in {MANIFEST}: the model was changed "
                    "after training; refusing to load it (--no-verify loads it anyway)"
                )


def load_saved_models(directory: Path, manifest: dict[str, Any], parts: tuple[str, ...], verify: bool = True) -> dict:
    """The SavedModels in `parts` ({"encoder": ..., "decoder": ...}), after checking that
    they are there and, unless told not to, their sha256 against the manifest."""
    for part in parts:
        if not (directory / part / "saved_model.pb").exists():
            raise ModelError(f"{directory} is incomplete: {part}/ is missing or holds no SavedModel")
    if verify:
        verify_files(directory, manifest, parts)
    from dae_cli.backend import tf

    loaded = {}
    for part in parts:
        try:
            loaded[part] = tf.saved_model.load(str(directory / part))
        except Exception as error:
            raise ModelError(f"{directory / part}: cannot load SavedModel ({type(error).__name__})") from None
    return loaded


def check_latent_sizes(directory: Path, loaded: dict, latent_dim: int) -> None:
    """The encoder's output and the decoder's input must both be the manifest's latent size."""
    sizes = {}
    if ENCODER in loaded:
        sizes["encoder output"] = _signature_dim(loaded[ENCODER], output=True)
    if DECODER in loaded:
        sizes["decoder input"] = _signature_dim(loaded[DECODER], output=False)
    for name, size in sizes.items():
        if size is not None and size != latent_dim:
            raise ModelError(f"{directory}: latent sizes disagree: {name} is {size}, the manifest says {latent_dim}")


def _signature_dim(saved_model, output: bool) -> int | None:
    try:
        signature = saved_model.signatures["serving_default"]
        if output:
            spec = next(iter(signature.structured_outputs.values()))
        else:
            spec = next(iter(signature.structured_input_signature[1].values()))
        return int(spec.shape[-1])
    except Exception:
        return None


def write_inference_copy(source: Path, target: Path, float32: bool = False) -> dict[str, Any]:
    """Copies a model directory without its optimizer state and without `samples.png`
    (it shows validation images), with the manifest's hashes made anew: what `dae`
    ships as a built-in model. `autoencoder.keras` keeps the weights, for `dae export`.

    With `float32`, a model trained in mixed precision is copied with every layer in
    float32 (the same float32 weights), so it computes alike on every CPU, fast on
    those without native bfloat16; the manifest records `inference_precision`. The
    SavedModels are then made anew from `autoencoder.keras`, so `source` needs only that
    (a training checkpoint committed without its SavedModels, as `training/photo` is).
    """
    import shutil

    from dae_cli.backend import keras
    from dae_cli.io.files import commit_directory, staging_directory

    source, target = Path(source), Path(target)
    manifest = read_manifest(source)
    verify_files(source, manifest, (KERAS_MODEL,) if float32 else (ENCODER, DECODER, KERAS_MODEL))
    trained = load_keras_model(source / KERAS_MODEL)
    with staging_directory(target) as staging:
        if float32:
            from dae_cli.models.networks import compose, split_autoencoder
            from dae_cli.models.onnx_export import float32_copy

            encoder, decoder = (float32_copy(part) for part in split_autoencoder(trained))
            encoder.export(str(staging / ENCODER), verbose=False)
            decoder.export(str(staging / DECODER), verbose=False)
            trained = compose(encoder, decoder, encoder.inputs[0].shape[1:])
            manifest = {**manifest, "inference_precision": "float32"}
        else:
            for part in (ENCODER, DECODER):
                shutil.copytree(source / part, staging / part)
        shutil.copy2(source / HISTORY, staging / HISTORY)
        # The same layers in a model that was never compiled: saved without optimizer state.
        keras.Model(trained.inputs, trained.outputs, name=trained.name).save(staging / KERAS_MODEL)
        manifest = {**manifest, "files": hash_tree(staging)}
        write_manifest(staging, manifest, overwrite=False)
        commit_directory(staging, target)
    return manifest


def load_keras_model(path: Path, compile: bool = False):
    """`autoencoder.keras` with `safe_mode=True`: no arbitrary Python code is run.

    With `compile`, its loss and optimizer state come back too (`dae train --resume`);
    the caller imports the module of a custom loss first (it registers it with Keras).
    """
    from dae_cli.backend import keras
    from dae_cli.models import networks  # noqa: F401 - registers dae's own layers with Keras

    try:
        return keras.models.load_model(path, safe_mode=True, compile=compile)
    except Exception as error:
        raise ModelError(f"{path}: cannot load Keras model ({type(error).__name__}: {error})") from None
