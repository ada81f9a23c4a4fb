"""bench/gpu.py runs end to end on a CPU (its --quick mode), so it is ready for a GPU."""

import json
import subprocess
import sys

from conftest import ROOT, SAMPLE, cli_env


def test_gpu_benchmark_quick_mode_runs_on_a_cpu_and_reports_every_figure(tmp_path):
    env = cli_env(DAE_BENCH_MNIST=str(SAMPLE), DAE_BENCH_RESULTS=str(tmp_path))
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "gpu.py"),
            "--quick",
            "--epochs",
            "1",
            "--limit",
            "512",
            "--test-images",
            "200",
            "--files",
            "40",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((tmp_path / "gpu-quick.json").read_text())
    for contender in ("reference", "default"):
        figures = record["summary"][contender]
        assert figures["error"] is None
        assert figures["training_images_per_second"] > 0
        assert figures["denoise_images_per_second"] > 0
        assert figures["denoise_megapixels_per_second"] == figures["denoise_images_per_second"] * 784 / 1e6
    assert record["summary"]["default"]["training_vs_reference"] > 0
    assert record["denoise_files"]["files"] == 40 and record["denoise_files"]["images_per_second"] > 0
    assert "reference" in result.stdout and "dae denoise DIR" in result.stdout


def test_gpu_benchmark_refuses_a_full_run_without_a_gpu(tmp_path):
    env = cli_env(DAE_BENCH_MNIST=str(SAMPLE), DAE_BENCH_RESULTS=str(tmp_path), CUDA_VISIBLE_DEVICES="")
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu.py")], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 2 and "no GPU" in result.stderr


def test_keras_only_gpu_benchmark_quick_mode_runs_and_reports_every_figure(tmp_path):
    """bench/gpu_keras.py is what runs on GPU machines without TensorFlow; here it runs
    on the TensorFlow backend, so a change to dae's model or compile settings that
    breaks it shows before a GPU session finds it."""
    env = cli_env(DAE_BENCH_RESULTS=str(tmp_path))
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "gpu_keras.py"),
            "--quick",
            "--mnist",
            str(SAMPLE),
            "--epochs",
            "1",
            "--limit",
            "256",
            "--contender",
            "b256:batch_size=256,learning_rate=0.004",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((tmp_path / "gpu-keras-quick.json").read_text())
    assert set(record["summary"]) == {"reference", "dae-float32", "dae-bfloat16", "b256"}
    for figures in record["summary"].values():
        assert figures["median_images_per_second"] > 0 and len(figures["test_psnr"]) == 1
    assert record["summary"]["reference"]["training_vs_reference"] == 1
    for precision in ("float32", "mixed_bfloat16"):
        assert all(size["megapixels_per_second"] > 0 for size in record["denoise_conv"][precision].values())
