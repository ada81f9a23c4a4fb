"""Optional extras: features whose packages a plain `pip install dae-cli` leaves out.

Example:
    >>> require("tensorboard", extra="tensorboard", feature="--tensorboard")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util

from dae_cli.errors import DaeError, ExitCode


def require(*modules: str, extra: str, feature: str, exit_code: ExitCode = ExitCode.FAILURE) -> None:
    """Raises a one-line error naming the extra to install if any of `modules` is missing
    (exit code `exit_code`: `dae ui`, a whole command, says 2 as for any unusable command)."""
    missing = [module for module in modules if importlib.util.find_spec(module) is None]
    if missing:
        raise DaeError(
            f"{feature} needs {', '.join(missing)}, which this install lacks; "
            f'install it with: pip install "dae-cli[{extra}]"',
            exit_code,
        )
