"""`dae evaluate`: held-out PSNR/SSIM before and after denoising, seeded, streamed."""

import numpy as np
import pytest
from conftest import assert_clean_error, json_lines, run_dae

SUMMARY_KEYS = {"mean", "p05", "p50", "p95"}
METRICS = ("psnr_noisy", "psnr_denoised", "ssim_noisy", "ssim_denoised")


def evaluate_json(model, *args):
    result = run_dae("--json", "evaluate", "-m", model, "--dataset", "mnist-sample", *args)
    assert result.returncode == 0, result.stderr
    (record,) = json_lines(result.stdout)
    return record


def quality(record):
    return {key: record[key] for key in METRICS}


@pytest.fixture(scope="module")
def seeded_report(trained_model):
    return evaluate_json(trained_model, "--seed", "3", "--limit", "300")


def test_reports_psnr_ssim_percentiles_and_speed(trained_model, seeded_report):
    record = seeded_report
    assert record["schema_version"] == 1
    assert record["model"] == str(trained_model)
    assert record["images"] == 300 and record["seed"] == 3
    assert record["noise"]["noise"] == "gaussian"  # the model's training noise by default
    for key in METRICS:
        summary = record[key]
        assert set(summary) == SUMMARY_KEYS, key
        assert summary["p05"] <= summary["p50"] <= summary["p95"], key
        assert all(np.isfinite(value) for value in summary.values()), key
    # a model trained for seconds already beats the noise on PSNR (not yet on SSIM)
    assert record["psnr_denoised"]["mean"] > record["psnr_noisy"]["mean"] + 3
    assert record["images_per_second"] > 0


def test_the_same_seed_gives_the_same_figures_whatever_the_batch_size(trained_model, seeded_report):
    again = evaluate_json(trained_model, "--seed", "3", "--limit", "300", "--batch-size", "7")
    # The noisy images are the same to the bit; the model's output may differ in the last
    # float digits with the batch size (oneDNN picks its convolution kernels by shape, seen
    # on AMD EPYC), far below any figure's printed precision.
    assert {k: again[k] for k in ("psnr_noisy", "ssim_noisy")} == {
        k: seeded_report[k] for k in ("psnr_noisy", "ssim_noisy")
    }
    for key in ("psnr_denoised", "ssim_denoised"):
        for stat, value in seeded_report[key].items():
            assert again[key][stat] == pytest.approx(value, rel=1e-5, abs=1e-6), (key, stat)
    other = evaluate_json(trained_model, "--seed", "4", "--limit", "300")
    assert other["psnr_noisy"] != seeded_report["psnr_noisy"]


def test_noise_flags_override_the_models_noise(trained_model, seeded_report):
    record = evaluate_json(trained_model, "--seed", "3", "--limit", "300", "--noise-std", "0.2")
    assert record["noise"]["noise_std"] == 0.2
    assert record["psnr_noisy"]["mean"] > seeded_report["psnr_noisy"]["mean"]


def test_table_output(trained_model):
    result = run_dae("evaluate", "-m", trained_model, "--dataset", "mnist-sample", "--limit", "100")
    assert result.returncode == 0, result.stderr
    for row in ("PSNR noisy", "PSNR denoised", "SSIM denoised", "images/s", "p05"):
        assert row in result.stdout


def test_in_process_matches_the_cli_and_streams_in_blocks(trained_model, seeded_report):
    from dae_cli.apply import evaluation
    from dae_cli.models.denoiser import ApplyOptions, load_denoiser

    model = load_denoiser(trained_model)
    config = evaluation.evaluation_config(model.manifest, {"dataset": "mnist-sample", "limit": 300})
    report = evaluation.evaluate(model, config, seed=3, options=ApplyOptions(batch_size=64))
    for key in METRICS:
        assert report[key] == pytest.approx(seeded_report[key])
    # noisy_set is exactly what evaluate scores, block by block
    from dae_cli.noise import NoiseSpec
    from dae_cli.training.data import load_training_data

    images = load_training_data(config).x_val
    noisy, clean, _ = evaluation.noisy_set(images, NoiseSpec.from_config(config), 3)
    first = next(evaluation.noisy_blocks(images, NoiseSpec.from_config(config), 3))
    np.testing.assert_array_equal(noisy[: len(first[0])], first[0])
    assert noisy.shape == clean.shape == (300, 28, 28, 1)


def test_bad_flags_and_missing_model_are_clean_errors(trained_model, tmp_path):
    assert_clean_error(run_dae("evaluate", "-m", tmp_path / "nope"), 1, "does not exist")
    assert_clean_error(
        run_dae("evaluate", "-m", trained_model, "--dataset", "mnist-sample", "--noise", "purple"),
        2,
        "'purple' is not one of 'gaussian'",
    )
