"""`dae train --tensorboard DIR`: scalars and sample images per epoch in event files."""

import io
from collections import defaultdict

import numpy as np
from conftest import FLOAT32, assert_clean_error, cli_env, run_dae, run_dae_process
from PIL import Image

from dae_cli.models import artifacts


def read_events(log_dir):
    """{(run, tag): [(step, value)]}: scalars as floats, images as (width, height, PNG bytes)."""
    from dae_cli.backend import tf

    found = defaultdict(list)
    for path in sorted(log_dir.rglob("events.out.tfevents.*")):
        run = path.parent.relative_to(log_dir).as_posix()
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                tensor = tf.make_ndarray(value.tensor)
                kind = value.metadata.plugin_data.plugin_name
                found[(run, value.tag)].append((event.step, float(tensor) if kind == "scalars" else tuple(tensor)))
    return found


def test_tensorboard_logs_loss_quality_and_samples_per_epoch(tmp_path):
    out, logs = tmp_path / "model", tmp_path / "tb"
    result = run_dae(
        "train",
        "--dataset",
        "mnist-sample",
        "--limit",
        "300",
        "--epochs",
        "2",
        *FLOAT32,
        "--out",
        out,
        "--tensorboard",
        logs,
    )
    assert result.returncode == 0, result.stderr
    events = read_events(logs)
    for run, tag in [
        ("train", "epoch_loss"),
        ("validation", "epoch_loss"),
        ("validation", "epoch_psnr"),
        ("validation", "epoch_ssim"),
        ("validation", "samples"),
    ]:
        assert [step for step, _ in events[(run, tag)]] == [0, 1], (run, tag, sorted(events))

    manifest = artifacts.read_manifest(out)
    history = artifacts.read_history(out / artifacts.HISTORY)
    values = lambda run, tag: [value for _, value in events[(run, tag)]]  # noqa: E731
    assert np.allclose(values("train", "epoch_loss"), [row["loss"] for row in history], atol=1e-6)
    assert np.allclose(values("validation", "epoch_loss"), [row["val_loss"] for row in history], atol=1e-6)
    # The last epoch's figures are the ones the finished model reports.
    assert abs(values("validation", "epoch_psnr")[-1] - manifest["metrics"]["psnr_denoised"]["mean"]) < 1e-3
    assert abs(values("validation", "epoch_ssim")[-1] - manifest["metrics"]["ssim_denoised"]["mean"]) < 1e-3

    width, height, png = events[("validation", "samples")][-1][1]
    grid = Image.open(io.BytesIO(png))
    # clean, noisy and denoised rows of 8 digits, 2-pixel gaps: as samples.png
    assert grid.size == (int(width), int(height)) == (8 * 28 + 7 * 2, 3 * 28 + 2 * 2)
    assert grid.size == Image.open(out / "samples.png").size


def test_tensorboard_without_the_extra_is_a_one_line_error(tmp_path):
    # A Python where the tensorboard package cannot be imported, as after a plain install.
    blocker = tmp_path / "site"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text("import sys\nsys.modules['tensorboard'] = None\n")
    env = cli_env(PYTHONPATH=str(blocker))
    result = run_dae_process(
        "train",
        "--dataset",
        "mnist-sample",
        "--epochs",
        "1",
        "--out",
        tmp_path / "m",
        "--tensorboard",
        tmp_path / "tb",
        env=env,
    )
    assert_clean_error(result, 1, 'pip install "dae-cli[tensorboard]"')
    assert len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "m").exists() and not (tmp_path / "tb").exists()
