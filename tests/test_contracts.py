"""Promises of the README that users hit: inputs, global options, interrupts, pipes,
early validation, resume, edge values, and every setting's flag doing what it says."""

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import FLOAT32, assert_clean_error, cli_env, json_lines, run_dae, run_dae_process, save_gray
from PIL import Image

from dae_cli.models import artifacts

TINY_ANY_PRECISION = ["--dataset", "mnist-sample", "--limit", "128", "--epochs", "1", "--batch-size", "32"]
TINY = [*TINY_ANY_PRECISION, *FLOAT32]


def default_sigint() -> None:
    # A shell starts background jobs with SIGINT ignored, and Python then leaves it so;
    # a user's Ctrl-C reaches a foreground dae, which this restores.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_dae(*args, env=None, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "dae_cli", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env or cli_env(),
        preexec_fn=default_sigint,
        **kwargs,
    )


@pytest.fixture
def digit_folder(tmp_path, mnist_test_images):
    folder = tmp_path / "digits"
    folder.mkdir()
    for i in range(3):
        save_gray(mnist_test_images[1][i], folder / f"n{i}.png")
    return folder


# --- inputs -----------------------------------------------------------------------


def test_a_folder_denoised_twice_does_not_take_its_outputs_for_inputs(trained_model, digit_folder):
    first = run_dae("denoise", digit_folder, "-m", trained_model)
    assert first.returncode == 0, first.stderr
    again = run_dae("denoise", digit_folder, "-m", trained_model, "--overwrite")
    assert again.returncode == 0, again.stderr
    assert sorted(again.stdout.split()) == sorted(first.stdout.split())  # 3 outputs, rewritten
    assert "skipped 3 file(s) named like dae's outputs" in again.stderr
    assert sorted(p.name for p in digit_folder.iterdir()) == [
        "n0.denoised.png",
        "n0.png",
        "n1.denoised.png",
        "n1.png",
        "n2.denoised.png",
        "n2.png",
    ]
    # Named explicitly, an output is an input like any other; -q drops the note.
    named = run_dae("-q", "denoise", digit_folder / "n0.denoised.png", "-m", trained_model)
    assert named.returncode == 0 and named.stderr == ""
    assert (digit_folder / "n0.denoised.denoised.png").exists()
    only_outputs = digit_folder.parent / "outputs"
    only_outputs.mkdir()
    (digit_folder / "n1.denoised.png").rename(only_outputs / "n1.denoised.png")
    assert_clean_error(run_dae("denoise", only_outputs, "-m", trained_model), 2, "no images other than dae's outputs")


# --- validation before anything runs -------------------------------------------------


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--strategy", "bogus"], "Invalid value for '--strategy'"),
        (["--seed", "-1"], "seed must be between 0 and"),
        (["--epochs", "0"], "epochs must be positive"),
    ],
)
def test_bad_train_flags_create_nothing_and_import_nothing(tmp_path, args, fragment):
    # `--dataset mnist` with an empty Keras cache would download: it must not get there.
    script = f"""
import sys
from dae_cli.cli.entry import main
code = main(["train", "--dataset", "mnist", "--out", "x/y/z", *{args!r}])
print(code, "tensorflow" in sys.modules)
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=cli_env(KERAS_HOME=str(tmp_path / "keras")),
    )
    assert result.stdout.split() == ["2", "False"], result.stderr
    assert fragment in result.stderr
    assert list(tmp_path.iterdir()) == []


# --- global options, help, Ctrl-C, pipes -----------------------------------------------


def test_global_options_work_after_the_command_too(trained_model):
    before = run_dae("--json", "info", trained_model)
    after = run_dae("info", trained_model, "--json")
    assert after.returncode == 0, after.stderr
    assert json.loads(after.stdout) == json.loads(before.stdout)
    quiet = run_dae("info", "-q", trained_model / "missing")
    assert_clean_error(quiet, 1, "does not exist")
    debug = run_dae("info", trained_model / "missing", "--debug")
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_bare_dae_shows_the_help_and_succeeds():
    result = run_dae()
    assert result.returncode == 0
    assert "Usage: dae" in result.stdout and "train" in result.stdout
    assert "error" not in result.stderr


def test_debug_turns_python_warnings_back_on():
    # A command that meets a library warning, as TensorFlow and Keras commands do.
    script = """
import sys, warnings
from dae_cli.cli import commands, entry

@commands.app.command("warn-for-test", hidden=True)
def warn_for_test():
    warnings.warn("a library warning", UserWarning)

print(entry.main(sys.argv[1:]))
"""

    def run(*args):
        result = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, env=cli_env())
        assert result.stdout.strip() == "0", result.stderr
        return result.stderr

    assert "a library warning" not in run("warn-for-test")
    assert "UserWarning: a library warning" in run("--debug", "warn-for-test")
    assert "UserWarning: a library warning" in run("warn-for-test", "--debug")


def assert_interrupted(process: subprocess.Popen) -> None:
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert [line for line in stderr.splitlines() if line.strip()] == ["error: interrupted"]


def test_ctrl_c_during_denoise_exits_130_with_one_line(trained_model, tmp_path, mnist_test_images):
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(1000):
        save_gray(mnist_test_images[1][i % 64], folder / f"{i:04d}.png")
    process = start_dae("denoise", folder, "-m", trained_model, "-o", tmp_path / "out", "--batch-size", "8")
    assert process.stdout.readline().endswith(".denoised.png\n")  # under way
    process.send_signal(signal.SIGINT)
    assert_interrupted(process)


def test_ctrl_c_while_decode_waits_for_stdin_exits_130(trained_model, tmp_path):
    process = start_dae("decode", "-", "-m", trained_model, "-o", tmp_path / "out", stdin=subprocess.PIPE)
    time.sleep(3)  # reading stdin, which stays open
    process.send_signal(signal.SIGINT)
    assert_interrupted(process)


def test_a_closed_pipe_ends_quietly_with_exit_141(trained_model, tmp_path, mnist_test_images):
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(1000):  # ~350 kB of JSON lines: far more than a pipe holds
        save_gray(mnist_test_images[1][i % 64], folder / f"{i:04d}.png")
    env = cli_env()
    del env["PYTHONUNBUFFERED"]  # as a user runs it: stdout block-buffered
    command = f"set -o pipefail; '{sys.executable}' -m dae_cli encode '{folder}' -m '{trained_model}' | head -1"
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 141, result.stderr
    assert result.stderr == ""  # no traceback, no error line, no "Exception ignored"
    (record,) = json_lines(result.stdout)
    assert record["source"].endswith("0000.png") and len(record["latent"]) == 16


# --- the live display --------------------------------------------------------------


def test_training_on_a_terminal_draws_live_progress(tmp_path):
    primary, secondary = pty.openpty()
    env = cli_env(TERM="xterm-256color", COLUMNS="100")
    del env["NO_COLOR"]
    process = subprocess.Popen(
        [sys.executable, "-m", "dae_cli", "train", *TINY, "--epochs", "2", "--out", tmp_path / "m"],
        stdout=subprocess.PIPE,
        stderr=secondary,
        env=env,
    )
    os.close(secondary)
    drawn = b""
    while True:  # read as it comes, or the terminal's buffer would fill and block dae
        ready, _, _ = select.select([primary], [], [], 120)
        if not ready:
            break
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # the other end closed
            break
        if not chunk:
            break
        drawn += chunk
    process.wait(timeout=120)
    os.close(primary)
    assert process.returncode == 0, drawn.decode(errors="replace")
    text = drawn.decode(errors="replace")
    assert "\x1b[" in text  # colour and cursor control: Rich is drawing
    assert "━" in text  # the progress bar
    assert "epoch 1/2" in text and "epoch 2/2" in text and "val_loss" in text


# --- edge values ---------------------------------------------------------------------


def test_perfect_reconstructions_are_reported_not_a_crash(tmp_path):
    # No noise at all: the noisy images are the clean ones, their PSNR infinite.
    out = tmp_path / "m"
    result = run_dae("--json", "train", *TINY, "--noise-std", "0", "--noise-mean", "0", "--out", out)
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)["metrics"]
    assert metrics["psnr_noisy"]["mean"] is None and metrics["psnr_noisy"]["perfect"] == 128
    assert metrics["psnr_denoised"]["mean"] is not None
    table = run_dae("evaluate", "-m", out, "--limit", "20")
    assert table.returncode == 0, table.stderr
    assert "inf dB (perfect)" in table.stdout
    info = run_dae("info", out)
    assert info.returncode == 0 and "inf (perfect)" in info.stdout


def test_limit_means_at_most_n(trained_model):
    result = run_dae("evaluate", "-m", trained_model, "--limit", "99999", "--json")  # --json after, too
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["images"] == 1000  # all the sample's test images


# --- resume --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wide_model(tmp_path_factory):
    """A model that differs from the defaults in architecture, noise, rate and seed."""
    out = tmp_path_factory.mktemp("wide") / "model"
    result = run_dae(
        "train",
        *TINY,
        "--latent-dim",
        "32",
        "--noise-std",
        "0.3",
        "--learning-rate",
        "0.002",
        "--seed",
        "4",
        "--out",
        out,
    )
    assert result.returncode == 0, result.stderr
    return out


def test_evaluate_defaults_to_the_models_training_seed(wide_model):
    trained = artifacts.read_manifest(wide_model)["metrics"]
    result = run_dae("--json", "evaluate", "-m", wide_model)
    assert result.returncode == 0, result.stderr
    evaluated = json.loads(result.stdout)
    assert evaluated["seed"] == 4
    assert evaluated["psnr_noisy"] == trained["psnr_noisy"]


def optimizer_of(model_dir):
    return artifacts.load_keras_model(model_dir / "autoencoder.keras", compile=True).optimizer


def test_resume_with_a_config_file_changes_only_the_keys_it_sets(wide_model, tmp_path):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(wide_model, model)
    config = tmp_path / "more.toml"
    config.write_text("epochs = 3\n")
    result = run_dae("train", "--resume", "--config", config, "--out", model)
    assert result.returncode == 0, result.stderr
    saved = artifacts.read_manifest(model)["config"]
    assert (saved["epochs"], saved["latent_dim"], saved["noise_std"], saved["learning_rate"], saved["seed"]) == (
        3,
        32,
        0.3,
        0.002,
        4,
    )
    # Training further restarts the cosine schedule for the new epochs (4 steps each),
    # from the learning rate: not the end of the old schedule, 1% of it.
    schedule = optimizer_of(model).get_config()["learning_rate"]["config"]
    assert schedule["initial_learning_rate"] == pytest.approx(0.002)
    assert schedule["decay_steps"] == 2 * 4
    assert int(optimizer_of(model).iterations.numpy()) == 2 * 4

    constant = run_dae(
        "train", "--resume", "--epochs", "4", "--learning-rate", "0.0005", "--lr-schedule", "constant", "--out", model
    )
    assert constant.returncode == 0, constant.stderr
    assert float(optimizer_of(model).learning_rate.numpy()) == pytest.approx(0.0005)
    assert artifacts.read_manifest(model)["config"]["lr_schedule"] == "constant"

    # A run moved to a machine where another precision is fast goes on in it, with a new
    # schedule over the epochs left (the layers it was built with are rebuilt).
    moved = run_dae("train", "--resume", "--epochs", "5", "--precision", "mixed_bfloat16", "--out", model)
    assert moved.returncode == 0, moved.stderr
    assert artifacts.read_manifest(model)["config"]["precision"] == "mixed_bfloat16"
    resumed = artifacts.load_keras_model(model / artifacts.KERAS_MODEL, compile=True)
    assert resumed.get_layer("encoder").get_layer("latent_vector").dtype_policy.name == "float32"
    conv = [layer for layer in resumed.get_layer("encoder").layers if layer.name.startswith("conv2d")]
    assert conv and {layer.dtype_policy.name for layer in conv} == {"mixed_bfloat16"}
    assert int(resumed.optimizer.iterations.numpy()) == 1 * 4


def test_the_last_epoch_is_checkpointed_before_finishing_can_fail(tmp_path, monkeypatch):
    from dae_cli.apply import metrics
    from dae_cli.config import Config
    from dae_cli.training import trainer as training

    out = tmp_path / "m"
    overrides = dict(dataset="mnist-sample", limit=128, epochs=2, batch_size=32, precision="float32")

    def broken(*args, **kwargs):
        raise RuntimeError("metrics failed")

    monkeypatch.setattr(metrics, "quality_report", broken)
    with pytest.raises(RuntimeError, match="metrics failed"):
        training.train(None, overrides, out, strategy="one")
    state = json.loads((training.checkpoint_path(out) / "state.json").read_text())
    assert state["epochs_done"] == 2 and not out.exists()
    monkeypatch.undo()
    finished = run_dae("train", "--resume", "--out", out)  # finishes without training again
    assert finished.returncode == 0, finished.stderr
    assert "epoch" not in finished.stderr.replace("epochs", "")
    assert artifacts.read_manifest(out)["epochs_done"] == 2
    assert not training.checkpoint_path(out).exists()
    assert Config.from_dict(artifacts.read_manifest(out)["config"]).epochs == 2


# --- train's commit ------------------------------------------------------------------


def test_a_model_that_appears_at_out_while_training_is_not_replaced(tmp_path):
    from dae_cli.backend import keras
    from dae_cli.errors import DaeError
    from dae_cli.training import trainer as training

    out = tmp_path / "m"

    class SomeoneElse(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            out.mkdir()
            (out / "dae.json").write_text('{"format_version": 1}')

    with pytest.raises(DaeError, match=r"appeared while training.*the new model is kept at .*m\.new"):
        training.train(
            None,
            dict(dataset="mnist-sample", limit=128, epochs=1, batch_size=32, precision="float32"),
            out,
            strategy="one",
            callbacks=[SomeoneElse()],
        )
    assert (out / "dae.json").read_text() == '{"format_version": 1}'
    kept = tmp_path / "m.new"
    manifest = artifacts.read_manifest(kept)
    artifacts.verify_files(kept, manifest, ("encoder", "decoder", "autoencoder.keras"))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".dae-tmp")]


def test_a_failed_final_rename_keeps_the_new_model_and_says_where(tmp_path, monkeypatch):
    from dae_cli.errors import DaeError
    from dae_cli.training import trainer as training

    real_commit = training.commit_directory

    def failing(staging, final, replace=True):
        if final != tmp_path / "m":
            return real_commit(staging, final, replace)  # checkpoints still work
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(training, "commit_directory", failing)
    with pytest.raises(DaeError, match=r"Input/output error; the new model is kept at .*m\.new"):
        training.train(
            None,
            dict(dataset="mnist-sample", limit=128, epochs=1, batch_size=32, precision="float32"),
            tmp_path / "m",
            strategy="one",
        )
    artifacts.verify_files(tmp_path / "m.new", artifacts.read_manifest(tmp_path / "m.new"), ("encoder", "decoder"))


# --- flags that had no test ------------------------------------------------------------


def test_env_model_channels_3_scale_lr_precision_auto_and_quiet(tmp_path):
    from dae_cli.training.runtime import precision_policy

    env = cli_env(DAE_MODEL=str(tmp_path / "env-model"), DAE_CPU_DEVICES="2")
    # `--precision auto` (the default) on purpose: the layers get what auto picks on this CPU.
    result = run_dae_process(
        "train",
        *TINY_ANY_PRECISION,
        "-q",
        "--channels",
        "3",
        "--strategy",
        "mirrored",
        "--scale-lr",
        "--lr-schedule",
        "constant",
        "--learning-rate",
        "0.001",
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # -q: no progress, no information
    model = tmp_path / "env-model"  # $DAE_MODEL is the default --out
    manifest = artifacts.read_manifest(model)
    assert manifest["image_shape"] == [28, 28, 3] and manifest["replicas"] == 2
    keras_model = artifacts.load_keras_model(model / "autoencoder.keras", compile=True)
    assert float(keras_model.optimizer.learning_rate.numpy()) == pytest.approx(0.002)  # x 2 replicas
    assert keras_model.get_layer("encoder").layers[1].dtype_policy.name == precision_policy("auto")

    rgb = np.random.default_rng(0).integers(0, 256, (28, 28, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "colour.png")
    env = cli_env(DAE_MODEL=str(tmp_path / "env-model"))
    denoised = run_dae("denoise", "colour.png", env=env, cwd=tmp_path)  # the model from $DAE_MODEL
    assert denoised.returncode == 0, denoised.stderr
    assert Image.open(tmp_path / "colour.denoised.png").mode == "RGB"


def test_precision_auto_follows_the_hardware(monkeypatch, cpu_flags):
    from dae_cli.backend import tf
    from dae_cli.training import runtime as training

    assert training.precision_policy("auto") == "float32"
    cpu_flags("avx512_bf16")
    assert training.precision_policy("auto") == "mixed_bfloat16"
    cpu_flags("amx_bf16")
    assert training.precision_policy("auto") == "mixed_bfloat16"
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["GPU:0"])
    assert training.precision_policy("auto") == "float32"  # a GPU: float32 unless asked
    assert training.precision_policy("mixed_bfloat16") == "mixed_bfloat16"


def test_a_resumed_model_is_rebuilt_in_the_runs_precision_with_its_weights(wide_model):
    from dae_cli.backend import keras
    from dae_cli.config import Config
    from dae_cli.training.model_setup import in_run_policy

    saved = artifacts.load_keras_model(wide_model / artifacts.KERAS_MODEL, compile=False)
    config = Config.from_dict(artifacts.read_manifest(wide_model)["config"])
    image_shape = tuple(artifacts.read_manifest(wide_model)["image_shape"])
    images = np.random.default_rng(0).uniform(size=(4, *image_shape)).astype("float32")
    assert in_run_policy(saved, config, image_shape) is saved  # float32, as it was built
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        rebuilt = in_run_policy(saved, config, image_shape)
        back = in_run_policy(rebuilt, config, image_shape)
        keras.mixed_precision.set_global_policy("float32")
        in_float32 = in_run_policy(rebuilt, config, image_shape)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert rebuilt is not saved and back is rebuilt
    conv_policies = {layer.dtype_policy.name for layer in rebuilt.get_layer("encoder").layers if layer.weights}
    assert conv_policies == {"mixed_bfloat16", "float32"}  # its latent vector stays float32
    assert rebuilt.get_layer("decoder").get_layer("decoder_output").dtype_policy.name == "float32"
    assert all(np.array_equal(a, b) for a, b in zip(saved.get_weights(), rebuilt.get_weights(), strict=True))
    assert in_float32 is not rebuilt
    assert {layer.dtype_policy.name for layer in in_float32.get_layer("encoder").layers if layer.weights} == {"float32"}
    np.testing.assert_allclose(in_float32.predict(images, verbose=0), saved.predict(images, verbose=0), atol=1e-6)
    np.testing.assert_allclose(rebuilt.predict(images, verbose=0), saved.predict(images, verbose=0), atol=0.03)


def test_a_new_schedule_on_resume_keeps_the_optimizers_moment_estimates(wide_model):
    from dae_cli.training.checkpoints import find_resume_state, resume_config
    from dae_cli.training.model_setup import resumed_model

    state = find_resume_state(wide_model)
    config = resume_config(state.config, None, {"epochs": 5})
    image_shape = tuple(artifacts.read_manifest(wide_model)["image_shape"])
    autoencoder, fresh = resumed_model(state, config, image_shape, steps_left=12, replicas=1)
    saved = optimizer_of(wide_model)

    def moments(optimizer):
        return {
            v.path.split("/", 1)[1]: v.numpy()
            for v in optimizer.variables
            if "momentum" in v.path or "velocity" in v.path
        }

    assert fresh is not autoencoder.optimizer
    assert fresh.get_config()["learning_rate"]["config"]["decay_steps"] == 12
    assert int(fresh.iterations.numpy()) == 0  # the new schedule starts at its beginning
    kept, carried = moments(saved), moments(fresh)
    assert kept.keys() == carried.keys() and len(kept) == 2 * len(autoencoder.trainable_variables)
    assert all(np.array_equal(kept[name], carried[name]) for name in kept)
    assert any(np.abs(value).max() > 0 for value in carried.values())
