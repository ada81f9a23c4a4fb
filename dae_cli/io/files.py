"""Atomic writes: a file or directory appears under its final name complete, or not at all.

Everything `dae` writes goes to a temporary name in the destination's own directory
(same filesystem, so the final step is a rename) and is flushed to disk first. A crash,
`kill -9` or Ctrl-C at any moment leaves either the old content or the new. Files are
written nameless (`O_TMPFILE`) where Linux allows, so a killed write leaves nothing;
elsewhere at worst a stray `.dae-tmp-*` file that is never mistaken for output.
Directories are staged as locked `.dae-tmp-*` folders, and `train` removes the ones
that a killed process left (`remove_stale_staging`).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import shutil
import tempfile
import time
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
    another process while we were writing: the final step is one that fails if the name
    is taken (see `rename_noreplace`).
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise OutputExistsError(f"{path} exists; pass --overwrite to replace it")
    if _write_anonymous(path, data, overwrite, durable):
        return
    descriptor, temp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
    try:
        # mkstemp makes the file private (0600); give it the permissions open() would.
        os.fchmod(descriptor, 0o666 & ~UMASK)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        _publish(temp_name, path, overwrite)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise


def _publish(temp_name: str, path: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(temp_name, path)
        return
    try:
        rename_noreplace(temp_name, path)
    except FileExistsError:
        raise OutputExistsError(f"{path} exists; pass --overwrite to replace it") from None


def _write_anonymous(path: Path, data: bytes, overwrite: bool, durable: bool) -> bool:
    """Writes through a nameless file (Linux `O_TMPFILE`) that gets its name only once
    complete, so a process killed while writing leaves nothing behind at all. False where
    the file system (or /proc) cannot, and nothing was written."""
    flag = getattr(os, "O_TMPFILE", 0)
    if not flag:
        return False
    try:
        descriptor = os.open(path.parent, flag | os.O_WRONLY, 0o666)  # the kernel applies the umask
    except OSError as error:
        if error.errno in _UNSUPPORTED or error.errno in (errno.EISDIR, errno.ENOENT):
            return False
        raise
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
        handle.flush()
        if durable:
            os.fsync(handle.fileno())
        if not overwrite:
            try:
                _link_descriptor(handle.fileno(), path)  # fails if the name is taken
            except FileExistsError:
                raise OutputExistsError(f"{path} exists; pass --overwrite to replace it") from None
            except OSError as error:
                if error.errno in _UNSUPPORTED or error.errno == errno.ENOENT:
                    return False
                raise
            return True
        # Replacing: a temporary name for the complete file, then one rename.
        temp_name = os.path.join(path.parent, f"{TEMP_PREFIX}{os.getpid()}-{os.urandom(6).hex()}")
        try:
            _link_descriptor(handle.fileno(), temp_name)
        except OSError as error:
            if error.errno in _UNSUPPORTED or error.errno == errno.ENOENT:
                return False
            raise
        try:
            os.replace(temp_name, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp_name)
            raise
        return True


def _link_descriptor(descriptor: int, target: str | Path) -> None:
    """Names the open file `descriptor` `target`: linkat(AT_SYMLINK_FOLLOW) on its
    /proc/self/fd entry. A plain `os.link("/proc/self/fd/N", target)` calls link(2),
    which does not follow /proc's link and fails with EXDEV (Python 3.11), so every
    write fell back to a temporary name."""
    fds = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.link(str(descriptor), target, src_dir_fd=fds, follow_symlinks=True)
    finally:
        os.close(fds)


# errno values that say "this file system cannot do that", not "that failed".
_UNSUPPORTED = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL, errno.EXDEV, errno.EMLINK}


def rename_noreplace(source: str | Path, target: str | Path) -> None:
    """Renames the file `source` to `target`, raising `FileExistsError` if `target` exists.

    Atomic where the file system allows: a hard link (then the source name is removed),
    else `renameat2(RENAME_NOREPLACE)`. Where neither works (exFAT refuses hard links,
    some network and FUSE file systems both), `target` is first created exclusively
    (`O_EXCL`, which fails if the name is taken) and then replaced by `source`; only
    then can a reader see an empty `target` for a moment.
    """
    source, target = os.fspath(source), os.fspath(target)
    try:
        os.link(source, target)
    except FileExistsError:
        raise
    except OSError as error:
        if error.errno not in _UNSUPPORTED:
            raise
    else:
        os.unlink(source)
        return
    if _renameat2(source, target, RENAME_NOREPLACE):
        return
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(descriptor)
    try:
        os.replace(source, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(target)
        raise


def check_writable_directory(directory: str | Path) -> None:
    """Fails early, with the reason, if files cannot be created in `directory`."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        # A nameless file (O_TMPFILE where the file system has it): a process killed
        # during the probe leaves nothing behind, as a probe folder would.
        with tempfile.TemporaryFile(prefix=TEMP_PREFIX, dir=directory):
            pass
    except OSError as error:
        raise DaeError(f"cannot write to {directory}: {error.strerror or error}") from None


@contextlib.contextmanager
def staging_directory(final: str | Path):
    """Yields a fresh temporary directory beside `final`; removes it if not committed.

    The directory is locked (`flock`) while this process uses it, so that
    `remove_stale_staging` can tell a live one from one left by a killed process.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX + final.name + "-", dir=final.parent))
    lock = os.open(staging, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):  # a file system without flock: no lock
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.chmod(staging, 0o777 & ~UMASK)  # mkdtemp makes it private (0700)
        yield staging
    finally:
        try:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        finally:
            os.close(lock)


STALE_AFTER_SECONDS = 10  # younger ones may be between creation and lock


def remove_stale_staging(final: str | Path) -> list[Path]:
    """Removes the staging directories for `final` (and its checkpoint) that no live
    process holds: left by a `kill -9` or a crash. Returns what it removed."""
    final = Path(final)
    removed = []
    patterns = (f"{TEMP_PREFIX}{final.name}-*", f"{TEMP_PREFIX}{final.name}.checkpoint-*")
    candidates = {path for pattern in patterns for path in final.parent.glob(pattern)}
    for path in sorted(candidates):
        try:
            if not path.is_dir() or path.is_symlink() or time.time() - path.stat().st_mtime < STALE_AFTER_SECONDS:
                continue
            descriptor = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while a process holds it
        except OSError:
            continue
        else:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
        finally:
            os.close(descriptor)
    return removed


def keep_aside(staging: str | Path, final: str | Path) -> Path | None:
    """Renames a complete `staging` directory that could not become `final` to the first
    free `<final>.new`, `<final>.new-2`, ... beside it; returns that name, or None if no
    rename works."""
    staging, final = Path(staging), Path(final)
    for number in range(1, 100):
        target = final.with_name(f"{final.name}.new" + (f"-{number}" if number > 1 else ""))
        if target.exists():
            continue
        try:
            _rename_directory_noreplace(staging, target)
            return target
        except FileExistsError:
            continue
        except OSError:
            break
    return None


def commit_directory(staging: str | Path, final: str | Path, replace: bool = True) -> None:
    """Moves a complete `staging` directory to `final`, replacing any old one if `replace`.

    When `final` exists, the two are swapped in one atomic `renameat2(RENAME_EXCHANGE)`
    (Linux) so that `final` is at every instant either the old directory or the new;
    where that call is missing, the old one is renamed aside first. Without `replace`,
    a `final` that exists (even one created a moment ago) raises `FileExistsError`.
    """
    staging, final = Path(staging), Path(final)
    _fsync_tree(staging)
    if not replace:
        with contextlib.suppress(OSError):
            os.rmdir(final)  # an empty directory holds nothing to keep (rmdir fails otherwise)
        _rename_directory_noreplace(staging, final)
        return
    if not final.exists():
        os.rename(staging, final)
        return
    if _renameat2(staging, final, RENAME_EXCHANGE):
        shutil.rmtree(staging)  # now holds the old directory
        return
    aside = final.with_name(f"{TEMP_PREFIX}{final.name}-old")
    shutil.rmtree(aside, ignore_errors=True)
    os.rename(final, aside)
    os.rename(staging, final)
    shutil.rmtree(aside, ignore_errors=True)


def _rename_directory_noreplace(source: Path, target: Path) -> None:
    if _renameat2(source, target, RENAME_NOREPLACE):
        return
    # No atomic way: check, then rename (a plain rename would replace an empty directory).
    if os.path.lexists(target):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(target))
    os.rename(source, target)


RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2


def _renameat2(source, target, flags: int) -> bool:
    """`renameat2(source, target, flags)`: True if done, False where the C library or the
    file system lacks it; `FileExistsError` (NOREPLACE) and other failures raise."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    if renameat2(at_fdcwd, os.fsencode(source), at_fdcwd, os.fsencode(target), flags) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), os.fspath(target))


def _fsync_tree(root: Path) -> None:
    for directory, _, names in os.walk(root):
        for name in names:
            with open(os.path.join(directory, name), "rb") as handle:
                os.fsync(handle.fileno())
