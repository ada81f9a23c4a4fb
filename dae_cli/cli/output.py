"""The one output layer: results on stdout, progress and diagnostics on stderr.

- Results (paths, latents, tables, JSON records) go to stdout, and nothing else does.
- `--json`: each result is one JSON object per line with `"schema_version"`.
- `-q/--quiet`: no progress, information or warnings; results and errors still print.
- `-v/--verbose`: details per input too (say the noise level each image was given).
- Colour and live progress only when stderr is a terminal and `NO_COLOR` is unset.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from typing import Any, Callable

JSON_SCHEMA_VERSION = 1
PLAIN_INTERVAL = 10.0  # seconds between plain progress lines in logs


def _plain() -> bool:
    return "NO_COLOR" in os.environ or os.environ.get("TERM") == "dumb"


class Output:
    def __init__(self, json_mode: bool = False, quiet: bool = False, verbose: bool = False):
        self.json_mode = json_mode
        self.quiet = quiet
        self.verbose = verbose
        self._stdout_console = None
        self._stderr_console = None
        self._warned: set[str] = set()

    @property
    def stderr(self):
        if self._stderr_console is None:
            from rich.console import Console

            terminal = sys.stderr.isatty() and not _plain()
            self._stderr_console = Console(
                stderr=True, highlight=False, color_system="auto" if terminal else None, force_terminal=terminal
            )
        return self._stderr_console

    @property
    def stdout(self):
        if self._stdout_console is None:
            from rich.console import Console

            terminal = sys.stdout.isatty() and not _plain()
            self._stdout_console = Console(highlight=False, color_system="auto" if terminal else None, soft_wrap=True)
        return self._stdout_console

    @property
    def live(self) -> bool:
        """Whether to draw live progress: a colour terminal on stderr, not quiet."""
        return not self.quiet and sys.stderr.isatty() and not _plain()

    def info(self, message: str) -> None:
        if not self.quiet:
            print(message, file=sys.stderr, flush=True)

    def detail(self, message: str) -> None:
        """A line on stderr with `-v` only (never with `-q`)."""
        if self.verbose and not self.quiet:
            print(message, file=sys.stderr, flush=True)

    def warn(self, message: str) -> None:
        if not self.quiet:
            print(f"warning: {message}", file=sys.stderr, flush=True)

    def error(self, message: str) -> None:
        first_line = str(message).strip().splitlines()[0] if str(message).strip() else "unknown error"
        print(f"error: {first_line}", file=sys.stderr, flush=True)

    def record(self, record: dict[str, Any], text: str | None = None) -> None:
        """One result: a JSON line with --json, else `text` (if any) as a plain line."""
        if self.json_mode:
            print(json.dumps({"schema_version": JSON_SCHEMA_VERSION, **record}, default=_json_default))
        elif text is not None:
            print(text)  # not flushed line by line: a flush per file costs more than the file

    def outcome(self, outcome, show: bool = True) -> None:
        """What became of one input (an `Outcome`): its error on stderr (and its JSON record
        with --json), or its output path (its record with --json) unless `show` is off.
        What an output could not keep is warned once per run, not once per file."""
        for note in outcome.notes:
            if note not in self._warned:
                self._warned.add(note)
                self.warn(note)
        if not outcome.ok:
            self.error(outcome.error)
            if self.json_mode:
                self.record(outcome.record())
        elif show:
            self.record(outcome.record(), outcome.output)

    def table(self, title: str, rows: list[tuple[str, str]], record: dict[str, Any]) -> None:
        """A two-column table on stdout, or `record` as one JSON line with --json."""
        if self.json_mode:
            self.record(record)
            return
        from rich.table import Table

        table = Table(title=title, show_header=False, box=None)
        table.add_column(style="bold")
        table.add_column()
        for key, value in rows:
            table.add_row(key, value)
        self.stdout.print(table)

    def progress(self, label: str, total: int | None = None, unit: str = "images") -> "Progress":
        """Progress of a command over many inputs: a Rich bar on a terminal, a plain line
        at most every `PLAIN_INTERVAL` seconds elsewhere, nothing with -q or --json."""
        if self.quiet or self.json_mode:
            return Progress(label, total, unit)
        if self.live:
            return RichProgress(label, total, unit, console=self.stderr)
        return PlainProgress(label, total, unit)

    def training_reporter(self):
        """What draws `dae train`'s progress; None with -q (training then reports to no one)."""
        if self.quiet:
            return None
        return RichReporter(self) if self.live else PlainReporter(self)


def _json_default(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def format_summary(summary: dict, digits: int, unit: str = "") -> str:
    """A metric's mean, e.g. `12.34 dB`; `inf dB (perfect)` where every image was
    reconstructed exactly (infinite PSNR), with a count where only some were."""
    mean = summary.get("mean")
    if mean is None:
        return f"inf{unit} (perfect)"
    text = f"{mean:.{digits}f}{unit}"
    if summary.get("perfect"):
        text += f" ({summary['perfect']} perfect left out)"
    return text


def format_spread(summary: dict, digits: int, unit: str = "") -> str:
    """Mean and 5th, 50th and 95th percentiles."""
    if summary.get("mean") is None:
        return format_summary(summary, digits, unit)
    percentiles = ", ".join(f"{key} {summary[key]:.{digits}f}" for key in ("p05", "p50", "p95"))
    return f"{format_summary(summary, digits, unit)} ({percentiles})"


def format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"


class PlainReporter:
    """One line per epoch on stderr, for logs and CI."""

    def __init__(self, output: Output):
        self.output = output
        self.epoch_seconds: list[float] = []

    def start(self, epochs, steps, initial_epoch):
        self.epochs = epochs
        if initial_epoch:
            self.output.info(f"resuming at epoch {initial_epoch + 1}/{epochs}")

    def batch(self, step, logs):
        pass

    def epoch(self, epoch, epochs, logs, seconds):
        self.epoch_seconds.append(seconds)
        eta = sum(self.epoch_seconds) / len(self.epoch_seconds) * (epochs - epoch)
        self.output.info(
            f"epoch {epoch}/{epochs}  loss {logs['loss']:.5f}  val_loss {logs['val_loss']:.5f}  "
            f"{seconds:.1f}s  eta {format_seconds(eta)}"
        )

    def finish(self):
        pass

    def message(self, text):
        self.output.warn(text)


class RichReporter(PlainReporter):
    """A live progress bar with loss, val_loss and ETA, on a terminal."""

    live = True  # wants `batch` calls; training skips its per-step hook for other reporters

    def start(self, epochs, steps, initial_epoch):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.epochs, self.steps = epochs, steps
        self.progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}/{task.fields[epochs]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}  val_loss {task.fields[val_loss]}"),
            TimeRemainingColumn(),
            console=self.output.stderr,
            transient=False,
        )
        self.progress.start()
        self.task = self.progress.add_task(
            "train",
            total=(epochs - initial_epoch) * steps,
            epoch=initial_epoch + 1,
            epochs=epochs,
            loss="-",
            val_loss="-",
        )
        self.done_steps = 0

    def batch(self, step, logs):
        loss = logs.get("loss")
        fields = {"loss": f"{float(loss):.5f}"} if loss is not None and math.isfinite(float(loss)) else {}
        self.progress.update(self.task, completed=self.done_steps + step, **fields)

    def epoch(self, epoch, epochs, logs, seconds):
        self.done_steps += self.steps
        # Each finished epoch stays on screen above the live bar.
        self.progress.console.print(
            f"epoch {epoch}/{epochs}  loss {logs['loss']:.5f}  val_loss {logs['val_loss']:.5f}  {seconds:.1f}s"
        )
        self.progress.update(
            self.task, completed=self.done_steps, epoch=min(epoch + 1, epochs), val_loss=f"{logs['val_loss']:.5f}"
        )

    def finish(self):
        if hasattr(self, "progress"):
            self.progress.stop()

    def message(self, text):
        self.output.warn(text)


class Progress:
    """Counts inputs done out of `total`; draws nothing. Use as a context manager."""

    def __init__(self, label: str, total: int | None = None, unit: str = "images"):
        self.label, self.total, self.unit = label, total, unit
        self.done = 0

    def start(self, total: int) -> None:
        """Sets the total, when it is known only once the work begins."""
        self.total = total

    def advance(self, count: int = 1) -> None:
        self.done += count

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class PlainProgress(Progress):
    """A plain line on stderr at most every `interval` seconds, for logs and NO_COLOR.

    A run shorter than `interval` prints nothing.
    """

    def __init__(
        self,
        label,
        total=None,
        unit="images",
        interval: float = PLAIN_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ):
        super().__init__(label, total, unit)
        self.interval, self.clock = interval, clock
        self.started = self.last = clock()

    def advance(self, count: int = 1) -> None:
        super().advance(count)
        now = self.clock()
        if now - self.last < self.interval:
            return
        self.last = now
        rate = self.done / (now - self.started) if now > self.started else 0.0
        line = f"{self.label}: {self.done}"
        if self.total:
            line += f"/{self.total} {self.unit}"
            if rate > 0:
                line += f", eta {format_seconds((self.total - self.done) / rate)}"
        else:
            line += f" {self.unit}"
        print(f"{line}, {rate:.1f} {self.unit}/s", file=sys.stderr, flush=True)


class RichProgress(Progress):
    """A live Rich bar on stderr with the count, the rate and the time left.

    Result lines printed meanwhile go above the bar when stdout is the terminal too
    (Rich's stdout redirect), so the bar never garbles them; a redirected stdout gets
    them directly, unchanged.
    """

    def __init__(self, label, total=None, unit="images", *, console):
        super().__init__(label, total, unit)
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            ProgressColumn,
            TextColumn,
            TimeRemainingColumn,
        )
        from rich.text import Text

        class RateColumn(ProgressColumn):
            def render(self, task):
                speed = task.finished_speed or task.speed
                return Text(f"{speed:.1f} {unit}/s" if speed else f"- {unit}/s")

        self.bar = Progress(
            TextColumn(f"[bold]{label}"),
            BarColumn(),
            MofNCompleteColumn(),
            RateColumn(),
            TimeRemainingColumn(),
            console=console,
            redirect_stdout=sys.stdout.isatty(),
            redirect_stderr=True,
        )
        self.bar.start()
        self.task = self.bar.add_task(label, total=total)

    def start(self, total: int) -> None:
        super().start(total)
        self.bar.update(self.task, total=total)

    def advance(self, count: int = 1) -> None:
        super().advance(count)
        self.bar.update(self.task, advance=count)

    def close(self) -> None:
        self.bar.stop()
