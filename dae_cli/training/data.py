"""Training data: where it comes from, how it is split, and the `tf.data` pipelines.

Sources:
- `mnist`: MNIST from the Keras dataset cache (`$KERAS_HOME/datasets/mnist.npz`,
  default `~/.keras/datasets/mnist.npz`), downloaded and cached by Keras if missing.
- `mnist-sample`: 4,000 training and 1,000 test MNIST images shipped with `dae`.
- `--data FILE.npz`: arrays in the Keras layout (`x_train`, `x_test`; labels ignored).
- `--data DIR`: every image under DIR, split by `val_split` with the seed.

Images are kept as uint8 (N, H, W, C) until the pipeline turns each batch into floats
and adds fresh noise to it, so even full MNIST stays small in memory.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import os
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dae_cli.errors import DaeError, InputError, UsageError
from dae_cli.io import image_io

if TYPE_CHECKING:
    import tensorflow as tf

    from dae_cli.config import Config
    from dae_cli.noise import NoiseSpec


@dataclasses.dataclass
class TrainingData:
    """Clean training and validation images, uint8.

    `x_val` is always one array (N, H, W, C) of the model's input size. `x_train` is an
    array of the same size, or, when training on patches, a list of larger images of
    any sizes that the pipeline crops at random.
    """

    x_train: np.ndarray | list
    x_val: np.ndarray
    source: str
    patch_size: int | None = None
    # clean: noise is added in the pipeline; pairs: each array holds the noisy input and
    # its target stacked on the channel axis; noisy: noisy images alone (self-supervised)
    kind: str = "clean"

    @property
    def image_shape(self) -> tuple[int, int, int]:
        height, width, channels = (int(d) for d in self.x_val.shape[1:])
        return (height, width, channels // 2 if self.kind == "pairs" else channels)

    @property
    def samples_per_epoch(self) -> int:
        """Images per epoch; with patches, as many as cover the training pixels once."""
        if self.patch_size is None:
            return len(self.x_train)
        area = sum(image.shape[0] * image.shape[1] for image in self.x_train)
        return max(1, area // self.patch_size**2)


def keras_cache_path(name: str = "mnist.npz") -> Path:
    """Where Keras caches datasets: `$KERAS_HOME/datasets`, default `~/.keras/datasets`."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "datasets" / name


def mnist_sample_path() -> Path:
    return Path(str(resources.files("dae_cli") / "data" / "mnist_sample.npz"))


def load_mnist() -> tuple[np.ndarray, np.ndarray]:
    """Full MNIST (x_train, x_test): from the Keras cache, else downloaded by Keras."""
    cached = keras_cache_path()
    if cached.exists():
        return load_npz_splits(cached)
    from dae_cli.backend import keras

    try:
        (x_train, _), (x_test, _) = keras.datasets.mnist.load_data()
    except Exception as error:  # urllib, socket and hash errors alike
        cause = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        raise DaeError(
            f"MNIST is not cached at {cached} and could not be downloaded "
            f"({cause}); offline, use --data PATH or --dataset mnist-sample"
        ) from error
    return x_train, x_test


def load_npz_splits(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """`x_train` and `x_test` of an `.npz` in the `keras.datasets` layout."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = {"x_train", "x_test"} - set(archive.files)
            if missing:
                raise UsageError(
                    f"{path}: missing array(s) {', '.join(sorted(missing))}; expected the "
                    "keras.datasets layout (x_train, x_test)"
                )
            return archive["x_train"], archive["x_test"]
    except (OSError, ValueError) as error:
        raise InputError(f"{path}: not a readable .npz file ({error})") from None


def as_uint8_images(array: np.ndarray, name: str, channels: int | None) -> np.ndarray:
    """(N, H, W) or (N, H, W, C) uint8 or [0, 1] floats -> uint8 (N, H, W, channels)."""
    array = np.asarray(array)
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4 or array.shape[-1] not in (1, 3) or len(array) == 0:
        raise UsageError(f"{name} must be a non-empty array of shape (N, H, W) or (N, H, W, 1 or 3), got {array.shape}")
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.number):
            raise UsageError(f"{name} must hold numbers, got dtype {array.dtype}")
        if not np.all(np.isfinite(array)) or array.min() < 0 or array.max() > 1:
            raise UsageError(f"{name}: non-uint8 images must hold values in [0, 1]")
        array = image_io.to_uint8(array)
    return convert_channels(array, channels)


def convert_channels(images: np.ndarray, channels: int | None) -> np.ndarray:
    """Grayscale <-> RGB on uint8 (N, H, W, C) images; `None` keeps them as they are."""
    if channels is None or images.shape[-1] == channels:
        return images
    if channels == 3:
        return np.repeat(images, 3, axis=-1)
    luma = images.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.clip(np.rint(luma), 0, 255).astype(np.uint8)[..., None]


def load_image_list(folder: Path, channels: int | None, warn: Callable[[str], None]) -> list[np.ndarray]:
    """Every readable image under `folder`, uint8 (H, W, C), each at its own size.

    Unreadable images are skipped with a warning; none readable is an error.
    """
    opened = _open_folder(folder, warn)
    if channels is None:
        channels = 3 if any(image_io.image_channels(i) == 3 for i in opened) else 1
    return [image_io.to_uint8(image_io.to_array(i, channels)) for i in opened]


def image_files(folder: Path, flag: str = "--data", warn: Callable[[str], None] = lambda message: None) -> list[Path]:
    """The image files under `folder`, sorted, less dae's own outputs (`warn` is told how many)."""
    if not folder.is_dir():
        raise UsageError(f"{flag} {folder}: no such directory")
    try:
        return image_io.expand_inputs([str(folder)], note=warn)
    except UsageError as error:
        raise UsageError(f"{flag} {error}") from None


def _open_folder(folder: Path, warn: Callable[[str], None]) -> list:
    paths = image_files(folder, warn=warn)
    opened, failures = [], []
    for path in paths:
        try:
            opened.append(image_io.open_image(path))
        except InputError as error:
            failures.append(str(error))
    if failures:
        warn(f"skipped {len(failures)} unreadable image(s), first: {failures[0]}")
    if not opened:
        raise UsageError(f"no readable images in {folder}")
    return opened


def load_image_folder(folder: Path, channels: int | None, warn: Callable[[str], None]) -> np.ndarray:
    """Every readable image under `folder`, uint8, resized to the most common size."""
    opened = _open_folder(folder, warn)
    if channels is None:
        channels = 3 if any(image_io.image_channels(i) == 3 for i in opened) else 1
    sizes = collections.Counter((i.height, i.width) for i in opened)
    size = sizes.most_common(1)[0][0]
    if len(sizes) > 1:
        others = len(opened) - sizes[size]
        warn(f"resized {others} image(s) to the most common size {size[0]}x{size[1]}")
    arrays = [image_io.resize(image_io.to_array(i, channels), size) for i in opened]
    return image_io.to_uint8(np.stack(arrays))


def load_training_data(config: Config, warn: Callable[[str], None] = lambda message: None) -> TrainingData:
    """The images `config` names, split into training and validation sets: clean ones,
    noisy/target pairs (`targets`), or noisy ones alone (`self_supervised`)."""
    if config.targets:
        return load_pair_data(config, warn)
    if config.self_supervised:
        return dataclasses.replace(load_patch_data(config, warn), kind="noisy")
    if config.patch_size:
        return load_patch_data(config, warn)
    if config.data:
        path = Path(config.data)
        if path.is_dir() and config.val_data:
            x_train = load_image_folder(path, config.channels, warn)
            x_val = load_image_folder(_folder(config.val_data, "--val-data"), x_train.shape[-1], warn)
            x_val = image_io.to_uint8(
                np.stack([image_io.resize(image / np.float32(255), x_train.shape[1:3]) for image in x_val])
            )
            source = f"folder {path}, validation {config.val_data}"
        elif path.is_dir():
            images = load_image_folder(path, config.channels, warn)
            x_train, x_val = split(images, config.val_split, config.seed)
            source = f"folder {path}"
        elif path.is_file():
            x_train, x_val = load_npz_splits(path)
            source = f"npz {path}"
        else:
            raise UsageError(f"--data {path}: no such file or directory")
    elif config.dataset == "mnist-sample":
        x_train, x_val = load_npz_splits(mnist_sample_path())
        source = "mnist-sample"
    else:
        x_train, x_val = load_mnist()
        source = "mnist"
    x_train = as_uint8_images(x_train, "x_train", config.channels)
    x_val = as_uint8_images(x_val, "x_test", config.channels)
    if x_train.shape[1:] != x_val.shape[1:]:
        raise UsageError(f"training images {x_train.shape[1:]} and validation images {x_val.shape[1:]} differ in shape")
    if config.limit is not None:  # at most N of each split
        x_train, x_val = x_train[: config.limit], x_val[: config.limit]
    return TrainingData(x_train, x_val, source)


def _folder(path: str, flag: str) -> Path:
    if not Path(path).is_dir():
        raise UsageError(f"{flag} {path}: no such directory")
    return Path(path)


def split(images: np.ndarray | list, val_split: float, seed: int) -> tuple[np.ndarray | list, np.ndarray | list]:
    """A seeded shuffle of `images` (an array or a list) into training and validation parts."""
    if len(images) < 2:
        raise UsageError("need at least 2 images to make a training and a validation set")
    order = np.random.default_rng(seed).permutation(len(images))
    n_val = min(max(1, math.ceil(len(images) * val_split)), len(images) - 1)
    if isinstance(images, np.ndarray):
        return images[order[n_val:]], images[order[:n_val]]
    return [images[i] for i in order[n_val:]], [images[i] for i in order[:n_val]]


MAX_VALIDATION_CROPS_PER_IMAGE = 16


def load_patch_data(config: Config, warn: Callable[[str], None]) -> TrainingData:
    """Images of any size for training on random `patch_size` crops.

    Validation uses crops drawn once with the seed, so its loss compares between epochs.
    Images smaller than a patch are skipped with a warning.
    """
    patch = config.patch_size
    if config.data and Path(config.data).is_dir():
        images = load_image_list(Path(config.data), config.channels, warn)
        if config.val_data:
            channels = images[0].shape[-1]
            train_images, val_images = images, load_image_list(_folder(config.val_data, "--val-data"), channels, warn)
            source = f"folder {config.data}, validation {config.val_data} (patches of {patch})"
        else:
            train_images, val_images = split(images, config.val_split, config.seed)
            source = f"folder {config.data} (patches of {patch})"
    else:
        whole = load_training_data(dataclasses.replace(config, patch_size=None, limit=None), warn)
        train_images, val_images = list(whole.x_train), list(whole.x_val)
        source = f"{whole.source} (patches of {patch})"

    return _patch_data(train_images, val_images, source, config, warn)


def _patch_data(train_images: list, val_images: list, source: str, config, warn) -> TrainingData:
    """Training images for random crops, and validation crops drawn once with the seed."""
    patch = config.patch_size

    def large_enough(images):
        kept = [image for image in images if image.shape[0] >= patch and image.shape[1] >= patch]
        if len(kept) < len(images):
            warn(f"skipped {len(images) - len(kept)} image(s) smaller than --patch-size {patch}")
        return kept

    train_images, val_images = large_enough(train_images), large_enough(val_images)
    if not train_images or not val_images:
        raise UsageError(f"no training or validation images of at least {patch}x{patch} pixels")
    if config.limit is not None:  # at most N of each split
        train_images, val_images = train_images[: config.limit], val_images[: config.limit]
    rng = np.random.default_rng(config.seed)
    crops = []
    for image in val_images:
        count = min(MAX_VALIDATION_CROPS_PER_IMAGE, max(1, image.shape[0] * image.shape[1] // patch**2))
        for _ in range(count):
            y = rng.integers(0, image.shape[0] - patch + 1)
            x = rng.integers(0, image.shape[1] - patch + 1)
            crops.append(image[y : y + patch, x : x + patch])
    return TrainingData(train_images, np.stack(crops), source, patch_size=patch)


def match_pairs(
    inputs: Path, targets: Path, warn: Callable[[str], None] = lambda message: None
) -> list[tuple[Path, Path]]:
    """(input, target) files of two folders, matched by relative path.

    The extension may differ (`noisy/a.jpg` with `clean/a.png`). A file of either folder
    without its match, or two files one match could mean, is a usage error naming them.
    """
    sides = {}
    for flag, folder in (("--data", inputs), ("--targets", targets)):
        files = image_files(folder, flag, warn)
        keyed = collections.defaultdict(list)
        for path in files:
            keyed[path.relative_to(folder).with_suffix("").as_posix()].append(path)
        clashes = [paths for paths in keyed.values() if len(paths) > 1]
        if clashes:
            raise UsageError(f"{flag} {folder}: {' and '.join(map(str, clashes[0]))} would match the same file")
        sides[flag] = {key: paths[0] for key, paths in keyed.items()}
    unmatched = [
        f"{path} has no match in {other}"
        for flag, other in (("--data", targets), ("--targets", inputs))
        for key, path in sorted(sides[flag].items())
        if key not in sides["--targets" if flag == "--data" else "--data"]
    ]
    if unmatched:
        more = f" (and {len(unmatched) - 3} more)" if len(unmatched) > 3 else ""
        raise UsageError(f"unmatched files: {'; '.join(unmatched[:3])}{more}")
    return [(sides["--data"][key], sides["--targets"][key]) for key in sorted(sides["--data"])]


def load_pair_data(config: Config, warn: Callable[[str], None]) -> TrainingData:
    """Noisy images and their targets, matched by relative path, each pair stacked on the
    channel axis (input channels first), so that crops and flips take both alike."""
    pairs = match_pairs(Path(config.data), Path(config.targets), warn)
    opened = [(image_io.open_image(a), image_io.open_image(b)) for a, b in pairs]
    channels = config.channels or (3 if any(image_io.image_channels(i) == 3 for pair in opened for i in pair) else 1)
    stacked = []
    for (input_path, target_path), (noisy, target) in zip(pairs, opened):
        if noisy.size != target.size:
            raise UsageError(
                f"{input_path} is {noisy.width}x{noisy.height} but its target {target_path} is "
                f"{target.width}x{target.height}"
            )
        stacked.append(np.concatenate([image_io.to_uint8(image_io.to_array(i, channels)) for i in (noisy, target)], -1))
    source = f"pairs {config.data} -> {config.targets}"
    train_images, val_images = split(stacked, config.val_split, config.seed)
    if config.patch_size:
        data = _patch_data(train_images, val_images, f"{source} (patches of {config.patch_size})", config, warn)
        return dataclasses.replace(data, kind="pairs")
    sizes = {image.shape for image in stacked}
    if len(sizes) > 1:
        raise UsageError(f"pairs of {len(sizes)} different sizes: give --patch-size to train on crops")
    x_train, x_val = np.stack(train_images), np.stack(val_images)
    if config.limit is not None:
        x_train, x_val = x_train[: config.limit], x_val[: config.limit]
    return TrainingData(x_train, x_val, source, kind="pairs")


def training_dataset(
    x_train: np.ndarray | list[np.ndarray],
    batch_size: int,
    noise: NoiseSpec,
    seed: int,
    patch_size: int | None = None,
    noise_level_input: bool = False,
    gray_fraction: float = 0.0,
    kind: str = "clean",
    noise_estimator: bool = False,
    saturation_range: tuple[float, float] | None = None,
) -> tf.data.Dataset:
    """An endless `tf.data` stream of (noisy, clean) float batches.

    The clean images are reshuffled every epoch, and each batch gets fresh noise from a
    stateless seed drawn from `seed`, so a run is reproducible but no image ever sees
    the same noise twice (the reference example adds one noise draw to the set, once).
    With `noise_level_input` the noisy batch carries each image's noise std as a last
    channel (`noise.with_level_map`); each RGB crop's saturation is scaled by a factor
    from `saturation_range`, then `gray_fraction` of them are made gray.
    With `noise_estimator` each batch is a (model input, targets) pair for the two
    outputs of `noise_estimation.training_model`.

    `kind` is `TrainingData.kind`: for `pairs` the images are split into (input, target)
    and no noise is added; for `noisy` each batch becomes a Neighbor2Neighbor pair
    (`dae_cli.training.neighbor2neighbor.neighbor_pair`).
    """
    from dae_cli.backend import tf

    def to_pair(images_uint8, noise_seed):
        if kind == "clean":
            return _clean_to_pair(
                images_uint8, noise_seed, noise, noise_level_input, gray_fraction, noise_estimator, saturation_range
            )
        return _noisy_to_pair(images_uint8, noise_seed, kind, noise_level_input, noise_estimator)

    autotune = tf.data.AUTOTUNE
    if patch_size is None:
        images = tf.data.Dataset.from_tensor_slices(x_train)
        images = images.shuffle(len(x_train), seed=seed, reshuffle_each_iteration=True)
        batches = images.batch(batch_size).repeat()
    else:
        batches = random_patches(x_train, patch_size, seed).batch(batch_size)
    seeds = tf.data.Dataset.random(seed=seed).batch(2)
    pairs = tf.data.Dataset.zip(batches, seeds).map(to_pair, num_parallel_calls=autotune)
    return pairs.prefetch(autotune)


def _clean_to_pair(
    clean_uint8,
    noise_seed,
    noise,
    noise_level_input: bool,
    gray_fraction: float,
    noise_estimator: bool = False,
    saturation_range: tuple[float, float] | None = None,
):
    """(noisy, clean) of a batch of clean images: fresh noise from `noise_seed`, after
    scaling their saturation by a factor from `saturation_range` and turning
    `gray_fraction` of them gray, and the level map if the model takes one (for a
    `noise_estimator` model, its input and the targets of its two outputs)."""
    from dae_cli.backend import tf
    from dae_cli.noise import add_noise, noise_levels, with_level_map

    clean = tf.cast(clean_uint8, tf.float32) / 255.0
    if saturation_range is not None:
        clean = vary_saturation(clean, noise_seed + 12, saturation_range)
    pick = None
    if gray_fraction:
        clean, pick = gray_some(clean, noise_seed + 11, gray_fraction)
    noisy = add_noise(clean, noise_seed, noise)
    if pick is not None:  # a gray photograph's noise is the same in its three copies
        noisy = tf.where(pick, tf.broadcast_to(noisy[..., :1], tf.shape(noisy)), noisy)
    if noise_estimator:
        from dae_cli.training.noise_estimation import estimator_pair

        return estimator_pair(noisy, clean, noise_seed)
    if noise_level_input:
        noisy = with_level_map(noisy, noise_levels(clean, noise_seed, noise, noisy))
    return noisy, clean


def _noisy_to_pair(images_uint8, pair_seed, kind: str, noise_level_input: bool, noise_estimator: bool = False):
    """(input, target) of a batch that carries its own noise: `pairs` are split (the
    level map is the pair's RMS difference; a noise estimator learns the pair's local
    one); `noisy` images become Neighbor2Neighbor pairs."""
    from dae_cli.backend import tf
    from dae_cli.noise import with_level_map

    images = tf.cast(images_uint8, tf.float32) / 255.0
    if kind == "noisy":
        from dae_cli.training.neighbor2neighbor import neighbor_pair

        return neighbor_pair(images, pair_seed)
    noisy, target = split_pair(images)
    if noise_estimator:
        from dae_cli.training.noise_estimation import estimator_pair

        return estimator_pair(noisy, target, pair_seed)
    if noise_level_input:  # the pair's own RMS difference
        noisy = with_level_map(noisy, tf.sqrt(tf.reduce_mean(tf.square(noisy - target), axis=[1, 2, 3])))
    return noisy, target


def split_pair(stacked: np.ndarray | tf.Tensor) -> tuple[np.ndarray | tf.Tensor, np.ndarray | tf.Tensor]:
    """(input, target) of images stacked on the channel axis, input channels first."""
    channels = stacked.shape[-1] // 2
    return stacked[..., :channels], stacked[..., channels:]


def validation_set(
    data: TrainingData, noise: NoiseSpec, seed: int, noise_level_input: bool, noise_estimator: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """(model inputs, targets, noisy images, levels or None) to validate on, float32.

    Clean data gets the seeded noise `dae evaluate` gives it; pairs are split; noisy
    data (self-supervised) becomes one seeded Neighbor2Neighbor pair per crop, whose
    target is the second sub-image (there is nothing clean to compare with).
    """
    from dae_cli.apply import evaluation
    from dae_cli.noise import with_level_map

    if data.kind == "clean":
        noisy, clean, levels = evaluation.noisy_set(data.x_val, noise, seed)
    elif data.kind == "pairs":
        noisy, clean = (part.astype(np.float32) / 255.0 for part in split_pair(data.x_val))
        levels = np.sqrt(np.mean(np.square(noisy - clean), axis=(1, 2, 3)))
    else:
        from dae_cli.backend import tf
        from dae_cli.training.neighbor2neighbor import neighbor_pair, second_image

        images = data.x_val.astype(np.float32) / 255.0
        inputs, packed = neighbor_pair(tf.constant(images), tf.constant([seed, 0x2B2], tf.int64))
        inputs = inputs.numpy()
        return inputs, second_image(packed, images.shape[-1]).numpy(), inputs, None
    if noise_estimator:  # its own estimate, as `dae denoise` gives it
        from dae_cli.noise import with_level_controls

        return with_level_controls(noisy, 1.0), clean, noisy, levels
    inputs = with_level_map(noisy, levels) if noise_level_input else noisy
    return inputs, clean, noisy, levels


LUMA = (0.299, 0.587, 0.114)  # ITU-R 601, as Pillow's "L" mode


def gray_some(clean: tf.Tensor, seed: tf.Tensor, fraction: float) -> tuple[tf.Tensor, tf.Tensor]:
    """Turns about `fraction` of a batch of RGB images gray, the luma in all three channels,
    as `dae` gives a gray photograph to a colour model. Returns (images, which), `which`
    (n, 1, 1, 1) booleans."""
    from dae_cli.backend import tf

    luma = _luma(clean)
    pick = (tf.random.stateless_uniform(tf.shape(clean)[:1], seed) < fraction)[:, None, None, None]
    return tf.where(pick, tf.broadcast_to(luma, tf.shape(clean)), clean), pick


def vary_saturation(clean: tf.Tensor, seed: tf.Tensor, factor_range: tuple[float, float]) -> tf.Tensor:
    """Each RGB image of a batch with its colour saturation times a factor drawn from
    `factor_range`: blended away from (above 1) or towards (below 1) its luma, as Pillow's
    `ImageEnhance.Color` does, and clipped to [0, 1]."""
    from dae_cli.backend import tf

    low, high = factor_range
    factors = tf.random.stateless_uniform([tf.shape(clean)[0], 1, 1, 1], seed, minval=low, maxval=high)
    luma = _luma(clean)
    return tf.clip_by_value(luma + factors * (clean - luma), 0.0, 1.0)


def _luma(clean: tf.Tensor) -> tf.Tensor:
    """(n, h, w, 1): the luma of (n, h, w, 3) RGB images."""
    from dae_cli.backend import tf

    return tf.reduce_sum(clean * tf.constant(LUMA, tf.float32), axis=-1, keepdims=True)


def random_patches(images: list[np.ndarray], patch_size: int, seed: int) -> tf.data.Dataset:
    """An endless stream of random `patch_size` crops of `images`, randomly flipped."""
    from dae_cli.backend import tf

    channels = images[0].shape[-1]
    shape = [patch_size, patch_size, channels]

    def each_image():
        order = np.random.default_rng(seed)
        while True:
            for index in order.permutation(len(images)):
                yield images[index]

    def crop_and_flip(image, crop_seed):
        patch = tf.image.stateless_random_crop(image, shape, seed=crop_seed)
        patch = tf.image.stateless_random_flip_left_right(patch, seed=crop_seed + 1)
        return tf.image.stateless_random_flip_up_down(patch, seed=crop_seed + 2)

    stream = tf.data.Dataset.from_generator(
        each_image, output_signature=tf.TensorSpec([None, None, channels], tf.uint8)
    )
    seeds = tf.data.Dataset.random(seed=seed + 1).batch(2)
    return tf.data.Dataset.zip(stream, seeds).map(crop_and_flip, num_parallel_calls=tf.data.AUTOTUNE)
