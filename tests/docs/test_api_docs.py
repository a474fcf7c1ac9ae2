"""The API pages' inputs, checked without building the site (``nox -s docs`` builds it): every
public name has a docstring (docs/hooks.py's rule, which fails the strict build), and the Griffe
extension turns the docstrings' RST into the Markdown the pages show."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

import pytest

from tests.docs import blocks as docs


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"xpnn_docs_{name}", docs.DOCS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


hooks = _load("hooks")
griffe_xpnn = _load("griffe_xpnn") if importlib.util.find_spec("griffe") else None
needs_griffe = pytest.mark.skipif(griffe_xpnn is None, reason="griffe (the docs extra) is not installed")


def test_every_public_name_and_method_has_a_docstring() -> None:
    assert hooks.missing_docstrings() == []


def test_every_name_of_xpnn_all_is_on_an_api_page() -> None:
    """Each name of ``xpnn.__all__`` is rendered by a ``::: xpnn.<Name>`` line (or by the module
    entry that lists it), so the build's check of the HTML cannot fail on a forgotten name."""
    import xpnn

    text = "\n".join(page.read_text(encoding="utf-8") for page in (docs.DOCS / "api").glob("*.md"))
    modules = {"schedules": "::: xpnn.schedules", "functional": "::: xpnn.functional"}
    missing = [
        name
        for name in xpnn.__all__
        if f"::: xpnn.{name}\n" not in text and modules.get(name, "@") not in text
    ]
    assert missing == []


@needs_griffe
def test_a_literal_block_becomes_a_fenced_block() -> None:
    text = "The update::\n\n    v = m * v + g\n    w = w - lr * v\n\nThen more."
    assert griffe_xpnn._literal_blocks(text) == (
        "The update:\n\n```text\nv = m * v + g\nw = w - lr * v\n```\n\nThen more."
    )


@needs_griffe
def test_a_doctest_becomes_a_pycon_block() -> None:
    text = "Example:\n\n>>> 1 + 1\n2\n\nAfter."
    assert griffe_xpnn._doctests(text) == "Example:\n\n```pycon\n>>> 1 + 1\n2\n```\n\nAfter."


@needs_griffe
def test_a_simple_table_becomes_a_markdown_table() -> None:
    text = "====  =====\nname  what\n====  =====\na     one\nb     two\n====  =====\n"
    assert griffe_xpnn._tables(text).split("\n")[:4] == [
        "| name | what |",
        "|---|---|",
        "| a | one |",
        "| b | two |",
    ]
