"""Faults: interrupts, kill -9, full or read-only disks, divergence. Nothing is lost."""

import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import time

import pytest
from conftest import FLOAT32, assert_clean_error, cli_env, run_dae, run_dae_process, save_gray
from PIL import Image

from dae_cli.models import artifacts

TRAIN_SMALL = ["train", "--dataset", "mnist-sample", "--limit", "600", "--batch-size", "32", *FLOAT32]


def start_dae(*args, env=None, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "dae_cli", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env or cli_env(),
        **kwargs,
    )


def wait_for_line(process: subprocess.Popen, fragment: str, timeout: float = 120) -> list[str]:
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        lines.append(line)
        if fragment in line:
            return lines
    process.kill()
    raise AssertionError(f"never saw {fragment!r}: {''.join(lines)}")


def assert_complete_model(directory):
    """Every file the manifest lists is there with its hash."""
    manifest = artifacts.read_manifest(directory)
    artifacts.verify_files(directory, manifest, ("encoder", "decoder", "autoencoder.keras", "history.csv"))
    return manifest


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_saves_a_checkpoint_keeps_the_old_model_and_resumes(model_copy, signum):
    before = artifacts.hash_tree(model_copy)
    process = start_dae(*TRAIN_SMALL, "--epochs", "4", "--out", model_copy, "--overwrite")
    wait_for_line(process, "epoch 1/4")
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "interrupted after" in stderr and "--resume" in stderr and "Traceback" not in stderr
    assert stdout == ""
    assert artifacts.hash_tree(model_copy) == before  # the earlier model, untouched
    state = json.loads((model_copy.with_name("model.checkpoint") / "state.json").read_text())
    assert state["epochs_done"] >= 1
    if signum != signal.SIGINT:
        return  # resuming is the same whichever signal stopped the run

    resumed = run_dae("train", "--resume", "--out", model_copy)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming at epoch {state['epochs_done'] + 1}/4" in resumed.stderr
    manifest = assert_complete_model(model_copy)
    assert manifest["epochs_done"] == 4
    assert [row["epoch"] for row in artifacts.read_history(model_copy / "history.csv")] == [1, 2, 3, 4]
    assert not model_copy.with_name("model.checkpoint").exists()  # removed once complete


def kill_during(process: subprocess.Popen, writing, timeout: float = 300) -> bool:
    """Kills `process` with SIGKILL at a moment when `writing()` says it is writing.

    The process is stopped (SIGSTOP) first and `writing()` asked again, so the kill
    provably lands mid-write. False if the process ended before that happened.
    """
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        if writing():
            process.send_signal(signal.SIGSTOP)
            os.waitpid(process.pid, os.WUNTRACED)  # until it has really stopped
            if writing():
                process.kill()
                process.wait()
                return True
            process.send_signal(signal.SIGCONT)
    process.kill()
    process.wait()
    return False


def staging_dirs(folder):
    return [p for p in folder.iterdir() if p.name.startswith(".dae-tmp-") and p.is_dir()]


def slow_commits_env(tmp_path) -> dict:
    """An environment in which each directory commit waits 0.5 s with its staging folder
    written, so a kill lands mid-write however fast the machine is."""
    site = tmp_path / "slow-site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import time\n"
        "from dae_cli.io import files\n"
        "original = files.commit_directory\n"
        "def slow(*args, **kwargs):\n"
        "    time.sleep(0.5)\n"
        "    return original(*args, **kwargs)\n"
        "files.commit_directory = slow\n"
    )
    env = cli_env()
    env["PYTHONPATH"] = os.pathsep.join([str(site), env["PYTHONPATH"]])
    return env


def test_kill_9_while_train_writes_never_leaves_a_broken_model(model_copy, tmp_path):
    landed = 0
    env = slow_commits_env(tmp_path)
    for attempt in range(4):
        process = start_dae(*TRAIN_SMALL, "--epochs", "2", "--out", model_copy, "--overwrite", env=env)
        # A staging folder exists only while a checkpoint or the model is being written.
        if not kill_during(process, lambda: bool(staging_dirs(model_copy.parent))):
            continue
        landed += 1
        assert staging_dirs(model_copy.parent)  # the kill cut a write short
        assert_complete_model(model_copy)  # the old model or the new one, whole
        checkpoint = model_copy.with_name("model.checkpoint")
        if checkpoint.exists():
            json.loads((checkpoint / "state.json").read_text())
            assert (checkpoint / "autoencoder.keras").stat().st_size > 0
        if landed == 2:
            break
    assert landed == 2
    # The next run removes what the killed ones left (once no process holds it).
    for stale in staging_dirs(model_copy.parent):
        os.utime(stale, (time.time() - 3600,) * 2)
    result = run_dae(*TRAIN_SMALL, "--epochs", "1", "--out", model_copy, "--overwrite")
    assert result.returncode == 0, result.stderr
    assert_complete_model(model_copy)
    assert staging_dirs(model_copy.parent) == []


def open_files_under(pid: int, folder) -> list:
    """What `pid` has open under `folder` (a nameless O_TMPFILE shows as `#inode (deleted)`)."""
    found = []
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith(str(folder) + "/"):
                    found.append(target)
    return found


def test_kill_9_while_writing_an_image_leaves_no_partial_file_nor_temporary(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(12):  # flat inputs, small on disk; noisy outputs of ~4 MB each
        Image.new("L", (2000, 2000), 40 + i).save(inputs / f"{i:02d}.png")
    out = tmp_path / "out"
    out.mkdir()
    process = start_dae("noise", inputs, "-o", out, "--noise-std", "0.3")
    assert kill_during(process, lambda: bool(open_files_under(process.pid, out)))
    finished = sorted(out.iterdir())
    assert all(p.name.endswith(".noisy.png") for p in finished), finished  # no temporary
    assert len(finished) < 12
    for path in finished:  # and every file under its final name is whole
        with Image.open(path) as image:
            image.load()
            assert image.size == (2000, 2000)


def limit_file_size():
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))


def test_full_disk_during_train_is_a_clear_error_and_the_old_model_survives(model_copy):
    before = artifacts.hash_tree(model_copy)
    result = subprocess.run(
        [sys.executable, "-m", "dae_cli", *TRAIN_SMALL, "--epochs", "1", "--out", str(model_copy), "--overwrite"],
        capture_output=True,
        text=True,
        env=cli_env(),
        preexec_fn=limit_file_size,
    )
    assert_clean_error(result, 1, "File too large")
    assert artifacts.hash_tree(model_copy) == before
    assert [p.name for p in model_copy.parent.iterdir() if p.name.startswith(".dae-tmp")] == []


def test_full_disk_during_denoise_keeps_earlier_outputs(trained_model, tmp_path, mnist_test_images):
    _, noisy = mnist_test_images
    image = save_gray(noisy[0], tmp_path / "x.png")
    earlier = tmp_path / "x.denoised.png"
    earlier.write_bytes(b"earlier output")

    def tiny_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (100, 100))

    result = subprocess.run(
        [sys.executable, "-m", "dae_cli", "denoise", str(image), "-m", str(trained_model), "--overwrite"],
        capture_output=True,
        text=True,
        env=cli_env(),
        preexec_fn=tiny_files,
    )
    assert_clean_error(result, 1, "cannot write (File too large)")
    assert earlier.read_bytes() == b"earlier output"


def test_read_only_output_directory(trained_model, tmp_path, mnist_test_images):
    _, noisy = mnist_test_images
    image = save_gray(noisy[0], tmp_path / "x.png")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        result = run_dae_process("denoise", image, "-m", trained_model, "-o", locked / "x.png", unprivileged=True)
        assert_clean_error(result, 1, "cannot write (Permission denied)")
        trained = run_dae_process(*TRAIN_SMALL, "--epochs", "1", "--out", locked / "model", unprivileged=True)
        assert_clean_error(trained, 1, f"cannot write to {locked}: Permission denied")
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


def test_diverging_training_stops_without_saving(tmp_path):
    result = run_dae(*TRAIN_SMALL, "--epochs", "2", "--learning-rate", "1e30", "--out", tmp_path / "m")
    assert_clean_error(result, 1, "training diverged", "nothing was saved")
    assert result.stdout == ""
    assert not (tmp_path / "m").exists()


def test_train_refuses_to_replace_a_model_or_other_data_without_overwrite(model_copy, tmp_path):
    before = artifacts.hash_tree(model_copy)
    assert_clean_error(run_dae(*TRAIN_SMALL, "--epochs", "1", "--out", model_copy), 2, "exists; pass --overwrite")
    assert artifacts.hash_tree(model_copy) == before
    precious = tmp_path / "photos"
    precious.mkdir()
    (precious / "holiday.jpg").write_bytes(b"irreplaceable")
    refused = run_dae(*TRAIN_SMALL, "--epochs", "1", "--out", precious, "--overwrite")
    assert_clean_error(refused, 2, "not a dae model; refusing to replace it")
    assert (precious / "holiday.jpg").read_bytes() == b"irreplaceable"


def test_overwrite_replaces_the_model_only_when_the_new_one_is_complete(model_copy):
    old = artifacts.read_manifest(model_copy)
    result = run_dae(*TRAIN_SMALL, "--epochs", "1", "--out", model_copy, "--overwrite", "--seed", "5")
    assert result.returncode == 0, result.stderr
    new = assert_complete_model(model_copy)
    assert new["config"]["seed"] == 5 and new["created"] >= old["created"]
    assert [p.name for p in model_copy.parent.iterdir() if p.name.startswith(".dae-tmp")] == []


def test_outputs_never_collide_nor_escape_the_output_directory(trained_model, tmp_path, mnist_test_images):
    _, noisy = mnist_test_images
    for folder in ("a", "b"):
        (tmp_path / "in" / folder).mkdir(parents=True)
        save_gray(noisy[0], tmp_path / "in" / folder / "same.png")
    save_gray(noisy[1], tmp_path / "in" / "a" / "same.jpg")
    out = tmp_path / "out"
    # Each output keeps its input's format (a/same.denoised.jpg, a/same.denoised.png)
    # unless --format makes them one: then the input's whole name keeps them apart.
    result = run_dae(
        "denoise", tmp_path / "in" / "a", tmp_path / "in" / "b", "-m", trained_model, "-o", out, "--format", "png"
    )
    assert result.returncode == 0, result.stderr
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*.png"))
    assert written == ["a/same.jpg.denoised.png", "a/same.png.denoised.png", "b/same.denoised.png"]
    assert sorted(result.stdout.split()) == sorted(str(out / w) for w in written)
