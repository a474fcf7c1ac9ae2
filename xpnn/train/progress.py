"""Progress inside an epoch where no progress bar can be drawn (output to a file, a pipe, a
CI log; or tqdm not installed): a line every few seconds, as Keras' ``verbose=2`` does not
and a long epoch needs. ``XPNN_PROGRESS_SECONDS`` sets the interval (default 5 s)."""

from __future__ import annotations

import os
import sys
from typing import Any

SECONDS = 5.0


def interval() -> float:
    """The seconds between lines: ``$XPNN_PROGRESS_SECONDS`` where it is a number >= 0."""
    try:
        seconds = float(os.environ.get("XPNN_PROGRESS_SECONDS", SECONDS))
    except ValueError:
        return SECONDS
    return seconds if seconds >= 0 else SECONDS


class ProgressLines:
    """The progress bar's interface (``update``, ``set_postfix``, ``close``) as plain lines:
    ``epoch 2/15: 12,032/54,000 samples, loss 0.4321, acc 0.8412, samples_s 1,234``. fit
    reads the running loss (a device sync) only when a line is due (``interval``)."""

    def __init__(self, total: int, description: str) -> None:
        self.total, self.description, self.done = total, description, 0
        self.interval = interval()

    def update(self, n: int) -> None:
        self.done += n

    def set_postfix(self, **numbers: Any) -> None:
        shown = ", ".join(f"{key} {value}" for key, value in numbers.items())
        print(
            f"{self.description}: {self.done:,}/{self.total:,} samples, {shown}", file=sys.stdout, flush=True
        )

    def close(self) -> None:
        """Nothing to take down: the epoch's summary line follows."""
