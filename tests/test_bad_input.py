"""Bad input of every kind: a one-line error, a documented exit code, no traceback."""

import json
import shutil
import struct
import zlib

import numpy as np
import pytest
from conftest import FLOAT32, assert_clean_error, cli_env, json_lines, run_dae, run_dae_process, save_gray
from PIL import Image

OK, FAILURE, USAGE, PARTIAL = 0, 1, 2, 3


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def decompression_bomb(path, side=10_000):
    """A PNG header claiming side x side pixels (over Pillow's limit), with almost no data."""
    header = png_chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + header + png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + png_chunk(b"IEND", b"")
    )
    return path


@pytest.fixture
def digit(mnist_test_images):
    return mnist_test_images[1][3]  # a noisy digit, (28, 28, 1) in [0, 1]


@pytest.fixture
def bad_images(tmp_path, digit):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "empty.png").write_bytes(b"")
    good_bytes = save_gray(digit, folder / "tmp.png").read_bytes()
    (folder / "tmp.png").unlink()
    (folder / "truncated.png").write_bytes(good_bytes[: len(good_bytes) // 2])
    (folder / "text.png").write_text("this is not a PNG\n")
    decompression_bomb(folder / "bomb.png")
    locked = folder / "locked.png"
    save_gray(digit, locked).chmod(0)
    return {
        "empty.png": "empty file",
        "truncated.png": "corrupt or truncated",
        "text.png": "not an image",
        "bomb.png": "decompression-bomb limit",
        "locked.png": "permission denied",
    }, folder


def test_bad_images_are_reported_one_by_one_and_good_ones_processed(trained_model, bad_images, tmp_path, digit):
    reasons, folder = bad_images
    good = save_gray(digit, tmp_path / "good.png")
    result = run_dae_process("denoise", folder, good, "-m", trained_model, "-o", tmp_path / "out", unprivileged=True)
    assert_clean_error(result, PARTIAL, "5 of 6 input(s) failed")
    for name, reason in reasons.items():
        assert any(name in line and reason in line for line in result.stderr.splitlines()), (name, result.stderr)
    assert result.stdout.split() == [str(tmp_path / "out" / "good.denoised.png")]
    Image.open(result.stdout.strip()).load()


def test_json_gives_one_record_per_input_with_its_status(trained_model, bad_images, tmp_path, digit):
    _, folder = bad_images
    good = save_gray(digit, tmp_path / "good.png")
    result = run_dae("--json", "denoise", folder / "empty.png", good, "-m", trained_model, "-o", tmp_path / "out")
    assert result.returncode == PARTIAL
    records = json_lines(result.stdout)
    assert [(r["input"].split("/")[-1], r["status"]) for r in records] == [("empty.png", "error"), ("good.png", "ok")]
    assert all(r["schema_version"] == 1 for r in records)
    assert "empty file" in records[0]["error"] and records[1]["output"].endswith("good.denoised.png")


def test_fail_fast_stops_at_the_first_bad_input(trained_model, bad_images, tmp_path, digit):
    _, folder = bad_images
    good = save_gray(digit, tmp_path / "zz-good.png")
    result = run_dae("denoise", folder / "empty.png", good, "-m", trained_model, "-o", tmp_path / "out", "--fail-fast")
    assert_clean_error(result, FAILURE, "--fail-fast", "empty file")
    assert not (tmp_path / "out" / "zz-good.denoised.png").exists()


def test_single_bad_image_fails_with_exit_1(trained_model, bad_images):
    _, folder = bad_images
    assert_clean_error(run_dae("denoise", folder / "text.png", "-m", trained_model), FAILURE, "text.png: not an image")


@pytest.mark.parametrize(
    "make, args_after, fragment",
    [
        (lambda p: p, ["*.nothing"], "no files match"),
        (lambda p: (p / "empty_dir").mkdir() or p / "empty_dir", [], "no images"),
        (lambda p: p / "missing.png", [], "no such file or directory"),
    ],
)
def test_inputs_that_name_nothing_are_usage_errors(trained_model, tmp_path, make, args_after, fragment):
    target = make(tmp_path)
    spec = str(target / args_after[0]) if args_after else str(target)
    assert_clean_error(run_dae("denoise", spec, "-m", trained_model), USAGE, fragment)


def odd_images(digit, folder):
    """Valid images in every awkward mode, each with its 8-bit grayscale equivalent."""
    gray = np.rint(digit[..., 0] * 255).astype(np.uint8)
    image = Image.fromarray(gray)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(np.rot90(gray)).save(folder / "rotated.jpg", quality=100, exif=exif.tobytes())
    Image.fromarray(gray.astype(np.uint16) * 257).save(folder / "sixteen.png")
    image.convert("P").save(folder / "palette.png")
    image.convert("RGBA").save(folder / "rgba.png")
    image.convert("LA").save(folder / "la.png")
    image.convert("CMYK").save(folder / "cmyk.tiff")
    return image


def test_odd_but_valid_images_are_converted(trained_model, tmp_path, digit):
    folder = tmp_path / "odd"
    folder.mkdir()
    reference = odd_images(digit, folder)
    reference.save(tmp_path / "reference.png")
    result = run_dae("denoise", folder, tmp_path / "reference.png", "-m", trained_model, "-o", tmp_path / "out")
    assert result.returncode == OK, result.stderr
    images = {path.split("/")[-1]: Image.open(path) for path in result.stdout.split()}
    # The model's one channel, in each input's format and depth, alpha kept beside it.
    assert {name: (image.format, image.mode) for name, image in images.items()} == {
        "reference.denoised.png": ("PNG", "L"),
        "rotated.denoised.jpg": ("JPEG", "L"),
        "sixteen.denoised.png": ("PNG", "I;16"),
        "palette.denoised.png": ("PNG", "L"),
        "rgba.denoised.png": ("PNG", "LA"),
        "la.denoised.png": ("PNG", "LA"),
        "cmyk.denoised.tiff": ("TIFF", "L"),
    }
    outputs = {name: _gray8(image) for name, image in images.items()}
    expected = outputs.pop("reference.denoised.png")
    for name, denoised in outputs.items():
        assert denoised.shape == (28, 28), name
        tolerance = 12 if name.startswith(("rotated", "cmyk")) else 1  # JPEG / CMYK round-off
        assert np.abs(denoised - expected).max() <= tolerance, name


def _gray8(image: Image.Image) -> np.ndarray:
    """The gray channel of an L, LA or 16-bit image on the 8-bit scale, as int16."""
    pixels = np.asarray(image)
    if image.mode == "I;16":
        return np.rint(pixels / 257).astype(np.int16)
    return (pixels[..., 0] if pixels.ndim == 3 else pixels).astype(np.int16)


def test_a_1x1_image_is_padded_or_refused_by_size(trained_model, tmp_path):
    tiny = tmp_path / "tiny.png"
    Image.new("L", (1, 1), 200).save(tiny)
    padded = run_dae("denoise", tiny, "-m", trained_model)
    assert padded.returncode == OK, padded.stderr
    assert Image.open(padded.stdout.strip()).size == (1, 1)
    refused = run_dae("denoise", tiny, "-m", trained_model, "--no-tile", "--overwrite")
    assert_clean_error(refused, FAILURE, "image is 1x1, the model takes 28x28")


def test_bad_latents_are_reported_and_good_ones_decoded(trained_model, tmp_path):
    good = [0.1] * 16
    lines = [
        json.dumps({"source": "a.png", "latent": good}),
        json.dumps({"source": "short.png", "latent": [0.1] * 15}),
        '{"source": "nan.png", "latent": [NaN' + ", 0.0" * 15 + "]}",
        '{"source": "inf.png", "latent": [Infinity' + ", 0.0" * 15 + "]}",
        json.dumps({"source": "words.png", "latent": ["a"] * 16}),
        json.dumps({"source": "string.png", "latent": "0.1, 0.2"}),
        "{not json",
    ]
    result = run_dae("decode", "-", "-m", trained_model, "-o", tmp_path / "dec", input="\n".join(lines) + "\n")
    assert_clean_error(result, PARTIAL, "6 of 7")
    stderr = result.stderr
    assert "short.png: latent has 15 values, the model takes 16" in stderr
    assert "nan.png: latent holds NaN or infinity" in stderr
    assert "inf.png: latent holds NaN or infinity" in stderr
    assert "words.png: latent must be a list of numbers" in stderr
    assert "'latent' is not a list of numbers" in stderr
    assert "<stdin>:7: invalid JSON" in stderr
    assert result.stdout.split() == [str(tmp_path / "dec" / "a.decoded.png")]


def test_bad_latent_files(trained_model, tmp_path):
    csv = tmp_path / "l.csv"
    csv.write_text("source,z0\na.png," + ",".join(["0.5"] * 15) + ",oops\n")
    assert_clean_error(
        run_dae("decode", csv, "-m", trained_model, "-o", tmp_path / "d"), FAILURE, "l.csv:2: not a number: 'oops'"
    )
    empty = tmp_path / "empty.json"
    empty.write_text("")
    assert_clean_error(run_dae("decode", empty, "-m", trained_model, "-o", tmp_path / "d"), FAILURE, "empty file")
    not_list = tmp_path / "obj.json"
    not_list.write_text('{"latent": 3}')
    assert_clean_error(
        run_dae("decode", not_list, "-m", trained_model, "-o", tmp_path / "d"), FAILURE, "expected a JSON list"
    )
    numbers = tmp_path / "numbers.json"
    numbers.write_text("[1, 2, 3]")
    assert_clean_error(
        run_dae("decode", numbers, "-m", trained_model, "-o", tmp_path / "d"), FAILURE, "not a list of numbers"
    )


def test_model_directory_problems(model_copy, tmp_path, digit):
    image = save_gray(digit, tmp_path / "x.png")
    assert_clean_error(run_dae("denoise", image, "-m", tmp_path / "nowhere"), FAILURE, "does not exist")
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("hi")
    assert_clean_error(run_dae("denoise", image, "-m", tmp_path / "plain"), FAILURE, "not a dae model directory")

    manifest_path = model_copy / "dae.json"
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**manifest, "format_version": 99}))
    assert_clean_error(run_dae("denoise", image, "-m", model_copy), FAILURE, "format version 99", "upgrade dae")
    manifest_path.write_text(json.dumps(manifest))

    shutil.rmtree(model_copy / "decoder")
    assert_clean_error(run_dae("denoise", image, "-m", model_copy), FAILURE, "decoder/ is missing")
    encode = run_dae("encode", image, "-m", model_copy)  # encode needs only the encoder
    assert encode.returncode == OK, encode.stderr
    shutil.rmtree(model_copy / "encoder")
    assert_clean_error(run_dae("encode", image, "-m", model_copy), FAILURE, "encoder/ is missing")


def test_changed_model_file_is_refused_unless_no_verify(model_copy, tmp_path, digit):
    image = save_gray(digit, tmp_path / "x.png")
    manifest_path = model_copy / "dae.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["decoder/saved_model.pb"] = "0" * 64
    manifest_path.write_text(json.dumps(manifest))
    assert_clean_error(run_dae("denoise", image, "-m", model_copy), FAILURE, "does not match the sha256", "--no-verify")
    assert run_dae("denoise", image, "-m", model_copy, "--no-verify").returncode == OK


def test_encoder_and_decoder_with_different_latent_sizes_are_refused(model_copy, tmp_path, digit):
    from dae_cli.models import artifacts
    from dae_cli.models.networks import build_decoder

    shutil.rmtree(model_copy / "decoder")
    build_decoder((28, 28, 1), latent_dim=8).export(str(model_copy / "decoder"), verbose=False)
    manifest_path = model_copy / "dae.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"] = artifacts.hash_tree(model_copy)  # consistent hashes: only the sizes disagree
    manifest_path.write_text(json.dumps(manifest))
    image = save_gray(digit, tmp_path / "x.png")
    assert_clean_error(
        run_dae("denoise", image, "-m", model_copy),
        FAILURE,
        "latent sizes disagree: decoder input is 8, the manifest says 16",
    )


@pytest.fixture
def odd_sized_folder(tmp_path):
    folder = tmp_path / "thirty"
    folder.mkdir()
    for i in range(4):
        Image.new("L", (30, 30), i * 40).save(folder / f"{i}.png")
    return folder


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--epochs", "0"], "epochs must be positive"),
        (["--batch-size", "-5"], "batch_size must be positive"),
        (["--latent-dim", "0"], "latent_dim must be positive"),
        (["--filters", ""], "layer_filters must not be empty"),
        (["--filters", "32,x"], "--filters must be comma-separated integers"),
        (["--limit", "0"], "limit must be positive"),
        (["--seed", "-1"], "seed must be between 0 and"),
        (["--strategy", "bogus"], "Invalid value for '--strategy'"),
        (["--val-split", "1.5"], "val_split must be between 0 and 1"),
        (["--val-split", "0"], "val_split must be between 0 and 1"),
        (["--noise", "pink"], "'pink' is not one of 'gaussian'"),
        (["--epochs", "two"], "Invalid value for '--epochs'"),
    ],
)
def test_bad_training_flags_are_usage_errors(tmp_path, args, fragment):
    result = run_dae("train", "--dataset", "mnist-sample", *FLOAT32, "--out", tmp_path / "m", *args)
    assert_clean_error(result, USAGE, fragment)
    assert not (tmp_path / "m").exists()


def test_bad_config_files_are_usage_errors(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('latent_dims = 8\nepochs = "x"\n')
    assert_clean_error(
        run_dae("train", "--config", config, "--out", tmp_path / "m"), USAGE, "unknown key(s) latent_dims; valid keys:"
    )
    config.write_text('epochs = "x"\n')
    assert_clean_error(
        run_dae("train", "--config", config, "--out", tmp_path / "m"), USAGE, "epochs must be an integer"
    )


def test_image_size_not_divisible_by_the_strides(tmp_path, odd_sized_folder):
    result = run_dae("train", "--data", odd_sized_folder, "--out", tmp_path / "m", "--epochs", "1", *FLOAT32)
    assert_clean_error(result, USAGE, "image size 30x30 is not divisible by 4")


def test_traceback_only_with_debug(tmp_path):
    plain = run_dae("info", tmp_path / "nowhere")
    assert_clean_error(plain, FAILURE, "does not exist")
    for result in (
        run_dae("--debug", "info", tmp_path / "nowhere"),
        run_dae("info", tmp_path / "nowhere", env=cli_env(DAE_DEBUG="1")),
    ):
        assert result.returncode == FAILURE
        assert "Traceback" in result.stderr


@pytest.mark.parametrize(
    "flags, fragment",
    [
        (["--arch", "wavelet"], "'wavelet' is not one of 'dense', 'conv'"),
        (["--noise-std-range", "0.2,0.1"], "noise_std_range"),
        (["--noise-std-range", "-0.1,0.1"], "noise_std_range"),
        (["--noise-std-range", "0.1"], "LOW,HIGH"),
        (["--noise-std", "25/0"], "--noise-std"),
        (["--downsampling", "avgpool"], "'avgpool' is not one of 'strided', 'maxpool'"),
        (["--loss", "huber"], "'huber' is not one of 'mse', 'mae'"),
    ],
)
def test_bad_photo_flags_are_usage_errors(tmp_path, flags, fragment):
    result = run_dae("train", "--dataset", "mnist-sample", *FLOAT32, "--out", tmp_path / "m", *flags)
    assert_clean_error(result, 2, fragment)
    assert not (tmp_path / "m").exists()
