"""The fast paths: `denoise` of many files (tf.data for plain PNGs, Pillow for the rest,
writes in a thread of their own), and training without needless work around `fit`."""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
import sys
import threading

import numpy as np
import pytest
from conftest import FLOAT32, cli_env
from PIL import Image, PngImagePlugin

from dae_cli.apply import evaluation, outcomes, pipeline, reading
from dae_cli.errors import DaeError
from dae_cli.io import image_io
from dae_cli.models import artifacts
from dae_cli.models.denoiser import ApplyOptions, DenseDenoiser, load_denoiser


@pytest.fixture(scope="module")
def loaded(trained_model):
    return load_denoiser(trained_model)


@pytest.fixture(autouse=True)
def pipeline_for_any_count(monkeypatch):
    """The tf.data stage even for the few files a test has (normally from 256 on)."""
    monkeypatch.setattr(reading, "PIPELINE_MIN_FILES", 1)


@pytest.fixture
def digit(mnist_test_images):
    return np.rint(mnist_test_images[1][5][..., 0] * 255).astype(np.uint8)


def expected_output(loaded, gray_uint8: np.ndarray) -> np.ndarray:
    denoised = loaded.denoise(gray_uint8[None, ..., None].astype(np.float32) / 255.0)[0, ..., 0]
    return np.clip(np.rint(denoised * 255), 0, 255).astype(np.uint8)


def run(loaded, paths, out, fail_fast=False, overwrite=False, **options):
    outputs = outcomes.output_paths(paths, out, "denoised")
    log = outcomes.OutcomeLog(lambda outcome: None, fail_fast)
    pipeline.denoise_files(loaded, paths, outputs, ApplyOptions(**options), log=log, overwrite=overwrite)
    return log, outputs


def test_every_way_a_gray_digit_can_be_stored_denoises_to_the_same_pixels(loaded, digit, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    image = Image.fromarray(digit)
    gamma = PngImagePlugin.PngInfo()
    gamma.add(b"gAMA", (45455).to_bytes(4, "big"))
    image.save(folder / "plain.png")  # tf.data path
    image.save(folder / "gamma.png", pnginfo=gamma)  # tf.data path: neither decoder applies gamma
    image.save(folder / "transparent.png", transparency=0)  # tf.data path, tRNS ignored as by Pillow
    image.convert("RGB").save(folder / "rgb.png")  # Pillow path (luma of equal channels)
    image.convert("P").save(folder / "palette.png")  # Pillow path
    (folder / "upper.PNG").write_bytes((folder / "plain.png").read_bytes())
    paths = sorted(folder.iterdir())
    log, outputs = run(loaded, paths, tmp_path / "out")
    assert [outcome.ok for outcome in log.outcomes] == [True] * len(paths)
    expected = expected_output(loaded, digit)
    for output in outputs:
        np.testing.assert_array_equal(np.asarray(Image.open(output)), expected, err_msg=output.name)


def test_plain_pngs_with_a_profile_or_exif_keep_them(loaded, digit, tmp_path):
    """tf.data would decode them alike but not keep their metadata: Pillow reads them."""
    from PIL import ImageCms

    profile = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    profile[16:20] = b"GRAY"  # copied as bytes: the header is what is checked
    exif = Image.Exif()
    exif[0x010F] = "scanner"
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(digit).save(folder / "icc.png", icc_profile=bytes(profile))
    Image.fromarray(digit).save(folder / "exif.png", exif=exif.tobytes())
    Image.fromarray(digit).save(folder / "plain.png")
    paths = sorted(folder.iterdir())
    log, outputs = run(loaded, paths, tmp_path / "out")
    assert [(o.format, o.bit_depth) for o in log.outcomes] == [("PNG", 8)] * 3
    written = {output.name: Image.open(output) for output in outputs}
    assert written["icc.denoised.png"].info.get("icc_profile") == bytes(profile)
    assert written["exif.denoised.png"].getexif().get(0x010F) == "scanner"
    expected = expected_output(loaded, digit)
    for output in outputs:
        np.testing.assert_array_equal(np.asarray(Image.open(output)), expected, err_msg=output.name)


def test_outcomes_come_in_input_order_whichever_path_each_input_takes(loaded, digit, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(digit).save(folder / "a.png")
    good = (folder / "a.png").read_bytes()
    (folder / "b-empty.png").write_bytes(b"")
    Image.fromarray(digit).convert("RGB").save(folder / "c-rgb.png")
    (folder / "d-truncated.png").write_bytes(good[: len(good) // 2])  # a plain header, then too little
    Image.fromarray(digit).save(folder / "e.png")
    Image.fromarray(np.tile(digit, (1, 2))).save(folder / "f-wide.png")  # other size: tiles
    (folder / "g-text.png").write_text("not a PNG")
    Image.fromarray(digit).save(folder / "h.png")
    paths = sorted(folder.iterdir())
    log, outputs = run(loaded, paths, tmp_path / "out", batch_size=2)
    assert [outcome.input for outcome in log.outcomes] == [str(path) for path in paths]
    assert [outcome.ok for outcome in log.outcomes] == [True, False, True, False, True, True, False, True]
    assert "empty file" in log.outcomes[1].error and "corrupt or truncated" in log.outcomes[3].error
    assert log.exit_code() == 3
    assert Image.open(outputs[5]).size == (56, 28)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        o.name for o, outcome in zip(outputs, log.outcomes) if outcome.ok
    )


def test_fail_fast_writes_nothing_after_the_first_failure(loaded, digit, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a", "c", "d"):
        Image.fromarray(digit).save(folder / f"{name}.png")
    (folder / "b.png").write_bytes(b"")
    with pytest.raises(DaeError, match="--fail-fast"):
        run(loaded, sorted(folder.iterdir()), tmp_path / "out", fail_fast=True, batch_size=2)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.denoised.png"]


def test_an_existing_output_is_an_error_and_is_kept_unless_overwrite(loaded, digit, tmp_path):
    source = tmp_path / "x.png"
    Image.fromarray(digit).save(source)
    target = tmp_path / "x.denoised.png"
    target.write_bytes(b"precious")
    log, _ = run(loaded, [source], None)
    assert "exists; pass --overwrite" in log.outcomes[0].error and target.read_bytes() == b"precious"
    log, _ = run(loaded, [source], None, overwrite=True)
    assert log.outcomes[0].ok
    np.testing.assert_array_equal(np.asarray(Image.open(target)), expected_output(loaded, digit))


def test_a_png_with_exif_rotation_is_turned_as_pillow_turns_it(loaded, digit, tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(np.ascontiguousarray(np.rot90(digit))).save(tmp_path / "rotated.png", exif=exif.tobytes())
    log, outputs = run(loaded, [tmp_path / "rotated.png"], tmp_path / "out")
    assert log.outcomes[0].ok
    np.testing.assert_array_equal(np.asarray(Image.open(outputs[0])), expected_output(loaded, digit))


def test_the_stages_ask_a_model_only_for_the_denoiser_interface(loaded, digit, tmp_path):
    class Plain(DenseDenoiser):  # no SavedModels: only the manifest and a denoise
        denoise = staticmethod(loaded.denoise)

    Image.fromarray(digit).save(tmp_path / "x.png")
    log, outputs = run(Plain(tmp_path, loaded.manifest), [tmp_path / "x.png"], tmp_path / "out")
    assert log.outcomes[0].ok
    np.testing.assert_array_equal(np.asarray(Image.open(outputs[0])), expected_output(loaded, digit))


def test_a_few_files_skip_the_tf_data_stage_with_the_same_result(loaded, digit, tmp_path, monkeypatch):
    monkeypatch.setattr(reading, "PIPELINE_MIN_FILES", 3)
    monkeypatch.setattr(reading, "plain_png_batches", None)  # would fail if called
    for name in ("a", "b"):
        Image.fromarray(digit).save(tmp_path / f"{name}.png")
    log, outputs = run(loaded, [tmp_path / "a.png", tmp_path / "b.png"], tmp_path / "out")
    assert [outcome.ok for outcome in log.outcomes] == [True, True]
    np.testing.assert_array_equal(np.asarray(Image.open(outputs[1])), expected_output(loaded, digit))


@pytest.mark.parametrize("shape", [(5, 7, 1), (4, 3, 3), (28, 28, 1)])
def test_png_bytes_are_read_back_exactly_by_pillow(shape, monkeypatch):
    pixels = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    monkeypatch.setattr(image_io, "_IDAT_PIECE", 7)  # many IDAT chunks, split mid-stream
    read = np.asarray(Image.open(io.BytesIO(image_io.png_bytes(pixels))))
    np.testing.assert_array_equal(read, pixels[..., 0] if shape[-1] == 1 else pixels)


def test_written_files_get_the_permissions_open_gives(loaded, digit, tmp_path):
    Image.fromarray(digit).save(tmp_path / "x.png")
    old = os.umask(0o027)
    try:
        _, outputs = run(loaded, [tmp_path / "x.png"], tmp_path / "out")
    finally:
        os.umask(old)
    assert outputs[0].stat().st_mode & 0o777 == 0o640
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".dae-tmp")]


# Training: the closing metrics and the noisy input's figures.


def test_closing_metrics_come_from_the_last_epochs_validation(trained_model):
    manifest = artifacts.read_manifest(trained_model)
    history = artifacts.read_history(trained_model / artifacts.HISTORY)
    assert manifest["metrics"]["val_loss"] == pytest.approx(history[-1]["val_loss"], rel=1e-6)
    assert len(manifest["metrics"]["noisy_fingerprint"]) == 64


def test_evaluate_reuses_the_noisy_figures_of_the_same_noisy_set_only(loaded, trained_model, monkeypatch):
    from dae_cli import noise

    config = evaluation.evaluation_config(loaded.manifest, {})
    computed = evaluation.evaluate(loaded, config, seed=0)
    saved = loaded.manifest["metrics"]
    assert computed["psnr_noisy"] == pytest.approx(saved["psnr_noisy"])
    assert computed["ssim_noisy"] == pytest.approx(saved["ssim_noisy"])
    marked = type(loaded)(loaded.directory, json.loads(json.dumps(loaded.manifest)), loaded.encoder, loaded.decoder)
    marked.manifest["metrics"]["psnr_noisy"] = {"mean": -1.0, "p05": -1.0, "p50": -1.0, "p95": -1.0}
    assert evaluation.evaluate(marked, config, seed=0)["psnr_noisy"]["mean"] == -1.0  # taken from the manifest
    other_seed = evaluation.evaluate(marked, config, seed=1)
    assert other_seed["psnr_noisy"]["mean"] > 0  # another noisy set: computed
    assert other_seed["psnr_denoised"]["mean"] == pytest.approx(computed["psnr_denoised"]["mean"], abs=0.3)
    monkeypatch.setattr(noise, "NOISE_REVISION", noise.NOISE_REVISION + 1)
    assert evaluation.evaluate(marked, config, seed=0)["psnr_noisy"]["mean"] > 0  # new noise code: computed


def test_training_under_a_live_progress_bar(tmp_path):
    """On a terminal the bar is fed from Keras' callback thread; training still stops
    and saves as it does without one."""
    master, slave = pty.openpty()
    env = cli_env(TERM="xterm", COLUMNS="100")
    env.pop("NO_COLOR")
    captured = bytearray()

    def drain():
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                return
            if not chunk:
                return
            captured.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "dae_cli",
            "train",
            "--dataset",
            "mnist-sample",
            "--limit",
            "600",
            "--epochs",
            "2",
            *FLOAT32,
            "--out",
            str(tmp_path / "m"),
        ],
        stdout=subprocess.PIPE,
        stderr=slave,
        env=env,
        timeout=300,
    )
    os.close(slave)
    reader.join(timeout=10)
    os.close(master)
    text = captured.decode(errors="replace")
    assert process.returncode == 0, text
    assert "epoch 2/2" in text and "val_loss" in text
    assert artifacts.read_manifest(tmp_path / "m")["epochs_done"] == 2


def test_large_images_are_handed_on_as_their_windows_fill_a_batch_not_per_256_files(tmp_path):
    """Memory is bounded by the windows in flight: six 84x84 images on a 28x28 model
    with batches of 8 windows are handed to the writer one by one (each has more than 8
    windows), not all together once the files are done."""

    class Halving(DenseDenoiser):
        calls: list = []

        def denoise(self, batch, levels=None):
            self.calls.append(len(batch))
            return batch * 0.5

    model = Halving(tmp_path, {"image_shape": [28, 28, 1], "latent_dim": 4})
    options = ApplyOptions(batch_size=8)
    images = np.random.default_rng(0).random((6, 84, 84, 1), dtype=np.float32)
    works = [pipeline.Work(model.plan_denoise(image, options)) for image in images]
    handed_on = list(pipeline.run_plans(zip(range(6), works), model.denoise, model.batch_limit(options)))
    assert [[index for index, _ in finished] for finished in handed_on] == [[i] for i in range(6)]
    assert max(model.calls) <= 8
    for image, work in zip(images, works):
        np.testing.assert_allclose(work.plan.result(), image * 0.5, atol=1e-5)


def test_a_second_run_in_one_process_makes_its_output_folder_again(loaded, digit, tmp_path):
    """What a run remembers of the folders it made is the run's: a library user (or a
    test) that removes the output folder between two runs gets it made again."""
    import shutil

    Image.fromarray(digit).save(tmp_path / "x.png")
    for _ in range(2):
        log, outputs = run(loaded, [tmp_path / "x.png"], tmp_path / "out")
        assert log.outcomes[0].ok, log.outcomes[0].error
        assert outputs[0].exists()
        shutil.rmtree(tmp_path / "out")


def test_small_images_are_read_ahead_and_large_ones_only_when_asked_for():
    """A folder of large photographs holds none in memory waiting; small ones are read
    up to `depth` ahead of the model."""
    import time

    sizes = ["large", "large", "small", "small", "small", "large", "small"]
    # Nothing read ahead of a large one; two after a small one (the large image at 5
    # was already read when a small one came before it).
    expected = [0, 0, 2, 2, 2, 1, 0]
    read: list[str] = []
    ahead = []
    results = reading.prefetched(lambda s: read.append(s) or s, sizes, depth=2, large=lambda s: s == "large")
    for position, _ in enumerate(results):
        deadline = time.monotonic() + 10  # however slow the machine, the reads asked for come
        while len(read) < position + 1 + expected[position] and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)  # and a read not asked for would have come by now
        ahead.append(len(read) - (position + 1))
    assert read == sizes
    assert ahead == expected
