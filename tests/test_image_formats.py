"""Files as people have them: bit depth, format, colour profile, EXIF and alpha kept.

The value path (read, write) is checked exactly on its own (`image_io` with no model in
between, and `dae noise` with zero noise); the built-in `photo` model shows the whole
command keeps each file's kind.
"""

from __future__ import annotations

import functools
import io

import imagecodecs
import numpy as np
import pytest
from conftest import assert_clean_error, json_lines, run_dae
from PIL import Image, ImageCms

from dae_cli.io import image_io

USAGE = 2
SIZE = (40, 56)  # (height, width) as stored; EXIF orientation 6 turns it to 56x40
MAKE = 0x010F
ORIENTATION = 0x0112


@functools.cache
def srgb_profile() -> bytes:
    """One sRGB profile for the whole run: a new one carries a new creation time."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def gray_profile() -> bytes:
    """A profile whose header says GRAY: Pillow copies profiles as bytes, unread."""
    profile = bytearray(srgb_profile())
    profile[16:20] = b"GRAY"
    return bytes(profile)


def exif_bytes(orientation: int | None = 6) -> bytes:
    exif = Image.Exif()
    exif[MAKE] = "dae test camera"
    if orientation is not None:
        exif[ORIENTATION] = orientation
    return exif.tobytes()


def pixels_of(mode: str, seed: int = 0) -> np.ndarray:
    """A smooth image with noise in `mode`'s array form; 16-bit values use their low bits."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[: SIZE[0], : SIZE[1]]
    base = 0.2 + 0.6 * (x / SIZE[1]) * (0.5 + 0.5 * y / SIZE[0])
    if mode == "I;16":
        return np.clip(base * 65535 + rng.normal(0, 3000, SIZE), 0, 65535).astype(np.uint16)
    if mode == "F":
        return np.clip(base * 255 + rng.normal(0, 12, SIZE), 0, 255).astype(np.float32)
    colour = np.stack([base, base[::-1], 1 - base][: 3 if mode.startswith("RGB") else 1], axis=-1)
    values = np.clip(colour * 255 + rng.normal(0, 12, colour.shape), 0, 255).astype(np.uint8)
    if mode in ("LA", "RGBA"):
        values = np.concatenate(
            [values, (np.arange(SIZE[1]) * 4 % 256).astype(np.uint8)[None, :, None].repeat(SIZE[0], 0)], -1
        )
    return values[..., 0] if mode == "L" else values


def save(
    path, mode: str, *, icc: bool = True, exif: bool = True, orientation: int | None = 6, seed: int = 0, **settings
):
    image = Image.fromarray(pixels_of(mode, seed), mode=None)
    assert image.mode == mode
    if icc:
        settings["icc_profile"] = gray_profile() if mode in ("L", "LA", "I;16", "F") else srgb_profile()
    if exif:
        settings["exif"] = exif_bytes(orientation)
    image.save(path, **settings)
    return path


def read_back(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


# --- The value path, with no model: every mode in every format ----------------------

# The mode each source mode has when written in each format (the input's own by default).
OUTPUT_MODES = {
    "PNG": {"L": "L", "LA": "LA", "RGB": "RGB", "RGBA": "RGBA", "I;16": "I;16", "F": "I;16"},
    "TIFF": {"L": "L", "LA": "LA", "RGB": "RGB", "RGBA": "RGBA", "I;16": "I;16", "F": "F"},
    "JPEG": {"L": "L", "LA": "L", "RGB": "RGB", "RGBA": "RGB", "I;16": "L", "F": "L"},
    "WEBP": {"L": "RGB", "LA": "RGBA", "RGB": "RGB", "RGBA": "RGBA", "I;16": "RGB", "F": "RGB"},
}
DEPTHS = {"I;16": 16, "F": 32}


@pytest.mark.parametrize("format", sorted(OUTPUT_MODES))
@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "I;16", "F"])
def test_every_mode_round_trips_in_every_format(tmp_path, mode, format):
    # PNG holds every mode but float, with ICC and EXIF; a float image comes as TIFF, upright
    # (Pillow 13 misreads the orientation tag of the TIFFs it writes itself).
    turned = mode != "F"
    source = save(tmp_path / "source.png", mode) if turned else save(tmp_path / "source.tif", mode, orientation=None)
    pixels, meta = image_io.read_for_model(source, 3 if mode.startswith("RGB") else 1)
    data, written = image_io.encode_image(pixels, meta, format)
    out = read_back(data)
    wanted = OUTPUT_MODES[format][mode]
    assert (out.format, out.mode) == (format, wanted)
    depth = {
        "F": 32 if format == "TIFF" else 16 if format == "PNG" else 8,
        "I;16": 16 if format in ("PNG", "TIFF") else 8,
    }
    assert written == image_io.Written(format, depth.get(mode, 8), written.notes)
    assert out.size == ((SIZE[0], SIZE[1]) if turned else (SIZE[1], SIZE[0]))  # upright by its EXIF orientation
    exif = out.getexif()
    assert exif.get(MAKE) == "dae test camera" and exif.get(ORIENTATION, 1) == 1
    gray_out = wanted in ("L", "LA", "I;16", "F")
    icc = out.info.get("icc_profile")
    # A profile is kept where it describes the output: a gray one is no use to WebP's RGB.
    assert icc == (gray_profile() if gray_out else srgb_profile() if mode.startswith("RGB") else None)
    if "A" in mode:
        alpha = np.rot90(pixels_of(mode)[..., -1], -1)  # as exif_transpose turns orientation 6
        if "A" in wanted:
            np.testing.assert_array_equal(np.asarray(out)[..., -1], alpha)
        else:
            assert written.notes and "alpha" in written.notes[0]


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "I;16", "F"])
def test_lossless_formats_give_back_the_very_values(tmp_path, mode):
    source = save(tmp_path / "source.tif", mode, exif=False)
    pixels, meta = image_io.read_for_model(source, 3 if mode.startswith("RGB") else 1)
    for format in ("TIFF", "PNG") if mode != "F" else ("TIFF",):
        out = np.asarray(read_back(image_io.encode_image(pixels, meta, format)[0]))
        if mode == "F":
            np.testing.assert_allclose(out, pixels_of(mode), rtol=1e-6, atol=1e-4)  # not put through 8 bits
        else:
            np.testing.assert_array_equal(out, pixels_of(mode), err_msg=format)


def test_sixteen_bit_values_that_differ_below_eight_bits_stay_apart(tmp_path):
    values = (np.arange(SIZE[0] * SIZE[1]).reshape(SIZE) % 256 + 30000).astype(np.uint16)  # one 8-bit level
    for name in ("gray16.png", "gray16.tif"):
        Image.fromarray(values).save(tmp_path / name)
        pixels, meta = image_io.read_for_model(tmp_path / name, 1)
        assert meta.bit_depth == 16 and pixels.dtype == np.float32
        data, written = image_io.encode_image(pixels, meta, image_io.format_of(name))
        assert written.bit_depth == 16
        np.testing.assert_array_equal(np.asarray(read_back(data)), values)


def test_bit_depth_and_strip_metadata_options(tmp_path):
    source = save(tmp_path / "source.png", "L")
    pixels, meta = image_io.read_for_model(source, 1)
    deep = read_back(image_io.encode_image(pixels, meta, "PNG", image_io.OutputOptions(bit_depth=16))[0])
    assert deep.mode == "I;16"
    np.testing.assert_array_equal(np.asarray(deep), np.rot90(pixels_of("L"), -1).astype(np.uint16) * 257)
    bare = read_back(image_io.encode_image(pixels, meta, "JPEG", image_io.OutputOptions(strip_metadata=True))[0])
    assert bare.info.get("icc_profile") is None and MAKE not in bare.getexif()
    sixteen = save(tmp_path / "sixteen.png", "I;16")
    pixels, meta = image_io.read_for_model(sixteen, 1)
    shallow = read_back(image_io.encode_image(pixels, meta, "PNG", image_io.OutputOptions(bit_depth=8))[0])
    assert shallow.mode == "L"
    colour, meta = image_io.read_for_model(save(tmp_path / "colour.png", "RGB"), 3)
    data, written = image_io.encode_image(colour, meta, "PNG", image_io.OutputOptions(bit_depth=16))
    assert written == image_io.Written("PNG", 16)
    np.testing.assert_array_equal(imagecodecs.png_decode(data), np.rot90(pixels_of("RGB"), -1).astype(np.uint16) * 257)


def test_a_bmp_keeps_neither_profile_nor_exif_nor_alpha_and_says_so(tmp_path):
    pixels, meta = image_io.read_for_model(save(tmp_path / "source.png", "RGBA"), 3)
    data, written = image_io.encode_image(pixels, meta, "BMP")
    out = read_back(data)
    assert (out.format, out.mode, written.bit_depth) == ("BMP", "RGB", 8)
    assert out.info.get("icc_profile") is None and not len(out.getexif())
    assert any("alpha" in note for note in written.notes)


def test_dae_outputs_of_every_format_are_skipped_in_a_directory(tmp_path):
    for name in ("a.jpg", "a.denoised.jpg", "b.webp", "b.noisy.webp", "c.tif", "c.decoded.tiff", "d.denoised.bmp"):
        Image.new("RGB", (4, 4)).save(tmp_path / name)
    notes = []
    found = image_io.expand_inputs([str(tmp_path)], note=notes.append)
    assert [p.name for p in found] == ["a.jpg", "b.webp", "c.tif"]
    assert notes and "skipped 4 file(s) named like dae's outputs (*.denoised.*, *.decoded.*, *.noisy.*)" in notes[0]


def test_output_names_keep_the_input_format_unless_told(tmp_path):
    from dae_cli.apply.outcomes import output_paths
    from dae_cli.errors import UsageError

    inputs = [tmp_path / "a.JPG", tmp_path / "b.tiff", tmp_path / "c.gif"]
    assert [p.name for p in output_paths(inputs, None, "denoised")] == [
        "a.denoised.JPG",
        "b.denoised.tiff",
        "c.denoised.png",
    ]
    assert [p.name for p in output_paths(inputs, None, "noisy", "WEBP")] == [
        "a.noisy.webp",
        "b.noisy.webp",
        "c.noisy.webp",
    ]
    assert output_paths(inputs[:1], tmp_path / "x.tif", "denoised") == [tmp_path / "x.tif"]
    with pytest.raises(UsageError, match="not an image format"):
        output_paths(inputs[:1], tmp_path / "x.xyz", "denoised")
    with pytest.raises(UsageError, match="--format"):
        output_paths(inputs[:1], tmp_path / "x.png", "denoised", "JPEG")


# --- Through the CLI ----------------------------------------------------------------


def test_noise_with_no_noise_gives_back_every_file_as_it_was(tmp_path):
    """`dae noise` at zero noise is the identity on the value path: the files come back
    with their format, mode, 16 bits, alpha, profile and EXIF."""
    folder = tmp_path / "in"
    folder.mkdir()
    sources = {
        "gray16.png": save(folder / "gray16.png", "I;16", exif=False),
        "gray16.tif": save(folder / "gray16.tif", "I;16", orientation=None),
        "float.tif": save(folder / "float.tif", "F", orientation=None),
        "rgba.png": save(folder / "rgba.png", "RGBA", exif=False),
        "la.tif": save(folder / "la.tif", "LA", orientation=None),
    }
    result = run_dae(
        "--json",
        "noise",
        folder,
        "-o",
        tmp_path / "out",
        "--noise",
        "gaussian",
        "--noise-mean",
        "0",
        "--noise-std",
        "0",
    )
    assert result.returncode == 0, result.stderr
    records = {r["input"].split("/")[-1]: r for r in json_lines(result.stdout)}
    for name, path in sources.items():
        before, after = Image.open(path), Image.open(records[name]["output"])
        stem, extension = name.split(".")
        assert records[name]["output"].endswith(f"/{stem}.noisy.{extension}")
        assert (after.format, after.mode, after.size) == (before.format, before.mode, before.size), name
        assert records[name]["format"] == before.format
        assert records[name]["bit_depth"] == DEPTHS.get(before.mode, 8)
        assert after.info.get("icc_profile") == before.info.get("icc_profile"), name
        if name.endswith(".tif"):
            assert after.getexif().get(MAKE) == "dae test camera", name
        if before.mode == "F":
            np.testing.assert_allclose(np.asarray(after), np.asarray(before), rtol=1e-6, atol=1e-4)
        else:
            np.testing.assert_array_equal(np.asarray(after), np.asarray(before), err_msg=name)


@pytest.fixture(scope="module")
def photo_run(tmp_path_factory):
    """`dae --json denoise` of a folder of mixed formats with the built-in photo model."""
    root = tmp_path_factory.mktemp("formats")
    folder = root / "in"
    folder.mkdir()
    save(folder / "gray16.png", "I;16", exif=False)
    save(folder / "gray16.tif", "I;16", exif=False)
    save(folder / "rgba.png", "RGBA", exif=False)
    save(folder / "la.png", "LA", exif=False)
    save(folder / "camera.jpg", "RGB", quality=95)
    save(folder / "camera.webp", "RGB", quality=95)
    save(folder / "float.tif", "F", exif=False)
    save(folder / "plain.bmp", "RGB", icc=False, exif=False)
    result = run_dae("--json", "denoise", folder, "-m", "photo-gray", "--sigma", "25", "-o", root / "out")
    assert result.returncode == 0, result.stderr
    records = {r["input"].split("/")[-1]: r for r in json_lines(result.stdout)}
    return folder, records


def test_a_16_bit_image_is_denoised_to_16_bits(photo_run):
    folder, records = photo_run
    for name in ("gray16.png", "gray16.tif"):
        out = Image.open(records[name]["output"])
        assert (out.format, out.mode, out.size) == (Image.open(folder / name).format, "I;16", (SIZE[1], SIZE[0]))
        assert (records[name]["format"], records[name]["bit_depth"]) == (out.format, 16)
        values = np.asarray(out)
        assert np.mean(values % 257 != 0) > 0.5  # not 8-bit values scaled up: all 16 bits computed
        noisy = pixels_of("I;16").astype(np.float64)
        assert 0 < np.abs(values - noisy).mean() < 6000  # denoised, near its input


def test_alpha_is_carried_over_unchanged(photo_run):
    folder, records = photo_run
    for name, mode in (("rgba.png", "RGBA"), ("la.png", "LA")):
        out = Image.open(records[name]["output"])
        assert out.mode == mode, name
        np.testing.assert_array_equal(np.asarray(out)[..., -1], pixels_of(mode)[..., -1])
        colour = np.asarray(out)[..., :-1].astype(np.int16)
        assert np.abs(colour - pixels_of(mode)[..., :-1]).mean() > 1  # the colour was denoised


def test_a_jpeg_keeps_its_profile_and_exif_and_format(photo_run):
    folder, records = photo_run
    for name in ("camera.jpg", "camera.webp"):
        out = Image.open(records[name]["output"])
        assert out.info.get("icc_profile") == srgb_profile(), name
        exif = out.getexif()
        assert exif.get(MAKE) == "dae test camera" and exif.get(ORIENTATION, 1) == 1, name
        assert out.size == (SIZE[0], SIZE[1])  # upright: the pixels were turned, the tag reset
        assert out.format == Image.open(folder / name).format == records[name]["format"]
        assert records[name]["output"].endswith(name.replace(".", ".denoised."))


def test_a_folder_of_mixed_formats_gives_each_output_its_own(photo_run):
    folder, records = photo_run
    assert sorted(records) == sorted(p.name for p in folder.iterdir())
    for name, record in records.items():
        assert record["status"] == "ok"
        assert record["output"].endswith(name.replace(".", ".denoised.")), record
        assert Image.open(record["output"]).format == Image.open(folder / name).format == record["format"]
    assert Image.open(records["float.tif"]["output"]).mode == "F" and records["float.tif"]["bit_depth"] == 32


def test_o_file_with_an_image_extension_writes_that_file_in_that_format(tmp_path):
    source = save(tmp_path / "photo.png", "RGB", orientation=None)
    for target, format in (("clean.jpg", "JPEG"), ("clean.tif", "TIFF")):
        result = run_dae("denoise", source, "-m", "photo", "--sigma", "25", "-o", tmp_path / target)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == str(tmp_path / target)
        assert (tmp_path / target).is_file()
        out = Image.open(tmp_path / target)
        assert (out.format, out.mode, out.size) == (format, "RGB", (SIZE[1], SIZE[0]))
        assert out.info.get("icc_profile") == srgb_profile() and out.getexif().get(MAKE) == "dae test camera"
    # --quality's default, 95, is what the JPEG was written with.
    reference = io.BytesIO()
    Image.open(tmp_path / "clean.jpg").save(reference, "JPEG", quality=95)
    assert Image.open(tmp_path / "clean.jpg").quantization == Image.open(reference).quantization


def test_strip_metadata_drops_profile_and_exif(tmp_path):
    source = save(tmp_path / "camera.jpg", "RGB", orientation=None)
    result = run_dae("noise", source, "-o", tmp_path / "bare.jpg", "--noise-std", "0.01", "--strip-metadata")
    assert result.returncode == 0, result.stderr
    bare = Image.open(tmp_path / "bare.jpg")
    assert bare.format == "JPEG" and bare.info.get("icc_profile") is None and MAKE not in bare.getexif()


def test_unwritable_extensions_and_depths_are_usage_errors_that_create_nothing(tmp_path):
    source = save(tmp_path / "photo.jpg", "RGB")
    assert_clean_error(
        run_dae("denoise", source, "-m", "photo", "-o", tmp_path / "x.xyz"), USAGE, "x.xyz", "not an image format"
    )
    assert_clean_error(run_dae("noise", source, "-o", tmp_path / "y.jpg", "--bit-depth", "16"), USAGE, "--bit-depth 16")
    assert_clean_error(run_dae("noise", source, "--format", "gif"), USAGE, "gif")
    assert_clean_error(run_dae("noise", source, "--format", "png", "-o", tmp_path / "z.jpg"), USAGE, "--format")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.jpg"]


def test_encode_records_what_decode_needs_to_write_the_same_kind(tmp_path):
    source = save(tmp_path / "scan.tif", "I;16", exif=False)
    encoded = run_dae("encode", source, "-m", "photo", "--sigma", "25", "-o", tmp_path / "z.npz")
    assert encoded.returncode == 0, encoded.stderr
    decoded = run_dae("--json", "decode", tmp_path / "z.npz", "-m", "photo", "-o", tmp_path / "dec")
    assert decoded.returncode == 0, decoded.stderr
    [record] = json_lines(decoded.stdout)
    assert record["output"] == str(tmp_path / "dec" / "scan.decoded.tif")
    out = Image.open(record["output"])
    assert (out.format, out.mode, out.size) == ("TIFF", "I;16", (SIZE[1], SIZE[0]))
    assert (record["format"], record["bit_depth"]) == ("TIFF", 16)


def test_old_latent_files_without_kinds_decode_as_before(tmp_path):
    from dae_cli.io import latent_maps

    latent = np.zeros((3, 4, 8), np.float32)
    np.savez(tmp_path / "old.npz", **{"a.png": latent, latent_maps.SIZES_KEY: np.asarray('{"a.png": [10, 14]}')})
    [item] = latent_maps.read_maps(str(tmp_path / "old.npz"))
    assert item.kind is None and image_io.meta_of_kind(item.kind) is None and item.size == (10, 14)


def test_dense_latents_carry_the_source_kind_to_decode(trained_model, tmp_path):
    digit = (np.random.default_rng(3).integers(0, 65536, (28, 28))).astype(np.uint16)
    Image.fromarray(digit).save(tmp_path / "scan.tif")
    encoded = run_dae("encode", tmp_path / "scan.tif", "-m", trained_model)
    assert encoded.returncode == 0, encoded.stderr
    [record] = json_lines(encoded.stdout)
    assert record["image"] == {"format": "TIFF", "bit_depth": 16, "channels": 1, "mode": "I;16"}
    decoded = run_dae("--json", "decode", "-", "-m", trained_model, "-o", tmp_path / "dec", input=encoded.stdout)
    assert decoded.returncode == 0, decoded.stderr
    [written] = json_lines(decoded.stdout)
    assert written["output"] == str(tmp_path / "dec" / "scan.decoded.tif")
    assert (written["format"], written["bit_depth"]) == ("TIFF", 16)
    assert Image.open(written["output"]).mode == "I;16"


def test_vector_files_keep_the_source_kind(tmp_path):
    from dae_cli.io import latents

    kind = {"format": "PNG", "bit_depth": 16, "channels": 1, "mode": "I;16"}
    for name in ("z.npz", "z.json", "z.csv"):
        latents.write_latents(tmp_path / name, ["a.png", "b.png"], np.zeros((2, 4)), kinds=[kind, None])
        items = latents.read_latents(str(tmp_path / name))
        assert [item.kind for item in items] == ([kind, None] if name != "z.csv" else [None, None]), name
    np.savez(tmp_path / "old.npz", latents=np.zeros((1, 4)), sources=np.asarray(["a.png"]))
    assert [item.kind for item in latents.read_latents(str(tmp_path / "old.npz"))] == [None]


def test_the_cli_offers_the_formats_and_quality_image_io_writes():
    from dae_cli.cli import flags

    assert tuple(member.value for member in flags.ImageFormat) == image_io.FORMAT_CHOICES
    assert {choice.upper() for choice in image_io.FORMAT_CHOICES} == set(image_io.FORMAT_EXTENSIONS)
    assert flags.QUALITY.default == image_io.DEFAULT_QUALITY == image_io.OutputOptions().quality
