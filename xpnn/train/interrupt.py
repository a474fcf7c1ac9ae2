"""Ctrl-C as a normal way to end ``fit``: the first SIGINT asks training to stop after the
current step (model and optimizer as after a whole step, the History so far returned, one
line printed); a second one raises ``KeyboardInterrupt`` at once.

Only the main thread can receive signals, and only a handler still Python's default is
replaced (a program that installed its own keeps it); under data-parallel training the
ranks could not agree on the step to stop at, so there the default behaviour stays.

Each SIGINT is counted from the byte CPython's C-level handler writes to a wakeup pipe
(:func:`signal.set_wakeup_fd`) the moment it arrives, read by the Python handler and by
:meth:`StopRequest.poll` after each step. The Python handler alone is not enough: on CPython
3.11 another thread running bytecode (the loop pool's, tqdm's monitor) can clear the
interpreter's "signal pending" flag, so the handler may run only much later.
"""

from __future__ import annotations

import os
import select
import signal
import threading
from types import FrameType
from typing import Any


class StopRequest:
    """While entered, SIGINT asks for a stop instead of raising (see the module doc)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled, self.count = enabled, 0
        self.previous: Any = None
        self._pipe: tuple[int, int] | None = None
        self._ready: Any = None  # a poll object on the pipe's read end (a third of a failed read's cost)
        self._wakeup = -1

    @property
    def requested(self) -> bool:
        """Whether a Ctrl-C arrived (as far as counted)."""
        return self.count > 0

    def _drain(self) -> None:
        if self._pipe is None or (self._ready is not None and not self._ready.poll(0)):
            return
        try:
            data = os.read(self._pipe[0], 4096)
        except BlockingIOError:
            return
        self.count += data.count(bytes([signal.SIGINT]))

    def _second(self) -> None:
        if self.count >= 2:  # the second Ctrl-C: out at once
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._pipe is None:
            self.count += 1
        else:
            self._drain()
            self.count = max(self.count, 1)  # the byte may have been read by poll() already
        self._second()

    def poll(self) -> bool:
        """Whether to stop after this step; a second Ctrl-C raises ``KeyboardInterrupt``."""
        self._drain()
        self._second()
        return self.requested

    def __enter__(self) -> StopRequest:
        installable = threading.current_thread() is threading.main_thread()
        if self.enabled and installable and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self.previous = signal.signal(signal.SIGINT, self._handle)
            read, write = os.pipe()
            os.set_blocking(read, False)
            os.set_blocking(write, False)
            try:
                self._wakeup = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
                self._pipe = (read, write)
                if hasattr(select, "poll"):  # not on Windows: there a read that finds nothing
                    self._ready = select.poll()
                    self._ready.register(read, select.POLLIN)
            except ValueError:  # not allowed here: count in the handler only
                os.close(read)
                os.close(write)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
            self.previous = None
        if self._pipe is not None:
            signal.set_wakeup_fd(self._wakeup)
            for fd in self._pipe:
                os.close(fd)
            self._pipe, self._ready = None, None
