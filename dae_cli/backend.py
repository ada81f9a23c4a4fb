"""Imports TensorFlow and Keras once, quietly.

Modules that need TensorFlow import `tf` and `keras` from here, never at the top of
the CLI, so `dae --help` stays fast. TensorFlow's C++ start-up chatter (oneDNN, CUDA
probing, CPU features) goes straight to file descriptor 2, so it is captured while
TensorFlow starts and shown only if the import fails or `DAE_DEBUG` is set.

`DAE_CPU_DEVICES=N` splits the CPU into N logical devices, for `--strategy mirrored`
on a machine without GPUs.
"""

import contextlib
import os
import sys
import tempfile

_DEBUG = os.environ.get("DAE_DEBUG", "") not in ("", "0")  # also set by `--debug`
if not _DEBUG:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


@contextlib.contextmanager
def _captured_native_stderr():
    if _DEBUG:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.buffer.write(sink.read())
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


with _captured_native_stderr():
    import absl.logging

    if not _DEBUG:
        absl.logging.set_verbosity(absl.logging.ERROR)
    import keras
    import tensorflow as tf

    if not _DEBUG:
        tf.get_logger().setLevel("ERROR")
    _split_cpu = int(os.environ.get("DAE_CPU_DEVICES", "0") or 0)
    if _split_cpu > 1:
        # N logical CPU devices, so `--strategy mirrored` can run (and be tested) without GPUs.
        tf.config.set_logical_device_configuration(
            tf.config.list_physical_devices("CPU")[0],
            [tf.config.LogicalDeviceConfiguration() for _ in range(_split_cpu)],
        )
    if "TF_CONFIG" not in os.environ:
        # The first op initialises devices, which logs too. Multi-worker training must
        # create its strategy before any op runs, so it is left to log.
        tf.constant(0)

__all__ = ["tf", "keras"]
