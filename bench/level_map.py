"""The CPU time of the photo recipe's data preparation per batch, with the level map's
window means as `tf.nn.avg_pool2d` (before) and as running sums (`noise.level_map` now),
taking turns in one process (issue 24: a cheaper training step).

A batch is what `dae train --config configs/photo-estimator.toml` prepares for each
step: 32 crops of 64x64 from the recipe's clean photographs (random pixels here, so it
runs without `../shared`), the mixture's noise, a quarter made gray, and the true level
map the estimator learns from (`training.noise_estimation.estimator_pair`). Each round
times `--batches` batches of each variant (process CPU time, both cores together, each
variant compiled once as `tf.data` does); the medians of the rounds are printed, with
the level map alone beside them.

    python bench/level_map.py --rounds 7
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from unittest import mock

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common  # noqa: E402


def pooled_level_map(noisy, clean):
    """The level map as it was before: two `avg_pool2d` passes of SAME padding."""
    from dae_cli.backend import tf
    from dae_cli.noise import LEVEL_WINDOW

    error = tf.square(tf.cast(noisy, tf.float32) - tf.cast(clean, tf.float32))
    columns = tf.nn.avg_pool2d(error, [LEVEL_WINDOW, 1], strides=1, padding="SAME")
    local = tf.nn.avg_pool2d(columns, [1, LEVEL_WINDOW], strides=1, padding="SAME")
    return tf.sqrt(local + 1e-12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batches", type=int, default=10, help="batches a variant runs each round")
    args = parser.parse_args()

    from dae_cli.backend import tf
    from dae_cli.config import Config
    from dae_cli.noise import NoiseSpec, level_map
    from dae_cli.training import data, noise_estimation

    config = Config.from_toml(common.ROOT / "configs" / "photo-estimator.toml")
    spec = NoiseSpec.from_config(config)
    crops = tf.constant(np.random.default_rng(0).integers(0, 256, (config.batch_size, 64, 64, 3), np.uint8))

    def batch_with(map_function):
        """The batch's preparation with `map_function` as the level map `estimator_pair`
        calls, traced (the map fixed in the graph) with it in place."""
        prepare = tf.function(
            lambda seed: data._clean_to_pair(crops, seed, spec, False, config.gray_fraction, noise_estimator=True)
        )
        with mock.patch.object(noise_estimation, "level_map", map_function):
            prepare(tf.constant([0, 1], tf.int64))
        return prepare

    clean = tf.constant(crops.numpy() / 255, tf.float32)
    noisy = clean + tf.random.stateless_normal(clean.shape, [1, 0]) * 0.1
    variants = {
        "batch, avg_pool": batch_with(pooled_level_map),
        "batch, running sums": batch_with(level_map),
        "level map alone, avg_pool": tf.function(lambda seed: pooled_level_map(noisy, clean)),
        "level map alone, running sums": tf.function(lambda seed: level_map(noisy, clean)),
    }
    seconds = {name: [] for name in variants}
    for function in variants.values():
        function(tf.constant([0, 1], tf.int64))  # trace and compile outside the timing
    for round_ in range(args.rounds):
        for name, function in variants.items():
            start = time.process_time()
            for index in range(args.batches):
                tf.nest.map_structure(lambda t: t.numpy(), function(tf.constant([round_, index], tf.int64)))
            seconds[name].append((time.process_time() - start) / args.batches)
    print(f"Machine: {common.machine()}\ncommand: python bench/level_map.py {' '.join(sys.argv[1:])}\n")
    print("| per batch of 32 crops of 64x64 | CPU ms (median of rounds) |")
    print("| --- | ---: |")
    for name, values in seconds.items():
        print(f"| {name} | {1000 * statistics.median(values):.1f} |")


if __name__ == "__main__":
    main()
