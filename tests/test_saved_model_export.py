"""`dae export --format saved-model`: one SavedModel that serves encode, decode and
denoise with TensorFlow alone, giving what the CLI gives."""

import subprocess
import sys

import numpy as np
from conftest import cli_env, json_lines, run_dae, save_gray
from PIL import Image


def test_export_serves_encode_decode_and_denoise_like_the_cli(trained_model, tmp_path, mnist_test_images):
    _, noisy = mnist_test_images
    paths = [save_gray(noisy[i], tmp_path / f"n{i}.png") for i in range(4)]
    exported = tmp_path / "serving" / "1"
    result = run_dae("export", trained_model, "--format", "saved-model", "-o", exported)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(exported)

    encoded = json_lines(run_dae("encode", *paths, "-m", trained_model).stdout)
    denoised = run_dae("denoise", *paths, "-m", trained_model, "-o", tmp_path / "den").stdout.split()
    inputs = np.stack([np.asarray(Image.open(p), np.float32)[..., None] / 255 for p in paths])
    np.save(tmp_path / "inputs.npy", inputs)
    script = f"""
import numpy as np, sys, tensorflow as tf
served = tf.saved_model.load({str(exported)!r})
x = np.load({str(tmp_path / "inputs.npy")!r})
z = served.encode(x).numpy()
np.save({str(tmp_path / "z.npy")!r}, z)
np.save({str(tmp_path / "d.npy")!r}, served.denoise(x).numpy())
np.save({str(tmp_path / "r.npy")!r}, served.decode(z).numpy())
assert not any(name.startswith('dae_cli') for name in sys.modules)
print(*sorted(served.signatures))  # the signature_defs TensorFlow Serving offers
"""
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=cli_env(), cwd="/")
    assert loaded.returncode == 0, loaded.stderr
    assert {"encode", "decode", "denoise", "serving_default"} <= set(loaded.stdout.split())
    np.testing.assert_allclose(np.load(tmp_path / "z.npy"), [r["latent"] for r in encoded], atol=1e-4)
    cli_denoised = np.stack([np.asarray(Image.open(p), np.float32)[..., None] / 255 for p in denoised])
    np.testing.assert_allclose(np.load(tmp_path / "d.npy"), cli_denoised, atol=1.01 / 255)
    np.testing.assert_allclose(np.load(tmp_path / "r.npy"), np.load(tmp_path / "d.npy"), atol=1e-5)

    refused = run_dae("export", trained_model, "-o", exported)
    assert refused.returncode == 2 and "--overwrite" in refused.stderr
