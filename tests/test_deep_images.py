"""16-bit colour and alpha files (48-bit RGB, 64-bit RGBA, 32-bit gray and alpha) keep
every bit through `noise`, `denoise` and `decode`, with their profile and EXIF; TIFF
layouts dae does not read are refused in one line, and the file is left as it was.

The files are made here with tifffile and imagecodecs, the libraries dae reads them
with; Pillow, which cuts them to 8 bits, reads only their metadata.
"""

from __future__ import annotations

import functools
import hashlib

import imagecodecs
import numpy as np
import pytest
import tifffile
from conftest import assert_clean_error, json_lines, run_dae
from PIL import Image, ImageCms, ImageOps

from dae_cli.io import deep_images, image_io

SIZE = (24, 40)  # (height, width)
MAKE, ORIENTATION = 0x010F, 0x0112


@functools.cache
def srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def exif_bytes(orientation: int | None = None, exposure: bool = False) -> bytes:
    exif = Image.Exif()
    exif[MAKE] = "dae test camera"
    if orientation is not None:
        exif[ORIENTATION] = orientation
    if exposure:  # the Exif sub-directory, as every camera writes it
        exif.get_ifd(0x8769)[0x829A] = (1, 125)
    return exif.tobytes()


def samples(channels: int, seed: int = 0) -> np.ndarray:
    """uint16 (h, w, channels) whose colour values differ below 8 bits: all within one
    8-bit level (30,000 to 30,255), so a file cut to 8 bits loses them all."""
    rng = np.random.default_rng(seed)
    values = 30000 + rng.integers(0, 256, SIZE + (channels,))
    if channels in (2, 4):  # alpha over the whole range
        values[..., -1] = rng.integers(0, 65536, SIZE)
    return values.astype(np.uint16)


def write(path, values: np.ndarray, icc: bytes | None = None, exif: bytes | None = None):
    path.write_bytes(deep_images.encode(values, image_io.format_of(path), icc, exif))
    return path


def read(path) -> np.ndarray:
    if image_io.format_of(path) == "TIFF":
        values = tifffile.imread(path)
    else:
        values = imagecodecs.png_decode(path.read_bytes())
    return values if values.ndim == 3 else values[..., None]


NAMES = {"rgb48.png": 3, "rgb48.tif": 3, "rgba64.png": 4, "rgba64.tif": 4, "la32.png": 2, "la32.tif": 2}


@pytest.fixture
def deep_folder(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for seed, (name, channels) in enumerate(NAMES.items()):
        write(folder / name, samples(channels, seed), srgb_profile() if channels >= 3 else None, exif_bytes())
    return folder


def test_noise_at_zero_gives_back_every_bit_profile_and_exif(deep_folder, tmp_path):
    result = run_dae("--json", "noise", deep_folder, "-o", tmp_path / "out", "--noise-mean", "0", "--noise-std", "0")
    assert result.returncode == 0, result.stderr
    records = {r["input"].split("/")[-1]: r for r in json_lines(result.stdout)}
    for name, channels in NAMES.items():
        record = records[name]
        assert (record["format"], record["bit_depth"]) == (image_io.format_of(name), 16), record
        out = tmp_path / "out" / name.replace(".", ".noisy.")
        np.testing.assert_array_equal(read(out), read(deep_folder / name), err_msg=name)
        with tifffile.TiffFile(out) if name.endswith(".tif") else Image.open(out) as kept:
            if name.endswith(".tif"):
                tags = kept.pages[0].tags
                make, icc = tags["Make"].value, kept.pages[0].iccprofile
            else:
                make, icc = kept.getexif().get(MAKE), kept.info.get("icc_profile")
            assert make == "dae test camera" and icc == (srgb_profile() if channels >= 3 else None), name


def test_values_that_differ_below_8_bits_stay_apart_in_the_model_input(deep_folder):
    for name in ("rgb48.png", "rgb48.tif"):
        pixels, meta = image_io.read_for_model(deep_folder / name, 3)
        assert (meta.bit_depth, meta.channels, meta.mode) == (16, 3, "RGB;16")
        np.testing.assert_array_equal(np.rint(pixels * 65535), samples(3, list(NAMES).index(name)))
        assert len(np.unique(pixels)) > 200  # 8 bits would leave one or two values


def test_denoise_writes_16_bit_colour_and_carries_alpha_over(deep_folder, tmp_path):
    result = run_dae("--json", "denoise", deep_folder, "-m", "photo", "--sigma", "5", "-o", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    for record in json_lines(result.stdout):
        name = record["input"].split("/")[-1]
        assert (record["format"], record["bit_depth"]) == (image_io.format_of(name), 16), record
        source, out = read(deep_folder / name), read(tmp_path / "out" / name.replace(".", ".denoised."))
        assert out.dtype == np.uint16 and out.shape == source.shape, name
        colour = out[..., :-1] if NAMES[name] in (2, 4) else out
        assert np.any(colour % 257 != 0), name  # not 8-bit values scaled up
        assert np.abs(colour.astype(int) - source[..., : colour.shape[-1]]).mean() < 2000, name
        if NAMES[name] in (2, 4):
            np.testing.assert_array_equal(out[..., -1], source[..., -1], err_msg=name)


def test_decode_writes_the_16_bit_colour_file_encode_read(deep_folder, tmp_path):
    source = deep_folder / "rgb48.tif"
    encoded = run_dae("encode", source, "-m", "photo", "--sigma", "5", "-o", tmp_path / "z.npz")
    assert encoded.returncode == 0, encoded.stderr
    decoded = run_dae("--json", "decode", tmp_path / "z.npz", "-m", "photo", "-o", tmp_path / "dec")
    assert decoded.returncode == 0, decoded.stderr
    [record] = json_lines(decoded.stdout)
    assert (record["format"], record["bit_depth"]) == ("TIFF", 16)
    out = read(tmp_path / "dec" / "rgb48.decoded.tif")
    assert out.dtype == np.uint16 and out.shape == SIZE + (3,) and np.any(out % 257 != 0)


def test_exif_orientation_turns_a_16_bit_file_as_pillow_turns_an_8_bit_one(tmp_path):
    values = samples(3)
    write(tmp_path / "turned.png", values, exif=exif_bytes(orientation=6))
    pixels, meta = image_io.read_for_model(tmp_path / "turned.png", 3)
    eight_bit = Image.fromarray((values >> 8).astype(np.uint8))
    eight_bit.info["exif"] = exif_bytes(orientation=6)
    wanted = np.asarray(ImageOps.exif_transpose(eight_bit))
    np.testing.assert_array_equal(np.rint(pixels * 65535).astype(np.uint16) >> 8, wanted)
    exif = Image.Exif()
    exif.load(meta.exif)
    assert exif.get(ORIENTATION) == 1 and exif.get(MAKE) == "dae test camera"


def test_a_tiff_output_keeps_the_main_exif_and_says_what_it_dropped(tmp_path):
    source = tmp_path / "camera.jpg"
    Image.fromarray(samples(3)[..., :3].astype(np.uint8)).save(source, exif=exif_bytes(exposure=True))
    result = run_dae("noise", source, "--noise-std", "0.01", "-o", tmp_path / "out.tif")
    assert result.returncode == 0, result.stderr
    assert "Exif and GPS sub-directories" in result.stderr
    assert Image.open(tmp_path / "out.tif").getexif().get(MAKE) == "dae test camera"


def multi_page(path):
    with tifffile.TiffWriter(path) as tiff:
        for seed in range(3):
            tiff.write(samples(3, seed), photometric="rgb")
    return path


def many_channels(path):
    tifffile.imwrite(path, samples(5), photometric="minisblack", planarconfig="contig")
    return path


@pytest.mark.parametrize(
    "make, fragment",
    [(multi_page, "a TIFF of 3 pages; dae reads one image per file"), (many_channels, "a TIFF of 5 channels")],
)
def test_unsupported_tiff_layouts_are_one_line_errors_that_lose_nothing(tmp_path, make, fragment):
    bad = make(tmp_path / "bad.tif")
    before = hashlib.sha256(bad.read_bytes()).hexdigest()
    good = write(tmp_path / "good.png", samples(3))
    assert_clean_error(run_dae("noise", bad, "--noise-std", "0.01"), 1, fragment, "bad.tif")
    assert_clean_error(run_dae("denoise", bad, good, "-m", "photo", "--sigma", "5"), 3, fragment)
    assert (tmp_path / "good.denoised.png").exists() and not list(tmp_path.glob("bad.*.tif"))
    assert hashlib.sha256(bad.read_bytes()).hexdigest() == before


def test_a_reduced_resolution_thumbnail_is_not_a_second_page(tmp_path):
    path = tmp_path / "with-thumbnail.tif"
    with tifffile.TiffWriter(path) as tiff:
        tiff.write(samples(3), photometric="rgb")
        tiff.write(samples(3)[::4, ::4], photometric="rgb", subfiletype=1)  # reduced resolution
    pixels, meta = image_io.read_for_model(path, 3)
    assert pixels.shape == SIZE + (3,) and meta.bit_depth == 16


def test_deep_files_are_refused_over_the_decompression_bomb_limit(tmp_path, monkeypatch):
    path = write(tmp_path / "big.png", samples(3))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", SIZE[0] * SIZE[1] - 1)
    with pytest.raises(image_io.InputError, match="decompression-bomb"):
        image_io.read_image(path)


def test_pillows_luma_to_the_bit():
    from dae_cli.io import pixels

    rgb = np.random.default_rng(0).integers(0, 256, (32, 32, 3)).astype(np.uint8)
    wanted = np.asarray(Image.fromarray(rgb).convert("L"))
    np.testing.assert_array_equal(pixels.luma(rgb)[..., 0], wanted)
