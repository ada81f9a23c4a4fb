"""What the noise estimator costs in a training step of a noise-estimating photo model
(issue 24: a cheaper training step).

`dae train` used to run the estimator twice a step: inside the autoencoder, whose body
reads its map, and again in the loss, which scored its raw estimate against the true
map. This times, in one process under XLA as the recipe trained, the forward and
backward pass of the whole autoencoder and of the estimator alone
(`noise_estimation.estimator_model`) on a batch of the recipe's size (32 crops of
64x64), CPU time of the process, and prints their ratio: about the share of a step the
second run cost, which training now saves by fitting the autoencoder with its estimate
as a second output (`noise_estimation.training_model`).

    python bench/estimator_cost.py training/photo --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a noise-estimating model's directory (its autoencoder.keras)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5, help="passes of each model a round")
    args = parser.parse_args()

    from dae_cli.backend import tf
    from dae_cli.models import artifacts
    from dae_cli.training.noise_estimation import estimator_model

    autoencoder = artifacts.load_keras_model(Path(args.model) / artifacts.KERAS_MODEL, compile=False)
    models = {"autoencoder": autoencoder, "estimator alone": estimator_model(autoencoder)}
    batch = tf.constant(np.random.default_rng(0).random((32, 64, 64, autoencoder.input_shape[-1]), np.float32))

    def pass_of(model):
        @tf.function(jit_compile=True)
        def forward_and_backward(images):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.abs(model(images, training=True)))
            return tape.gradient(loss, model.trainable_variables)

        return forward_and_backward

    passes = {name: pass_of(model) for name, model in models.items()}
    seconds = {name: [] for name in models}
    for function in passes.values():
        function(batch)  # compile outside the timing
    for _ in range(args.rounds):
        for name, function in passes.items():
            for _ in range(args.steps):
                start = time.process_time()
                [gradient.numpy() for gradient in function(batch)]
                seconds[name].append(time.process_time() - start)
    print(f"Machine: {common.machine()}\ncommand: python bench/estimator_cost.py {' '.join(sys.argv[1:])}\n")
    print("| forward and backward, batch of 32 crops of 64x64 | CPU s (median) |")
    print("| --- | ---: |")
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    for name, value in medians.items():
        print(f"| {name} | {value:.3f} |")
    print(f"\nthe estimator alone / the autoencoder: {medians['estimator alone'] / medians['autoencoder']:.3f}")
    sys.stdout.flush()
    os._exit(0)  # tf's threads can hang the interpreter's teardown


if __name__ == "__main__":
    main()
