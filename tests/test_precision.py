"""Both precision paths, on any CPU: float32 and mixed bfloat16 train, denoise and export.

`--precision auto` picks mixed bfloat16 only where the CPU computes it natively, so the
other tests fix float32 (conftest.FLOAT32) and this file asks for each precision by name:
on a CPU without AVX512-BF16 or AMX, TensorFlow emulates bfloat16 (slower, the same
results). What `auto` picks is tested as a function with faked CPU flags, in
test_contracts.py::test_precision_auto_follows_the_hardware.
"""

import numpy as np
import pytest
from conftest import run_dae, save_gray

from dae_cli.models import artifacts
from dae_cli.models.denoiser import load_denoiser

# `dae denoise` of a mixed-bfloat16 model computes in bfloat16; its ONNX export computes
# the same weights in float32. Measured on models of this size: up to 3e-3 apart
# (README, "Serving"); float32 models agree to 1e-4.
EXPORT_TOLERANCE = {"float32": 1e-4, "mixed_bfloat16": 1e-2}


@pytest.fixture(scope="module", params=["float32", "mixed_bfloat16"])
def model_of_each_precision(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param) / "model"
    result = run_dae(
        "train",
        "--dataset",
        "mnist-sample",
        "--limit",
        "1024",
        "--epochs",
        "2",
        "--precision",
        request.param,
        "--out",
        out,
    )
    assert result.returncode == 0, result.stderr
    return request.param, out


def test_each_precision_trains_its_layers_in_it_and_denoises(model_of_each_precision, mnist_test_images):
    precision, out = model_of_each_precision
    manifest = artifacts.read_manifest(out)
    assert manifest["config"]["precision"] == precision
    keras_model = artifacts.load_keras_model(out / "autoencoder.keras")
    convolution = keras_model.get_layer("encoder").layers[1]
    assert convolution.dtype_policy.name == precision
    assert convolution.compute_dtype == ("bfloat16" if precision == "mixed_bfloat16" else "float32")
    assert convolution.kernel.dtype == "float32"  # mixed precision keeps float32 weights

    clean, noisy = mnist_test_images
    denoised = load_denoiser(out).denoise(noisy[:32])
    assert denoised.dtype == np.float32 and denoised.shape == noisy[:32].shape
    from dae_cli.apply.metrics import psnr

    gain = float(np.mean(psnr(clean[:32], denoised)) - np.mean(psnr(clean[:32], noisy[:32])))
    assert gain > 3.0, f"{precision}: denoising gained only {gain:.2f} dB"


def test_onnx_export_of_each_precision_agrees_with_dae_within_its_tolerance(
    model_of_each_precision, mnist_test_images, tmp_path
):
    import onnxruntime as ort  # the onnx extra, installed with the tests (README)

    precision, out = model_of_each_precision
    _, noisy = mnist_test_images
    exported = tmp_path / "onnx"
    assert run_dae("export", out, "--format", "onnx", "-o", exported).returncode == 0
    denoiser = ort.InferenceSession(str(exported / "denoiser.onnx"), providers=["CPUExecutionProvider"])
    images = noisy[:16]
    difference = np.abs(denoiser.run(None, {"images": images})[0] - load_denoiser(out).denoise(images)).max()
    assert difference <= EXPORT_TOLERANCE[precision], (precision, difference)


def test_dae_denoise_of_each_precision_writes_what_the_model_computes(
    model_of_each_precision, mnist_test_images, tmp_path
):
    from PIL import Image

    precision, out = model_of_each_precision
    _, noisy = mnist_test_images
    path = save_gray(noisy[0], tmp_path / "digit.png")
    result = run_dae("denoise", path, "-m", out)
    assert result.returncode == 0, result.stderr
    written = np.asarray(Image.open(result.stdout.strip()), np.float32) / 255
    pixels = np.asarray(Image.open(path), np.float32)[None, ..., None] / 255
    expected = load_denoiser(out).denoise(pixels)[0, ..., 0]
    assert np.abs(written - expected).max() <= 0.5 / 255 + 1e-6
