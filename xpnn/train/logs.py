"""Training logs people can look at: fit callbacks that write each epoch's numbers to a CSV
file (:class:`CSVLogger`) or to TensorBoard event files (:class:`TensorBoard`).

Both write only on rank 0 (``run.rank``), so data-parallel training logs once, and both read
only the per-epoch ``logs`` fit already has on the host: no extra device synchronisation.
"""

from __future__ import annotations

import math
import os
from typing import Any

from xpnn.checks import check_flag
from xpnn.errors import ArgumentError, ArgumentTypeError
from xpnn.io.paths import writable_path
from xpnn.optional import require
from xpnn.train.record import KEYS, Callback, TrainingRun


class CSVLogger(Callback):
    """Write a header line (``epoch`` and every History key), then one row per epoch.

    ``epoch`` is 0-based, as ``History.epochs``; values are written in full precision
    (``repr``: they read back as the same floats), NaN as ``nan``. With ``append=True``, or
    when fit resumes a run (``resume=``) and the file exists, rows are added to the end of the
    file without a second header (a resumed run first drops trailing rows of the epochs it
    repeats); otherwise the file is started afresh. Each row is written and closed at its
    epoch's end, so the file is complete after a crash. A file to continue must begin with
    this logger's header line: another CSV is refused (before fit trains), never appended to.
    """

    def __init__(self, path: str | os.PathLike[str], *, separator: str = ",", append: bool = False) -> None:
        if not isinstance(separator, str):
            raise ArgumentTypeError(f"CSVLogger: expected separator a string, got {separator!r}")
        if not separator or "\n" in separator:
            raise ArgumentError(f"CSVLogger: expected a non-empty one-line separator, got {separator!r}")
        self.path = writable_path("CSVLogger", "path", path)
        self.separator, self.append = separator, check_flag("CSVLogger", "append", append)
        self.header = self.separator.join(("epoch", *KEYS)) + "\n"

    def _exists(self) -> bool:
        return os.path.exists(self.path) and os.path.getsize(self.path) > 0

    def _continues(self, run: TrainingRun) -> bool:
        """Whether the file already holds a header to continue after."""
        return self._exists() and (self.append or run.epoch > 0)

    def _check_header(self) -> None:
        """The file to continue begins with this logger's header (else it is someone else's CSV)."""
        with open(self.path, encoding="utf-8", errors="replace") as file:
            first = file.readline(len(self.header) + 1)
        if first != self.header:
            raise ArgumentError(
                f"CSVLogger: {self.path!r} begins with {first[:80]!r}, not this logger's header "
                f"{self.header[:80]!r}: refusing to append to another file (use a new path)"
            )

    def before_fit(self, keys: set[str]) -> None:
        """fit calls it before training: a file ``append=True`` would continue is checked now."""
        if self.append and self._exists():
            self._check_header()

    def on_train_begin(self, run: TrainingRun) -> None:
        if run.rank != 0:
            return
        if not self._continues(run):
            with open(self.path, "w", encoding="utf-8") as file:
                file.write(self.header)
            return
        self._check_header()
        if run.epoch > 0:
            self._drop_rows_from(run.epoch)

    def _drop_rows_from(self, epoch: int) -> None:
        """A resumed run repeats the epochs after its checkpoint: drop the trailing rows of
        those epochs (written after the checkpoint, before an interruption) so none appear twice."""
        with open(self.path, encoding="utf-8") as file:
            lines = file.readlines()
        keep = len(lines)
        while keep > 1 and (row_epoch := self._epoch_of(lines[keep - 1])) is not None and row_epoch >= epoch:
            keep -= 1
        if keep < len(lines):
            with open(self.path, "w", encoding="utf-8") as file:
                file.writelines(lines[:keep])

    def _epoch_of(self, line: str) -> int | None:
        head = line.split(self.separator, 1)[0].strip()
        return int(head) if head.isdigit() else None

    def on_epoch_end(self, run: TrainingRun, epoch: int, logs: dict[str, float]) -> None:
        if run.rank != 0:
            return
        values = [repr(float(logs.get(key, math.nan))) for key in KEYS]
        with open(self.path, "a", encoding="utf-8") as file:
            file.write(self.separator.join((str(epoch), *values)) + "\n")


class TensorBoard(Callback):
    """Write every finite epoch number as a TensorBoard scalar (tag = History key, step =
    0-based epoch) under ``logdir`` through ``tensorboardX``, the optional ``tensorboard``
    extra (``pip install 'xpnn[tensorboard]'``); without it, constructing one raises
    :class:`~xpnn.errors.MissingDependencyError` (an ImportError) naming the extra.
    View with ``tensorboard --logdir LOGDIR``.
    """

    def __init__(self, logdir: str | os.PathLike[str]) -> None:
        self._tensorboardx = require("tensorboardX", extra="tensorboard", who="xpnn.TensorBoard")
        self.logdir = os.fspath(logdir)
        self.writer: Any = None

    def on_train_begin(self, run: TrainingRun) -> None:
        if run.rank == 0:
            self.writer = self._tensorboardx.SummaryWriter(logdir=self.logdir)

    def on_epoch_end(self, run: TrainingRun, epoch: int, logs: dict[str, float]) -> None:
        if self.writer is None:
            return
        for key in KEYS:
            value = float(logs.get(key, math.nan))
            if math.isfinite(value):  # no validation data: no val_ curves rather than NaN ones
                self.writer.add_scalar(key, value, global_step=epoch)
        self.writer.flush()

    def on_train_end(self, run: TrainingRun) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
