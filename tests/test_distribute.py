"""tf.distribute: mirrored on two logical CPUs, and two workers on localhost."""

import json
import socket
import subprocess
import sys

import numpy as np
from conftest import cli_env, run_dae, run_dae_process

from dae_cli.models import artifacts

SMALL = ["--dataset", "mnist-sample", "--limit", "1024", "--epochs", "3", "--precision", "float32"]


def losses(model_dir):
    return np.array([[row["loss"], row["val_loss"]] for row in artifacts.read_history(model_dir / "history.csv")])


def test_mirrored_on_two_cpus_follows_the_single_device_loss_curve(tmp_path):
    one = run_dae("--json", "train", *SMALL, "--strategy", "one", "--batch-size", "128", "--out", tmp_path / "one")
    env = cli_env(DAE_CPU_DEVICES="2")  # two logical CPUs: set before TensorFlow starts, so a new process
    # --batch-size is per replica: 2 x 64 is the same global batch of 128.
    mirrored = run_dae_process(
        "--json",
        "train",
        *SMALL,
        "--strategy",
        "mirrored",
        "--batch-size",
        "64",
        "--out",
        tmp_path / "mirrored",
        env=env,
    )
    assert one.returncode == 0, one.stderr
    assert mirrored.returncode == 0, mirrored.stderr
    assert artifacts.read_manifest(tmp_path / "mirrored")["replicas"] == 2
    assert artifacts.read_manifest(tmp_path / "one")["replicas"] == 1
    # Float sums in another order drift apart a little while the loss falls fast.
    np.testing.assert_allclose(losses(tmp_path / "mirrored"), losses(tmp_path / "one"), rtol=0.05)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_workers(out, epochs):
    workers = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    processes = []
    for index in range(2):
        config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "dae_cli",
                    "--json",
                    "train",
                    *SMALL,
                    "--epochs",
                    str(epochs),
                    "--batch-size",
                    "64",
                    "--strategy",
                    "multi-worker",
                    "--out",
                    str(out),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=cli_env(TF_CONFIG=json.dumps(config)),
            )
        )
    return processes


def finish(processes, timeout=300):
    results = []
    try:
        for process in processes:
            stdout, stderr = process.communicate(timeout=timeout)
            results.append((process.returncode, stdout, stderr))
    finally:
        for process in processes:
            process.kill()
    return results


def test_two_workers_on_localhost_train_and_only_the_chief_writes(tmp_path):
    out = tmp_path / "model"
    for code, _, stderr in finish(start_workers(out, epochs=2)):
        assert code == 0, stderr
    manifest = artifacts.read_manifest(out)
    assert manifest["replicas"] == 2 and manifest["epochs_done"] == 2
    artifacts.verify_files(out, manifest, ("encoder", "decoder", "autoencoder.keras"))
    # One model directory and nothing else: no second copy, no backups or checkpoints left.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_restarted_multi_worker_job_goes_on_from_its_last_epoch(tmp_path):
    out = tmp_path / "model"
    first = start_workers(out, epochs=3)
    chief_log = []
    while not any("epoch 1/3" in line for line in chief_log):
        line = first[0].stderr.readline()
        assert line, "".join(chief_log)
        chief_log.append(line)
    for process in first:  # the whole job dies, as when a machine goes away
        process.kill()
        process.wait()
    restarted = finish(start_workers(out, epochs=3))
    for code, _, stderr in restarted:
        assert code == 0, stderr
    chief_stderr = restarted[0][2]
    assert "epoch 2/3" in chief_stderr and "epoch 1/3" not in chief_stderr  # went on, did not start over
    manifest = artifacts.read_manifest(out)
    assert manifest["epochs_done"] == 3
    assert [row["epoch"] for row in artifacts.read_history(out / "history.csv")] == [1, 2, 3]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
