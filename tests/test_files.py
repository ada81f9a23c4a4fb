"""Atomic, non-overwriting writes where hard links or O_TMPFILE are missing; stale staging."""

import errno
import fcntl
import os
import time

import pytest

from dae_cli.io import files
from dae_cli.io.files import OutputExistsError, write_bytes_atomic


def refuse(code):
    def failing(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    return failing


@pytest.fixture(params=["anonymous", "link", "renameat2", "exclusive-create"])
def file_system(request, monkeypatch):
    """The write path a file system leaves: each fallback in turn, as on exFAT, NFS, FUSE."""
    if request.param == "anonymous":  # Linux on a local file system: no named temporary at all
        monkeypatch.setattr(files.tempfile, "mkstemp", refuse(errno.EROFS))
    if request.param != "anonymous":
        monkeypatch.setattr(files, "_write_anonymous", lambda *args: False)  # no O_TMPFILE
    if request.param in ("renameat2", "exclusive-create"):
        monkeypatch.setattr(files.os, "link", refuse(errno.EPERM))  # exFAT: no hard links
    if request.param == "exclusive-create":
        monkeypatch.setattr(files, "_renameat2", lambda *args: False)  # nor renameat2
    return request.param


def test_writes_never_replace_an_existing_file_on_any_file_system(tmp_path, file_system):
    target = tmp_path / "out.png"
    write_bytes_atomic(target, b"first")
    assert target.read_bytes() == b"first"
    with pytest.raises(OutputExistsError, match="exists; pass --overwrite"):
        write_bytes_atomic(target, b"second")
    assert target.read_bytes() == b"first"
    write_bytes_atomic(target, b"third", overwrite=True)
    assert target.read_bytes() == b"third"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]  # no temporary left


def test_a_name_taken_while_writing_is_not_replaced(tmp_path, file_system, monkeypatch):
    # Another process creates the name after the up-front check: the final step refuses.
    target = tmp_path / "out.png"
    real_exists = type(target).exists

    def exists_then_taken(path):
        found = real_exists(path)
        if path == target and not found:
            target.write_bytes(b"theirs")
        return found

    monkeypatch.setattr(type(target), "exists", exists_then_taken)
    with pytest.raises(OutputExistsError):
        write_bytes_atomic(target, b"ours")
    assert target.read_bytes() == b"theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_permissions_follow_the_umask(tmp_path, file_system):
    target = tmp_path / "out.png"
    write_bytes_atomic(target, b"data")
    assert target.stat().st_mode & 0o777 == 0o666 & ~files.UMASK


def test_stale_staging_is_removed_and_live_staging_kept(tmp_path):
    final = tmp_path / "model"
    stale = tmp_path / f"{files.TEMP_PREFIX}model-abcdefgh"
    stale_checkpoint = tmp_path / f"{files.TEMP_PREFIX}model.checkpoint-abcdefgh"
    unrelated = tmp_path / f"{files.TEMP_PREFIX}other-abcdefgh"
    for folder in (stale, stale_checkpoint, unrelated):
        folder.mkdir()
        (folder / "autoencoder.keras").write_bytes(b"half written")
    with files.staging_directory(final) as live:
        (live / "file").write_bytes(b"being written")
        old = time.time() - 3600
        for folder in (stale, stale_checkpoint, unrelated, live):
            os.utime(folder, (old, old))
        removed = files.remove_stale_staging(final)
        assert sorted(removed) == sorted([stale, stale_checkpoint])
        assert live.exists() and unrelated.exists()
    assert not live.exists()
    # A fresh one (maybe between its creation and its lock) is left alone too.
    stale.mkdir()
    assert files.remove_stale_staging(final) == [] and stale.exists()


def test_staging_is_locked_while_in_use(tmp_path):
    with files.staging_directory(tmp_path / "model") as staging:
        descriptor = os.open(staging, os.O_RDONLY)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(descriptor)


def test_commit_without_replace_refuses_a_directory_that_appeared(tmp_path):
    final = tmp_path / "model"
    with files.staging_directory(final) as staging:
        (staging / "dae.json").write_text("{}")
        final.mkdir()
        (final / "theirs").write_text("precious")
        with pytest.raises(FileExistsError):
            files.commit_directory(staging, final, replace=False)
        kept = files.keep_aside(staging, final)
    assert kept == tmp_path / "model.new" and (kept / "dae.json").exists()
    assert (final / "theirs").read_text() == "precious"
    # An empty directory holds nothing: the new one takes its place.
    empty = tmp_path / "empty"
    empty.mkdir()
    with files.staging_directory(empty) as staging:
        (staging / "dae.json").write_text("{}")
        files.commit_directory(staging, empty, replace=False)
    assert (empty / "dae.json").exists()
