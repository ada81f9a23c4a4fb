"""Ctrl-C and SIGTERM during training: the first asks the run to stop after the steps
under way (and checkpoint); a second stops it at once."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def interrupt_flag(on_first: Callable[[], None] = lambda: None) -> Iterator[Callable[[], bool]]:
    """Turns the first SIGINT/SIGTERM into a flag (and calls `on_first`); a second one
    interrupts at once. Yields the flag's reader; the old handlers come back after."""
    state = {"hit": False}
    previous = {}

    def handler(signum, frame):
        if state["hit"]:
            signal.signal(signum, previous[signum])
            raise KeyboardInterrupt
        state["hit"] = True
        on_first()

    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[signum] = signal.signal(signum, handler)
        except ValueError:  # not in the main thread
            pass
    try:
        yield lambda: state["hit"]
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
