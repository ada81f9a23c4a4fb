"""Where and how training computes: the `tf.distribute` strategy, the Keras precision
policy, steps per execution, TensorFlow's CPU allocator, and the Keras workaround that
multi-worker training needs.

Everything here touches TensorFlow's or Keras' global state, so it is kept in one place
and imported only once a run has passed its checks (`dae --help` never gets here).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from dae_cli.config import STRATEGIES, Config
from dae_cli.errors import UsageError

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

# Training steps per call into TensorFlow: fewer trips through Python and Keras'
# callbacks per step. Measured on a 2-core CPU (bench/steps.py): 8 steps gave about
# 1.2x the images/s of 1. On a GPU a step of this small model is over before Python has
# dispatched the next one, so it runs more. Ctrl-C waits for the run under way.
CPU_STEPS_PER_EXECUTION = 8
GPU_STEPS_PER_EXECUTION = 32

# TensorFlow reads this when it makes its first tensor (tensorflow/core/common_runtime/
# process_state.cc). By default its CPU tensors come from malloc, which gives the big ones
# back to the kernel when they are freed, so every training step faults its activations
# in again: about 100,000 page faults a second and a fifth of the CPU in the kernel for
# the photo recipe on 2 cores. The BFC allocator keeps freed memory for the next step:
# 11% less CPU, epochs about 1.08x faster, the same losses (BENCHMARKS.md, issue 24's
# fourth training leg).
POOLED_CPU_ALLOCATOR = "TF_CPU_ALLOCATOR_USE_BFC"


@dataclasses.dataclass(frozen=True)
class Runtime:
    """The strategy a run trains under, by its `--strategy` name and as TensorFlow's object."""

    name: str
    strategy: tf.distribute.Strategy

    @property
    def is_chief(self) -> bool:
        """Whether this process writes the model (always, except on a multi-worker non-chief)."""
        return self.strategy.extended.should_checkpoint

    @property
    def replicas(self) -> int:
        return self.strategy.num_replicas_in_sync

    @property
    def is_multi_worker(self) -> bool:
        return self.name == "multi-worker"

    def fit_fixes(self, model: keras.Model) -> contextlib.AbstractContextManager:
        """What `model.fit` must run inside: the multi-worker workaround, or nothing."""
        return multi_worker_fixes(model) if self.is_multi_worker else contextlib.nullcontext()


def pool_cpu_memory() -> None:
    """Has TensorFlow keep the CPU memory a step frees for the steps after it (its BFC
    allocator), unless the environment already says which allocator to use.

    It must run before TensorFlow makes its first tensor: `Trainer.prepare` calls it
    first. In a process that had run TensorFlow before (a user's script that trains
    after other work), the allocator is already chosen and this changes nothing. The
    setting stays in `os.environ`, so processes started afterwards pool too.
    """
    os.environ.setdefault(POOLED_CPU_ALLOCATOR, "true")


def start_runtime(name: str, config: Config) -> Runtime:
    """Makes the strategy for `--strategy name`, then seeds Keras and sets its precision.

    The strategy comes first: a multi-worker strategy must exist before any op runs.
    """
    from dae_cli.backend import keras

    runtime = Runtime(name, make_strategy(name))
    keras.utils.set_random_seed(config.seed)
    keras.mixed_precision.set_global_policy(precision_policy(config.precision))
    return runtime


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The `tf.distribute` strategy for `--strategy`."""
    from dae_cli.backend import tf

    if name == "one":
        return tf.distribute.get_strategy()
    if name == "multi-worker":
        # Configured from TF_CONFIG; must come before anything initialises TensorFlow.
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored":
        devices = gpus or tf.config.list_logical_devices("CPU")  # see DAE_CPU_DEVICES
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    if name == "auto":
        return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    raise UsageError(f"--strategy must be one of {', '.join(STRATEGIES)}, got {name!r}")


def precision_policy(name: str) -> str:
    """The Keras dtype policy for `precision`; `auto` is bfloat16 mixed precision where
    the CPU computes bfloat16 natively (AVX512-BF16 or AMX, used by oneDNN) and no GPU
    is visible, else float32 (emulated bfloat16 is slower than float32)."""
    if name != "auto":
        return name
    from dae_cli.backend import tf

    if tf.config.list_physical_devices("GPU"):
        return "float32"
    return "mixed_bfloat16" if cpu_has_native_bfloat16() else "float32"


def cpu_has_native_bfloat16() -> bool:
    """Whether the CPU computes bfloat16 itself (AVX512-BF16 or AMX), as /proc/cpuinfo says."""
    from dae_cli.hardware import native_bfloat16

    return native_bfloat16()


def use_xla(config: Config) -> bool:
    """Whether training steps are compiled with XLA: with `jit_compile`, and always for
    mixed bfloat16 on a CPU that would emulate bfloat16 (no AVX512-BF16 or AMX, no GPU).
    There the plain step of the photo recipe sometimes took kernels 8-17x slower than
    XLA's, which computes bfloat16 in float32 and rounds, to the same loss
    (BENCHMARKS.md, issue 25; tests/test_fast_paths.py)."""
    if config.jit_compile:
        return True
    if precision_policy(config.precision) != "mixed_bfloat16":
        return False
    from dae_cli.backend import tf

    return not tf.config.list_physical_devices("GPU") and not cpu_has_native_bfloat16()


def steps_per_execution(steps_per_epoch: int, distribution: tf.distribute.Strategy) -> int:
    """Steps per call for a run under `distribution` (a `tf.distribute` strategy).

    Call it outside `distribution.scope()`, where only the default strategy is current:
    that is how it tells a distributed run from a single-device one.
    """
    from dae_cli.backend import tf

    if distribution is not tf.distribute.get_strategy():
        # Keras' multi-step loop fails on distributed iterators ("You must feed a value
        # for placeholder tensor", Keras 3.15, mirrored on two CPUs): one step per call.
        return 1
    most = GPU_STEPS_PER_EXECUTION if tf.config.list_logical_devices("GPU") else CPU_STEPS_PER_EXECUTION
    return max(1, min(most, steps_per_epoch))


@contextlib.contextmanager
def multi_worker_fixes(model: keras.Model) -> Iterator[None]:
    """Works around two Keras 3 bugs that break `fit` under MultiWorkerMirroredStrategy.

    Upstream: https://github.com/keras-team/keras/issues/20585 (open; every Keras 3
    release is affected, so there is no working version to pin).
    1. `fit` reduces a per-replica data batch with `strategy.reduce` to build the model
       symbolically, which fails across workers. The model is already built, so the
       strategy is left for `fit` to find from the enclosing `strategy.scope()`.
    2. Step outputs (scalar losses) are reduced with `axis=0`, invalid for scalars; they
       are reduced with `axis=None` instead (`_reduce_scalars_over_no_axis`).
    Both touch private Keras code, so they are applied only for `--strategy multi-worker`,
    only during `fit`, and undone after.
    """
    from keras.src.backend.tensorflow import trainer

    original_reduce = trainer.reduce_per_replica
    saved_strategy = model._distribute_strategy
    model._distribute_strategy = None
    trainer.reduce_per_replica = _reduce_scalars_over_no_axis(trainer, original_reduce)
    try:
        yield
    finally:
        trainer.reduce_per_replica = original_reduce
        model._distribute_strategy = saved_strategy


def _reduce_scalars_over_no_axis(trainer, original_reduce):
    """Keras' `reduce_per_replica`, but scalars are averaged with `axis=None` (bug 2 above)."""
    from dae_cli.backend import tf

    def reduce_per_replica(values, strategy, reduction):
        def reduce_one(value):
            local = strategy.experimental_local_results(value) if trainer._is_per_replica_instance(value) else [value]
            if all(getattr(t, "shape", None) is not None and t.shape.rank == 0 for t in local):
                return strategy.reduce("MEAN", value, axis=None)
            return original_reduce(value, strategy, reduction)

        return tf.nest.map_structure(reduce_one, values)

    return reduce_per_replica
