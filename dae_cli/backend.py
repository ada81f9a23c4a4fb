"""Imports TensorFlow and Keras once, quietly.

Modules that need TensorFlow import `tf` and `keras` from here, never at the top of
the CLI, so `dae --help` stays fast. TensorFlow's C++ start-up chatter (oneDNN, CUDA
probing, CPU features) goes straight to file descriptor 2, so it is captured while
TensorFlow starts and shown only if the import fails or `DAE_DEBUG` is set.
"""

import contextlib
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


@contextlib.contextmanager
def _captured_native_stderr():
    if os.environ.get("DAE_DEBUG", "") not in ("", "0"):
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

    absl.logging.set_verbosity(absl.logging.ERROR)
    import tensorflow as tf
    import keras

    tf.get_logger().setLevel("ERROR")
    tf.constant(0)  # the first op initialises devices, which logs too

__all__ = ["tf", "keras"]
