"""A path the program will write, checked before any work: a callback's CSV or checkpoint,
an example's plot. Found at the start, not after an epoch (or a whole run) of training."""

from __future__ import annotations

import os
from typing import Any

from xpnn.errors import ArgumentError, ArgumentTypeError


def writable_path(
    who: str, name: str, path: Any, *, make_dirs: bool = False, suffixes: tuple[str, ...] = ()
) -> str:
    """``path`` as a ``str`` a file can be written to: a ``str`` or ``os.PathLike``, not a
    directory, with one of ``suffixes`` (where given), in a directory that exists (or, with
    ``make_dirs``, whose nearest existing ancestor is a directory) and is writable. Writes
    nothing; a named :class:`~xpnn.errors.ArgumentError` otherwise (``who``: its prefix, none
    where empty: a command-line flag names itself)."""
    who = f"{who}: " if who else ""
    if not isinstance(path, str | os.PathLike):
        raise ArgumentTypeError(f"{who}expected {name} a file path, got {type(path).__name__} {path!r}")
    text = os.fspath(path)
    if not isinstance(text, str) or not text:
        raise ArgumentError(f"{who}expected {name} a non-empty file path, got {path!r}")
    if os.path.isdir(text):
        raise ArgumentError(f"{who}{name} {text!r} is a directory; expected a file path inside it")
    suffix = os.path.splitext(text)[1].lower()
    if suffixes and suffix not in suffixes:
        raise ArgumentError(
            f"{who}{name} {text!r} ends in {suffix or 'no suffix'!r}, expected one of {suffixes}"
        )
    directory = os.path.dirname(os.path.abspath(text))
    existing = directory
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if existing != directory and not make_dirs:
        raise ArgumentError(f"{who}{name} {text!r}: the directory {directory!r} does not exist")
    if not os.path.isdir(existing):
        raise ArgumentError(f"{who}{name} {text!r}: {existing!r} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ArgumentError(f"{who}{name} {text!r}: the directory {existing!r} is not writable")
    return text
