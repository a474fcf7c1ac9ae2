"""What the example programs share as command-line tools: every argument checked before any
work, each refusal one line naming the error (no traceback), a non-zero exit status.

:class:`Parser` is ``argparse.ArgumentParser`` whose errors are one line (argparse's own
prints the whole usage first); :func:`checked` turns a named xpnn error raised while checking
the parsed arguments into such a line; :func:`run` runs a ``main``: a named error later (the
data not found, a loss gone NaN) is one line and exit status 1, a Ctrl-C outside ``fit`` (or
the second one inside it) one line and 130, as a shell reports SIGINT.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from xpnn.errors import ArgumentError, MissingDependencyError, XpnnError

INTERRUPTED = 130  # 128 + SIGINT
PLOT_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose refusals are one line: ``prog: error: ... (--help: usage)``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (--help: usage)\n")


def checked(parser: argparse.ArgumentParser, check: Callable[[], Any]) -> Any:
    """``check()``'s result; a named xpnn error it raises becomes the parser's one-line error."""
    try:
        return check()
    except XpnnError as error:
        parser.error(f"{type(error).__name__}: {error}")


def positive(flag: str, value: float | None, *, zero: bool = False) -> None:
    """``value`` finite and > 0 (>= 0 where ``zero``), or an ArgumentError naming ``flag``."""
    if value is not None and not (math.isfinite(value) and (value >= 0 if zero else value > 0)):
        raise ArgumentError(f"{flag} must be a finite number {'>=' if zero else '>'} 0, got {value}")


def require_module(module: str, flag: str, extra: str) -> None:
    """``flag`` needs ``module``: found now (without importing it), not after training."""
    if importlib.util.find_spec(module) is None:
        raise MissingDependencyError(
            f"{flag} needs {module}, which is not installed: pip install 'xpnn[{extra}]'"
        )


def run(main: Callable[[], int]) -> int:
    """``main()``'s exit status; a named xpnn error is one line and 1, Ctrl-C one line and 130."""
    prog = sys.argv[0].rsplit("/", 1)[-1]
    try:
        return main()
    except XpnnError as error:
        print(f"{prog}: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted (Ctrl-C)", file=sys.stderr)
        return INTERRUPTED
