"""Exit codes and the exceptions that map onto them.

Every failure a user can cause is raised as a `DaeError` (or a subclass) carrying a
one-line message and an `ExitCode`; the CLI prints the message and exits with the code.
"""

import enum


class ExitCode(enum.IntEnum):
    """Documented process exit codes (see the README's table)."""

    OK = 0
    FAILURE = 1
    USAGE = 2
    PARTIAL_FAILURE = 3
    INTERRUPTED = 130
    BROKEN_PIPE = 141  # 128 + SIGPIPE, as a tool killed by SIGPIPE reports


class DaeError(Exception):
    """A failure with a one-line message for the user and an exit code."""

    exit_code = ExitCode.FAILURE

    def __init__(self, message: str, exit_code: ExitCode | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(DaeError):
    """Bad flags, config values or arguments: the user must change the command."""

    exit_code = ExitCode.USAGE


class InputError(DaeError):
    """One input (image, latent file) could not be read; the message names it."""


class ModelError(DaeError):
    """A model directory is missing, incomplete, tampered with or incompatible."""


class TrainingInterrupted(DaeError):
    """Ctrl-C or SIGTERM stopped training after a resumable checkpoint was saved."""

    exit_code = ExitCode.INTERRUPTED
