"""MkDocs hooks for xpnn's site (``hooks:`` in mkdocs.yml); in strict mode a warning fails the build.

- Before the build: every public name has a docstring of its own. The public names are those
  of ``xpnn.__all__`` and of the public submodules (their ``__all__``, or for a module without
  one the functions and classes it defines), and the methods and properties of those classes
  that xpnn defines (a method may take its docstring from the method it overrides).
- After the build: every name in ``xpnn.__all__`` has an entry on an API page, an element with
  the id ``xpnn.<Name>`` whose heading reads ``xpnn.<Name>``; every name of the public
  submodules has an entry with the id of its dotted name (``xpnn.functional.relu``, under the
  heading ``xpnn.functional``); no API page shows an unconverted RST role.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

log = logging.getLogger("mkdocs.plugins.xpnn")

PUBLIC_MODULES = [
    "xpnn",
    "xpnn.autograd",
    "xpnn.functional",
    "xpnn.optim",
    "xpnn.optim.schedules",
    "xpnn.data",
    "xpnn.distributed",
    "xpnn.io",
    "xpnn.nnfs",
    "xpnn.backend",
    "xpnn.kernels",
    "xpnn.testing",
]


def public_names(module: Any) -> list[str]:
    """``__all__``, or the functions and classes the module defines."""
    names = getattr(module, "__all__", None)
    if names is not None:
        return list(names)
    return [
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isfunction(value) or inspect.isclass(value))
        and value.__module__ == module.__name__
    ]


def _undocumented_members(cls: type) -> dict[str, str]:
    """``{dotted name of the defining class's member: ""}`` for the public methods and properties
    xpnn defines for ``cls`` (its own or inherited) that have no docstring, none inherited either."""
    found: dict[str, str] = {}
    for name in dir(cls):
        if name.startswith("_"):
            continue
        owner = next((k for k in cls.__mro__ if name in vars(k)), None)
        if owner is None or not owner.__module__.startswith("xpnn"):
            continue
        value = vars(owner)[name]
        if isinstance(value, staticmethod | classmethod):
            value = value.__func__
        if not (isinstance(value, property) or inspect.isfunction(value)):
            continue  # a constant or a slot: documented in the class's docstring
        if not inspect.getdoc(getattr(cls, name)) and not (value.__doc__ or "").strip():
            found[f"{owner.__module__}.{owner.__qualname__}.{name}"] = ""
    return found


def missing_docstrings() -> list[str]:
    """Dotted names of the public objects without a docstring (a member under the class that
    defines it)."""
    missing: dict[str, str] = {}
    seen: set[int] = set()
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in public_names(module):
            value = getattr(module, name)
            if id(value) in seen or isinstance(value, str | int | float | tuple | dict):
                continue  # constants (__version__, BACKENDS): documented where they are rendered
            seen.add(id(value))
            if not (getattr(value, "__doc__", None) or "").strip():
                missing[f"{module_name}.{name}"] = ""
            if inspect.isclass(value):
                missing.update(_undocumented_members(value))
    return list(missing)


def on_config(config: Any) -> Any:
    root = str(Path(config.config_file_path).parent)
    if root not in sys.path:  # the checkout: xpnn need not be installed
        sys.path.insert(0, root)
    return config


def on_pre_build(config: Any) -> None:
    for name in missing_docstrings():
        log.warning(f"xpnn: public name {name} has no docstring")


class _Entries(HTMLParser):
    """The ids of the headings on a page, and each heading's text."""

    def __init__(self) -> None:
        super().__init__()
        self.headings: dict[str, str] = {}
        self._open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        ids = dict(attrs).get("id")
        if tag in ("h1", "h2", "h3", "h4", "h5") and ids:
            self._open.append(ids)
            self.headings[ids] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h1", "h2", "h3", "h4", "h5") and self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for ids in self._open:
            self.headings[ids] += data


def api_entries(site_dir: Path) -> dict[str, str]:
    """``{heading id: heading text}`` over every API page of the built site."""
    entries: dict[str, str] = {}
    for page in sorted((site_dir / "api").rglob("*.html")):
        parser = _Entries()
        parser.feed(page.read_text(encoding="utf-8"))
        entries.update(parser.headings)
    return entries


# the public submodules whose every name (their ``__all__``, or the functions and classes they
# define) has an entry, as ``xpnn.<module>.<name>`` or, where re-exported, as ``xpnn.<name>``
ENTRY_MODULES = ["xpnn.functional", "xpnn.distributed", "xpnn.io", "xpnn.data", "xpnn.nnfs",
                 "xpnn.testing", "xpnn.kernels", "xpnn.backend", "xpnn.optim.schedules"]  # fmt: skip
ROLE_LEFT = re.compile(r":(class|func|meth|mod|attr|data|exc):`")


def missing_entries(site_dir: Path) -> list[str]:
    """The public names without an API entry: every name in ``xpnn.__all__`` needs one whose
    heading shows ``xpnn.<Name>``, those of :data:`ENTRY_MODULES` one with their dotted id."""
    import xpnn

    entries = api_entries(site_dir)

    def shown(path: str) -> bool:
        return path in entries and path in " ".join(entries[path].split())

    missing = [f"xpnn.{name}" for name in xpnn.__all__ if not shown(f"xpnn.{name}")]
    for module_name in ENTRY_MODULES:
        module = importlib.import_module(module_name)
        short = module_name.rsplit(".", 1)[-1]
        for name in public_names(module):
            # under its module's heading (``xpnn.functional``), the entry reads ``relu``: its
            # anchor carries the dotted name; a name ``xpnn`` re-exports has its ``xpnn.<Name>`` entry
            paths = [f"{module_name}.{name}", f"xpnn.{short}.{name}"]
            if not any(path in entries for path in paths) and not shown(f"xpnn.{name}"):
                missing.append(f"{module_name}.{name}")
    return missing


def leftover_roles(site_dir: Path) -> list[str]:
    """API pages whose text still shows an RST role (``:class:`X```): a docstring the Griffe
    extension did not convert."""
    return [
        str(page.relative_to(site_dir))
        for page in sorted((site_dir / "api").rglob("*.html"))
        if ROLE_LEFT.search(page.read_text(encoding="utf-8"))
    ]


def on_post_build(config: Any) -> None:
    site_dir = Path(config.site_dir)
    for name in missing_entries(site_dir):
        log.warning(f"xpnn: {name} has no API entry that shows its name")
    for page in leftover_roles(site_dir):
        log.warning(f"xpnn: {page} shows an RST role the Griffe extension did not convert")
