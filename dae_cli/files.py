"""Atomic writes: a file or directory appears under its final name complete, or not at all.

Everything `dae` writes goes to a temporary name in the destination's own directory
(same filesystem, so the final step is a rename) and is flushed to disk first. A crash,
`kill -9` or Ctrl-C at any moment leaves either the old content or the new, plus at
worst a stray `.dae-tmp-*` entry that is never mistaken for output.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import tempfile
from pathlib import Path

from dae_cli.errors import DaeError

TEMP_PREFIX = ".dae-tmp-"


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once: os.umask can only be read by setting it, two system calls per file.
UMASK = _read_umask()


class OutputExistsError(DaeError):
    """The destination exists and the user did not ask to overwrite it."""


def write_bytes_atomic(path: str | Path, data: bytes, overwrite: bool = False, durable: bool = True) -> None:
    """Writes `data` to `path` through a temporary file and one rename.

    With `durable`, the data is fsynced before the rename, so it survives a power cut
    too; without, a crashed process still never leaves a partial file, and writing
    thousands of small images is much faster.

    Without `overwrite`, an existing `path` is never replaced, even one created by
    another process while we were writing (the final step is a hard link, which fails
    if the name is taken).
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise OutputExistsError(f"{path} exists; pass --overwrite to replace it")
    descriptor, temp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
    try:
        # mkstemp makes the file private (0600); give it the permissions open() would.
        os.fchmod(descriptor, 0o666 & ~UMASK)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        if overwrite:
            os.replace(temp_name, path)
        else:
            try:
                os.link(temp_name, path)
            except FileExistsError:
                raise OutputExistsError(
                    f"{path} exists; pass --overwrite to replace it"
                ) from None
            os.unlink(temp_name)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise


def check_writable_directory(directory: str | Path) -> None:
    """Fails early, with the reason, if files cannot be created in `directory`."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        os.rmdir(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=directory))
    except OSError as error:
        raise DaeError(f"cannot write to {directory}: {error.strerror or error}") from None


@contextlib.contextmanager
def staging_directory(final: str | Path):
    """Yields a fresh temporary directory beside `final`; removes it if not committed."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX + final.name + "-", dir=final.parent))
    os.chmod(staging, 0o777 & ~UMASK)  # mkdtemp makes it private (0700)
    try:
        yield staging
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def commit_directory(staging: str | Path, final: str | Path) -> None:
    """Moves a complete `staging` directory to `final`, replacing any old one.

    When `final` exists, the two are swapped in one atomic `renameat2(RENAME_EXCHANGE)`
    (Linux) so that `final` is at every instant either the old directory or the new;
    where that call is missing, the old one is renamed aside first.
    """
    staging, final = Path(staging), Path(final)
    _fsync_tree(staging)
    if not final.exists():
        os.rename(staging, final)
        return
    if _exchange(staging, final):
        shutil.rmtree(staging)  # now holds the old directory
        return
    aside = final.with_name(f"{TEMP_PREFIX}{final.name}-old")
    shutil.rmtree(aside, ignore_errors=True)
    os.rename(final, aside)
    os.rename(staging, final)
    shutil.rmtree(aside, ignore_errors=True)


def _exchange(first: Path, second: Path) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = renameat2(
        at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange
    )
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(second))


def _fsync_tree(root: Path) -> None:
    for directory, _, names in os.walk(root):
        for name in names:
            with open(os.path.join(directory, name), "rb") as handle:
                os.fsync(handle.fileno())
