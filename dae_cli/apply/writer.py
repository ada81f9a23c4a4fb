"""The writer stage: outputs encoded and written atomically in a thread of their own.

While the model works on the next batch, the writer encodes (PNG, JPEG, TIFF...) and
writes the batch before, so both cores are busy; the outcomes reach the log in input
order, from the caller's thread. At most `Writer.DEPTH` lists wait, so memory stays flat.
"""

from __future__ import annotations

import collections
import dataclasses
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from dae_cli.apply.outcomes import Outcome, OutcomeLog, write_image
from dae_cli.io import image_io


@dataclasses.dataclass
class ImageToWrite:
    """One output image: `pixels` on [0, 1] in its source's channels, written as `meta` says."""

    label: str
    pixels: np.ndarray
    output: Path
    meta: image_io.ImageMeta | None = None
    sigma: float | None = None  # the noise level the model was given, for the outcome
    sigma_estimated: bool = False


class Writer:
    """Writes lists of `ImageToWrite` (or failures found earlier, as `Outcome`s) in a thread.

    With `--fail-fast`, nothing after the first failure is written.

    Example:
        >>> writer = Writer(log, overwrite=False, options=image_io.OutputOptions())  # doctest: +SKIP
        >>> writer.submit([ImageToWrite("a.png", pixels, Path("a.denoised.png"))])
        >>> writer.finish(); writer.close()
    """

    DEPTH = 2

    def __init__(self, log: OutcomeLog, overwrite: bool, options: image_io.OutputOptions):
        self.log, self.overwrite, self.options = log, overwrite, options
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dae-write")
        self.waiting: collections.deque = collections.deque()
        self.stopped = False
        self.made_directories: set[Path] = set()  # of this run: one mkdir per folder

    def submit(self, items: list) -> None:
        if items:
            self.waiting.append(self.executor.submit(self._write, items))
        while len(self.waiting) > self.DEPTH:
            self._report(self.waiting.popleft().result())

    def finish(self) -> None:
        while self.waiting:
            self._report(self.waiting.popleft().result())

    def close(self) -> None:
        self.stopped = True  # after an error (or --fail-fast): write nothing more
        self.executor.shutdown(wait=True, cancel_futures=True)

    def _report(self, outcomes: list[Outcome]) -> None:
        for outcome in outcomes:
            self.log.add(outcome)

    def _write(self, items: list) -> list[Outcome]:
        outcomes = []
        for item in items:
            if self.stopped:
                break
            outcome = item if isinstance(item, Outcome) else self._write_one(item)
            outcomes.append(outcome)
            if self.log.fail_fast and not outcome.ok:
                self.stopped = True
        return outcomes

    def _write_one(self, item: ImageToWrite) -> Outcome:
        outcome = write_image(
            item.label, item.pixels, item.output, item.meta, self.overwrite, self.options, self.made_directories
        )
        outcome.sigma, outcome.sigma_estimated = item.sigma, item.sigma_estimated
        return outcome
