"""Shared fixtures: running the CLI (in this process, or in a new one where the process
matters), and one small model trained on mnist-sample."""

from __future__ import annotations

import contextlib
import functools
import importlib
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "dae_cli" / "data" / "mnist_sample.npz"
# Tests train in float32 unless they are about bfloat16: `--precision auto` picks mixed
# bfloat16 on CPUs with AVX512-BF16 or AMX, and a figure must not depend on the CPU.
FLOAT32 = ("--precision", "float32")


def cli_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAE_")}
    # The code of this checkout, whatever the working directory and whatever is installed.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(NO_COLOR="1", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def drop_root_file_powers() -> None:
    """Makes file permissions apply to this process even as root (drops CAP_DAC_*).

    CI and the development machines run as root, where `chmod 000` stops nobody; an
    unreadable file or a read-only folder can only be tested for real this way.
    """
    if os.geteuid() != 0:
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_capbset_drop, cap_dac_override, cap_dac_read_search = 24, 1, 2
    for capability in (cap_dac_override, cap_dac_read_search):
        if libc.prctl(pr_capbset_drop, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def run_dae_process(
    *args, cwd=None, input=None, env=None, timeout=300, unprivileged=False
) -> subprocess.CompletedProcess:
    """Runs `python -m dae_cli ARGS` in a new process as a user would, capturing stdout
    and stderr apart. For what only a process shows: signals, exit at interpreter end,
    what gets imported, settings read when TensorFlow starts, dropped file powers."""
    return subprocess.run(
        [sys.executable, "-m", "dae_cli", *map(str, args)],
        cwd=cwd,
        input=input,
        capture_output=True,
        text=True,
        env=env or cli_env(),
        timeout=timeout,
        preexec_fn=drop_root_file_powers if unprivileged else None,
    )


# Read once, when Python, TensorFlow or Keras start: a test that sets them needs a new process.
STARTUP_SETTINGS = ("DAE_CPU_DEVICES", "TF_CONFIG", "KERAS_HOME", "KERAS_BACKEND", "CUDA_VISIBLE_DEVICES")


@contextlib.contextmanager
def native_output(fd: int, sink: list):
    """Collects into `sink` what is written straight to file descriptor `fd` meanwhile
    (native code such as TensorFlow's C++ logging writes there, not to sys.stderr)."""
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as file:
        os.dup2(file.fileno(), fd)
        try:
            yield
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            file.seek(0)
            sink.append(file.read().decode(errors="replace"))


@functools.cache
def console_script_main():
    """`main(argv)` of the module the `dae` console script runs, as pyproject.toml names it."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    with open(ROOT / "pyproject.toml", "rb") as handle:
        module, _ = tomllib.load(handle)["project"]["scripts"]["dae"].split(":")
    return importlib.import_module(module).main


def run_dae(*args, cwd=None, input=None, env=None, timeout=None, stderr=None) -> subprocess.CompletedProcess:
    """Runs `dae ARGS` in this process through the console script's own entry point
    (`main` beside its `run`), and returns what `run_dae_process` would: the exit code,
    stdout and stderr apart. It saves the 3-5 s a new process spends importing TensorFlow.

    Like a process's, its stdout and stderr hold what native code writes to file
    descriptors 1 and 2 too. What `main` changes for the process (environment, working
    directory, signal handlers, warning filters, Keras' precision policy) is put back.
    `timeout` is accepted for the signature's sake: a call in this process is not cut
    short. `stderr`, a text file (say on a pseudo-terminal), takes what dae writes there
    instead of capturing it.
    """
    env, default = (cli_env(), cli_env()) if env is None else (dict(env), cli_env())
    for name in (*STARTUP_SETTINGS, "PYTHONPATH"):
        if env.get(name) != default.get(name):
            raise ValueError(f"{name} is read when a process starts: use run_dae_process")
    main = console_script_main()
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    saved_signals = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    keras = sys.modules.get("keras")
    saved_policy = keras.mixed_precision.global_policy().name if keras else "float32"
    stdout, captured, native_out, native_err = io.StringIO(), io.StringIO(), [], []
    saved_stdin, sys.stdin = sys.stdin, io.StringIO(input or "")
    try:
        os.environ.clear()
        os.environ.update(env)
        if cwd is not None:
            os.chdir(cwd)
        sys.stdout.flush(), sys.stderr.flush()
        with (
            native_output(1, native_out),
            native_output(2, native_err),
            warnings.catch_warnings(),
            contextlib.redirect_stdout(stdout),
            contextlib.redirect_stderr(stderr or captured),
        ):
            try:
                code = main([str(arg) for arg in args])
            except SystemExit as done:
                code = done.code if isinstance(done.code, int) else 0 if done.code is None else 1
    finally:
        sys.stdin = saved_stdin
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        for signum, handler in saved_signals.items():
            signal.signal(signum, handler)
        keras = sys.modules.get("keras")
        if keras:
            keras.mixed_precision.set_global_policy(saved_policy)
    out, err = stdout.getvalue() + "".join(native_out), captured.getvalue() + "".join(native_err)
    return subprocess.CompletedProcess(["dae", *map(str, args)], int(code), out, err)


def assert_clean_error(result: subprocess.CompletedProcess, exit_code: int, *fragments: str) -> None:
    """A documented exit code, and on stderr one `error:` line and no traceback."""
    assert result.returncode == exit_code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors, result.stderr
    for fragment in fragments:
        assert any(fragment in line for line in errors), (fragment, result.stderr)


@pytest.fixture(scope="session")
def mnist_test_images() -> tuple[np.ndarray, np.ndarray]:
    """(clean, noisy) float32 (N, 28, 28, 1) test digits; noise x + N(0.5, 0.5), clipped."""
    with np.load(SAMPLE) as archive:
        clean = archive["x_test"][:64].astype(np.float32)[..., None] / 255.0
    rng = np.random.default_rng(7)
    noisy = np.clip(clean + rng.normal(0.5, 0.5, clean.shape), 0, 1).astype(np.float32)
    return clean, noisy


SHIPPED = ROOT / "tests" / "data"  # public-domain photographs (see its README)


def shipped(name: str, mode: str = "L") -> np.ndarray:
    """A photograph of tests/data, float64 on [0, 1]: gray (h, w) or RGB (h, w, 3)."""
    return np.asarray(Image.open(SHIPPED / f"{name}.png").convert(mode), np.float64) / 255


def photo_folders(root: Path, names: tuple[str, ...], mode: str, validation: tuple[str, int] = ("chelsea", 3)):
    """Training and validation folders under `root` of the quarters of shipped photographs
    (quarter `validation[1]` of `validation[0]` validates); returns (train, val)."""
    train, val = root / "train", root / "val"
    train.mkdir(), val.mkdir()
    for name in names:
        image = np.asarray(Image.open(SHIPPED / f"{name}.png").convert(mode))
        height, width = image.shape[0] // 2, image.shape[1] // 2
        for i, (y, x) in enumerate([(0, 0), (0, width), (height, 0), (height, width)]):
            folder = val if (name, i) == validation else train
            Image.fromarray(image[y : y + height, x : x + width]).save(folder / f"{name}-{i}.png")
    return train, val


def save_gray(pixels: np.ndarray, path: Path) -> Path:
    Image.fromarray(np.rint(pixels[..., 0] * 255).astype(np.uint8)).save(path)
    return path


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory) -> Path:
    """A model trained through the CLI on the shipped MNIST sample (a few seconds)."""
    out = tmp_path_factory.mktemp("model") / "dae-model"
    result = run_dae("train", "--dataset", "mnist-sample", "--epochs", "3", "--limit", "3000", *FLOAT32, "--out", out)
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture
def cpu_flags(monkeypatch, tmp_path):
    """Fakes the CPU's flags where `dae_cli.hardware` reads them (an AVX2 CPU plus the
    flags given), and shows TensorFlow no GPU: `cpu_flags("avx512_bf16")`."""
    from dae_cli import hardware
    from dae_cli.backend import tf

    def fake(flags: str) -> None:
        (tmp_path / "cpuinfo").write_text(f"processor : 0\nflags : fpu sse2 avx2 {flags}\n")

    fake("")
    monkeypatch.setattr(hardware, "CPUINFO", tmp_path / "cpuinfo")
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    return fake


@pytest.fixture
def model_copy(trained_model, tmp_path) -> Path:
    """A private copy of the trained model that a test may damage."""
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(trained_model, copy)
    return copy


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]
