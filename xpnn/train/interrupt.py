"""Ctrl-C as a normal way to end ``fit``: the first SIGINT asks training to stop after the
current step (model and optimizer as after a whole step, the History so far returned, one
line printed); a second one raises ``KeyboardInterrupt`` at once.

Only the main thread can receive signals, and only a handler still Python's default is
replaced (a program that installed its own keeps it); under data-parallel training the
ranks could not agree on the step to stop at, so there the default behaviour stays.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any


class StopRequest:
    """While entered, SIGINT sets :attr:`requested` instead of raising (see the module doc)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled, self.requested = enabled, False
        self.previous: Any = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:  # the second Ctrl-C: out at once
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> StopRequest:
        installable = threading.current_thread() is threading.main_thread()
        if self.enabled and installable and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
            self.previous = None
