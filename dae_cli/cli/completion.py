"""Shell completion of flag values: model names and directories, and enum choices.

Typer installs the scripts (`dae --install-completion`, `--show-completion`); these
functions answer the shell's questions. They import nothing heavy, since the shell
waits for them at every Tab.
"""

from __future__ import annotations

import os
from typing import Callable, Iterable

from dae_cli.models.builtin_models import BUILTIN_MODELS


def complete_model(incomplete: str) -> list[str]:
    """Built-in model names and directories that start with `incomplete`.

    When no built-in name matches, nothing is returned: the shell then completes
    paths itself (folders step by step, without a trailing space), which it does
    better than a list of names could.
    """
    names = [name for name in BUILTIN_MODELS if name.startswith(incomplete)]
    if not names:
        return []
    return names + _directories(incomplete)


def _directories(incomplete: str) -> list[str]:
    folder, slash, prefix = incomplete.rpartition("/")
    lead = folder + slash
    try:
        entries = sorted(os.scandir(lead or "."), key=lambda entry: entry.name)
    except OSError:
        return []
    return [
        f"{lead}{entry.name}/"
        for entry in entries
        if entry.name.startswith(prefix) and not entry.name.startswith(".") and entry.is_dir()
    ]


def choices(values: Iterable[str]) -> Callable[[str], list[str]]:
    """A completer offering the values of an enum-like flag."""
    values = tuple(values)

    def complete(incomplete: str) -> list[str]:
        return [value for value in values if value.startswith(incomplete)]

    return complete
