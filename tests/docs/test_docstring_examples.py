"""Every example in xpnn's docstrings runs and prints what it says: the ``>>>`` examples of every
module of the package (public or not: a private module's docstring is still read in ``help()``)
run as doctests, so a renamed keyword or a changed result fails here.

A docstring's code example is written as a doctest (``>>>`` lines and the output they print);
the API pages show it as a Python console block.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import xpnn


def _modules() -> list[str]:
    return ["xpnn", *sorted(info.name for info in pkgutil.walk_packages(xpnn.__path__, "xpnn."))]


def _examples() -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    found: dict[str, doctest.DocTest] = {}
    for name in _modules():
        for test in finder.find(importlib.import_module(name)):
            if test.examples:
                found.setdefault(test.name, test)  # a name re-exported by a package: once
    return sorted(found.values(), key=lambda test: test.name)


EXAMPLES = _examples()


def test_the_docstrings_have_examples() -> None:
    """The docstrings hold 14 examples today: removing one fails here (a new one may raise it)."""
    assert sum(len(test.examples) for test in EXAMPLES) >= 14, [t.name for t in EXAMPLES]


@pytest.mark.parametrize("test", EXAMPLES, ids=[test.name for test in EXAMPLES])
def test_the_docstring_example_runs(test: doctest.DocTest) -> None:
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    output: list[str] = []
    runner.run(test, out=output.append)
    failed, tried = runner.summarize(verbose=False)
    assert failed == 0, "".join(output)
    assert tried == len(test.examples)
