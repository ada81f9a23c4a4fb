"""Copies a trained model directory into the package as a built-in model.

    python scripts/ship_model.py /work/photo-gray-run photo-gray
    python scripts/ship_model.py /work/train/photo photo --float32   # trained in mixed bfloat16

The copy (`dae_cli/trained_models/NAME/`) keeps the encoder and decoder SavedModels, the
weights in `autoencoder.keras` without optimizer state, `history.csv` and the manifest
with its hashes made anew; it leaves out `samples.png`, which shows validation images
whose licence keeps them out of the package. `--float32` rebuilds a model trained in
mixed precision with float32 layers (the same weights), so it computes alike on every CPU.
The manifest states the model's cost (`gflops_per_megapixel`, `dae_cli/models/cost.py`),
counted here if the training did not.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dae_cli.models import (
    artifacts,  # noqa: E402
    builtin_models,
)

if __name__ == "__main__":
    source, name = Path(sys.argv[1]), sys.argv[2]
    if name not in builtin_models.SHIPPED_MODELS:
        sys.exit(f"{name} is not in builtin_models.SHIPPED_MODELS")
    manifest = artifacts.write_inference_copy(
        source, builtin_models.builtin_path(name), float32="--float32" in sys.argv[3:]
    )
    if "gflops_per_megapixel" not in manifest:  # trained before dae counted it
        from dae_cli.models.cost import gflops_per_megapixel
        from dae_cli.models.networks import split_autoencoder

        shipped = artifacts.load_keras_model(builtin_models.builtin_path(name) / artifacts.KERAS_MODEL)
        manifest["gflops_per_megapixel"] = gflops_per_megapixel(*split_autoencoder(shipped))
        artifacts.write_manifest(builtin_models.builtin_path(name), manifest)
    total = sum(path.stat().st_size for path in builtin_models.builtin_path(name).rglob("*") if path.is_file())
    print(f"{builtin_models.builtin_path(name)}: {len(manifest['files'])} files, {total / 1e6:.2f} MB")
