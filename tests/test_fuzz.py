"""Property-based tests: whatever bytes or TOML arrive, the loaders load or give the documented error."""

import io
import json

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from dae_cli.config import Config
from dae_cli.errors import InputError, UsageError
from dae_cli.io import image_io

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def load_or_documented_error(path, channels):
    try:
        pixels = image_io.load_image(path, channels)
    except InputError as error:
        assert str(error).startswith(str(path)) and "\n" not in str(error)
        return None
    assert pixels.dtype == np.float32 and pixels.ndim == 3 and pixels.shape[-1] == channels
    assert np.all(np.isfinite(pixels)) and pixels.min() >= 0 and pixels.max() <= 1
    return pixels


@FUZZ
@given(data=st.binary(max_size=2048), channels=st.sampled_from([1, 3]))
def test_random_bytes(tmp_path_factory, data, channels):
    path = tmp_path_factory.mktemp("fuzz") / "input.png"
    path.write_bytes(data)
    load_or_documented_error(path, channels)


PNG_HEADER = b"\x89PNG\r\n\x1a\n"


@FUZZ
@given(prefix=st.sampled_from([PNG_HEADER, b"\xff\xd8\xff", b"BM", b"II*\x00"]), data=st.binary(max_size=512))
def test_random_bytes_behind_real_magic_numbers(tmp_path_factory, prefix, data):
    path = tmp_path_factory.mktemp("fuzz") / "input.img"
    path.write_bytes(prefix + data)
    load_or_documented_error(path, 1)


MODES = ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I", "F", "YCbCr"]
FORMATS = {
    "PNG": ("1", "L", "LA", "P", "RGB", "RGBA", "I;16"),
    "TIFF": tuple(MODES),
    "BMP": ("1", "L", "P", "RGB"),
    "JPEG": ("L", "RGB", "CMYK"),
}


@FUZZ
@given(
    mode=st.sampled_from(MODES),
    size=st.tuples(st.integers(1, 40), st.integers(1, 40)),
    fmt=st.sampled_from(sorted(FORMATS)),
    seed=st.integers(0, 2**16),
    truncate=st.one_of(st.none(), st.integers(0, 200)),
)
def test_valid_but_odd_images(tmp_path_factory, mode, size, fmt, seed, truncate):
    if mode not in FORMATS[fmt]:
        return
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    data = buffer.getvalue()
    # Some Pillow versions write files they cannot read back (12.x: YCbCr TIFF, "image
    # file is truncated"): those are not valid images, and not dae's to read.
    assume(_pillow_reads(data))
    path = tmp_path_factory.mktemp("fuzz") / f"odd.{fmt.lower()}"
    path.write_bytes(data if truncate is None else data[:truncate])
    pixels = load_or_documented_error(path, 3)
    if truncate is None:
        assert pixels is not None and pixels.shape[:2] == (size[1], size[0])


def _pillow_reads(data: bytes) -> bool:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
        return True
    except OSError:
        return False


toml_scalars = st.one_of(
    st.integers(-10, 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=8),
    st.lists(st.integers(-5, 300), max_size=4),
)


@FUZZ
@given(values=st.dictionaries(st.sampled_from(Config.keys() + ["bogus", "epoch"]), toml_scalars, max_size=6))
def test_random_toml_configs(tmp_path_factory, values):
    path = tmp_path_factory.mktemp("fuzz") / "config.toml"
    path.write_text("\n".join(f"{key} = {to_toml(value)}" for key, value in values.items()) + "\n")
    try:
        config = Config.resolve(path, {})
    except UsageError as error:
        assert "\n" not in str(error)
        return
    assert config.epochs > 0 and config.batch_size > 0 and config.layer_filters


@FUZZ
@given(text=st.text(max_size=300))
def test_random_text_as_toml(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("fuzz") / "config.toml"
    path.write_bytes(text.encode("utf-8", "replace"))
    try:
        Config.resolve(path, {})
    except UsageError:
        pass


def to_toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return (
            "nan"
            if value != value
            else ("inf" if value == float("inf") else "-inf" if value == float("-inf") else repr(value))
        )
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)
