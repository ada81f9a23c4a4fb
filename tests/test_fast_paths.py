"""The faster paths of training and of applying a model compute what the plain ones do (issue 25).

A training step compiled with XLA (`jit_compile`, and always for emulated bfloat16:
`runtime.use_xla`) has the plain step's loss, within float noise; `denoise --precision
bfloat16` runs only where the CPU computes bfloat16 itself. Speed itself is measured in
bench/train_steps.py and the commands of BENCHMARKS.md, not here.
"""

from __future__ import annotations

import numpy as np
import pytest

from dae_cli.config import Config


def test_xla_is_used_for_emulated_bfloat16_and_jit_compile(cpu_flags):
    from dae_cli.training.runtime import use_xla

    cpu_flags("")  # AVX2 only: bfloat16 would be emulated
    assert use_xla(Config(precision="mixed_bfloat16"))
    assert not use_xla(Config(precision="float32"))
    assert not use_xla(Config(precision="auto"))  # auto is float32 here
    assert use_xla(Config(precision="float32", jit_compile=True))
    cpu_flags("avx512_bf16")  # native bfloat16: oneDNN computes it, as configured
    assert not use_xla(Config(precision="mixed_bfloat16"))
    assert use_xla(Config(precision="mixed_bfloat16", jit_compile=True))


def test_training_compiles_with_xla_where_bfloat16_is_emulated(cpu_flags):
    from dae_cli.backend import keras
    from dae_cli.training.model_setup import compile_model, new_model

    cpu_flags("")
    config = Config(architecture="conv", layer_filters=[8, 16], blocks_per_level=1, precision="mixed_bfloat16")
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model, optimizer = new_model(config, (16, 16, 3), steps=4, replicas=1, tell=lambda message: None)
        compile_model(model, optimizer, config, 3, steps_per_execution=1)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.jit_compile


def _losses(precision: str, jit_compile: bool, steps: int = 3) -> list[float]:
    """The losses of `steps` training steps of a small conv model on fixed data."""
    from dae_cli.backend import keras
    from dae_cli.models.networks import build_model

    keras.mixed_precision.set_global_policy(precision)
    try:
        keras.utils.set_random_seed(0)
        config = Config(
            architecture="conv", layer_filters=[8, 16], blocks_per_level=1, noise_level_input=True, loss="mae"
        )
        model, _, _ = build_model(config, (16, 16, 3))
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mae", jit_compile=jit_compile)
        rng = np.random.default_rng(0)
        noisy = rng.random((8, 16, 16, 4), np.float32)
        clean = rng.random((8, 16, 16, 3), np.float32)
        return [float(model.train_on_batch(noisy, clean)) for _ in range(steps)]
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_an_xla_step_has_the_plain_steps_loss(precision):
    plain, compiled = _losses(precision, False), _losses(precision, True)
    # bfloat16 keeps 8 bits of mantissa: its rounding differs a little between the two.
    tolerance = 1e-5 if precision == "float32" else 1e-3
    np.testing.assert_allclose(compiled, plain, rtol=tolerance)
    assert compiled[-1] < compiled[0]  # and it trains


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


def test_bfloat16_inference_is_refused_where_the_cpu_would_emulate_it(cpu_flags, tmp_path):
    from conftest import assert_clean_error, run_dae
    from PIL import Image

    cpu_flags("")  # AVX2 only
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "digit.png")
    result = run_dae("denoise", "digit.png", "-m", "mnist", "--precision", "bfloat16", cwd=tmp_path)
    assert_clean_error(result, 2, "--precision bfloat16", "AVX512-BF16 or AMX")
    assert not (tmp_path / "digit.denoised.png").exists()
    assert run_dae("denoise", "digit.png", "-m", "mnist", "--precision", "float32", cwd=tmp_path).returncode == 0


def test_bfloat16_inference_where_the_cpu_has_it_is_close_to_float32(cpu_flags, tmp_path, mnist_test_images):
    from conftest import run_dae
    from PIL import Image

    cpu_flags("avx512_bf16 amx_bf16")
    clean, noisy = mnist_test_images
    for i in range(8):
        Image.fromarray(np.rint(noisy[i, ..., 0] * 255).astype(np.uint8)).save(tmp_path / f"{i}.png")
    outputs = {}
    for precision in ("float32", "bfloat16"):
        done = run_dae("denoise", ".", "-m", "mnist", "--precision", precision, "-o", precision, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        outputs[precision] = np.stack(
            [np.asarray(Image.open(tmp_path / precision / f"{i}.denoised.png")) for i in range(8)]
        )
    target = np.rint(clean[:8, ..., 0] * 255)
    # bfloat16 keeps 8 bits of mantissa: a small cost, measured here on digits.
    cost = _psnr(outputs["float32"], target) - _psnr(outputs["bfloat16"], target)
    print(f"bfloat16 costs {cost:.3f} dB on 8 digits")
    assert abs(cost) < 0.5
    assert np.abs(outputs["bfloat16"].astype(int) - outputs["float32"]).mean() < 2
