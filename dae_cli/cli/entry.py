"""The `dae` process: the entry point, exit codes, signals, and errors as one line.

`main` runs one command of `commands.app` and turns whatever ends it into the
documented exit code (`errors.ExitCode`): usage errors 2, failed inputs 3 or 1, Ctrl-C
and SIGTERM 130, a closed stdout 141, and any other error one line on stderr (the
traceback only with --debug).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
import threading
import traceback
import warnings
from typing import Optional

import typer

# NumPy's own BLAS threads would spin beside TensorFlow's on the same cores (the noise
# level is estimated in the reader thread while the model runs): one BLAS thread, unless
# the user says otherwise. Set before anything imports NumPy; BENCHMARKS.md has the figures.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from dae_cli.cli.commands import State, app  # noqa: E402 - after the BLAS setting
from dae_cli.cli.output import Output
from dae_cli.errors import DaeError, ExitCode

_interrupted = threading.Event()


def _raise_keyboard_interrupt(signum, frame):
    # Remembered as well as raised: the exception raised here can be lost on its way out
    # (seen in `dae denoise DIR`, which then ran on and exited 0; where it is caught was
    # not found), so a command that finishes after a Ctrl-C still exits 130.
    _interrupted.set()
    raise KeyboardInterrupt


def _set_json(ctx, param, value) -> None:
    if value:
        State.output.json_mode = True


def _set_quiet(ctx, param, value) -> None:
    if value:
        State.output.quiet = True


def _set_verbose(ctx, param, value) -> None:
    if value:
        State.output.verbose = True


def _set_debug(ctx, param, value) -> None:
    if value:
        enable_debug()


def enable_debug() -> None:
    """Tracebacks, Python warnings and TensorFlow's own start-up log (read by backend)."""
    State.debug = True
    os.environ["DAE_DEBUG"] = "1"
    warnings.resetwarnings()
    warnings.simplefilter("default")


GLOBAL_OPTION_CALLBACKS = {"json_output": _set_json, "quiet": _set_quiet, "verbose": _set_verbose, "debug": _set_debug}


def build_command():
    """The Click command of `app`, with the global options accepted after any command too.

    `dae -q train` and `dae train -q` mean the same: each subcommand gets a copy of the
    group's `--json`, `-q` and `--debug` that sets the same state instead of passing a
    value to the command's function.
    """
    import copy

    command = typer.main.get_command(app)
    shared = [param for param in command.params if param.name in GLOBAL_OPTION_CALLBACKS]
    for subcommand in command.commands.values():
        for param in shared:
            option = copy.copy(param)
            option.expose_value = False
            option.callback = GLOBAL_OPTION_CALLBACKS[param.name]
            subcommand.params.append(option)
    for each in (command, *command.commands.values()):
        for param in each.params:
            _drop_flag_placeholder(param)
        each.get_help_option = _without_placeholder(each.get_help_option)
    return command


def _drop_flag_placeholder(param) -> None:
    if getattr(param, "is_flag", False):
        param.metavar = ""  # on/off flags take no value: no `<bool>` placeholder in --help


def _without_placeholder(get_help_option):
    def get_plain_help_option(context):
        option = get_help_option(context)
        if option is not None:
            _drop_flag_placeholder(option)
        return option

    return get_plain_help_option


def main(argv: Optional[list] = None) -> int:
    """Entry point of the `dae` console script; returns the exit code.

    The command is invoked here rather than through Click's `main`, which (in the copy
    of Click that Typer bundles) turns Ctrl-C into a silent exit 130 and a closed pipe
    into exit 1 before this function could see them.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    State.output, State.debug = Output(), os.environ.get("DAE_DEBUG", "") not in ("", "0")
    if State.debug:
        enable_debug()
    else:
        warnings.filterwarnings("ignore")  # library warnings are noise on a user's stderr
    command = build_command()
    # Shell completion (the script of `dae --show-completion` runs dae with
    # _DAE_COMPLETE set): answered here, and dae exits.
    command._main_shell_completion({}, "dae", None)
    # SIGTERM ends dae as Ctrl-C does (exit 130); `train` turns both into a checkpoint.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not ignored, as in a background job
        signal.signal(signal.SIGINT, _raise_keyboard_interrupt)
    try:
        return _invoke(command, args or ["--help"])  # a bare `dae` asks what it can do: help, exit 0
    except (Exception, KeyboardInterrupt) as error:
        return _exit_code(error)


def _invoke(command, args: list[str]) -> int:
    with command.make_context("dae", args) as context:
        command.invoke(context)
    if _interrupted.is_set():
        raise KeyboardInterrupt  # the one raised at the signal was lost on the way
    sys.stdout.flush()  # a reader gone away shows here, not at interpreter exit
    return ExitCode.OK


def _exit_code(error: BaseException) -> int:
    """The exit code of what ended the command, its one line said on stderr."""
    if isinstance(error, typer.Exit):
        return error.exit_code
    if isinstance(error, typer.TyperException):  # Click's usage errors: bad flags, missing arguments
        context = getattr(error, "ctx", None)
        name = context.command_path if context is not None else "dae"
        State.output.error(f"{error.format_message()} (see '{name} --help')")
        return getattr(error, "exit_code", ExitCode.USAGE)
    if isinstance(error, (typer.Abort, KeyboardInterrupt)):
        State.output.error("interrupted")
        return ExitCode.INTERRUPTED
    if isinstance(error, BrokenPipeError) or (isinstance(error, OSError) and error.errno == errno.EPIPE):
        return _stdout_closed()
    if State.debug:
        traceback.print_exception(error)
    if isinstance(error, DaeError):
        State.output.error(str(error))
        return error.exit_code
    if isinstance(error, OSError):  # disk full, read-only or vanished paths, outside any one input
        where = f"{error.filename}: " if error.filename else ""
        State.output.error(f"{where}{error.strerror or error}")
    elif not State.debug:  # the last line of defence: no traceback without --debug
        State.output.error(f"unexpected {type(error).__name__}: {error} (run with --debug for the traceback)")
    return ExitCode.FAILURE


def _stdout_closed() -> int:
    """The reader of stdout went away (say `| head`): stop quietly, as `SIGPIPE` would.

    What is still buffered for stdout is dropped (sent to /dev/null), so Python's own
    flush at exit does not complain either.
    """
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return ExitCode.BROKEN_PIPE


def run() -> None:
    sys.exit(main())
