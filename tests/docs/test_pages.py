"""README.md is the front door and the site's pages go deeper: they link, they do not copy. A
run of :data:`WORDS` words of README's prose found in a page (or the reverse) is a copy that
will drift; code blocks are left out (a page may run the same ``import xpnn``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.docs import blocks as docs

WORDS = 10


def prose_runs(page: Path, n: int = WORDS) -> set[str]:
    """Every run of ``n`` consecutive words of the page's text outside its fenced blocks."""
    text = re.sub(r"^( *)```.*?^\1```", " ", page.read_text(encoding="utf-8"), flags=re.S | re.M)
    words = re.findall(r"[\w'./-]+", text.lower())
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


PAGES = docs.pages()[1:]


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(docs.ROOT)) for p in PAGES])
def test_the_page_copies_no_prose_of_the_readme(page: Path) -> None:
    copied = prose_runs(docs.ROOT / "README.md") & prose_runs(page)
    assert not copied, f"{page.name} repeats README.md word for word: {sorted(copied)[:3]}"


def test_the_readme_links_to_the_tutorials_and_guides() -> None:
    readme = (docs.ROOT / "README.md").read_text(encoding="utf-8")
    for page in sorted([*(docs.DOCS / "tutorials").glob("*.md"), *(docs.DOCS / "guides").glob("*.md")]):
        assert f"({page.relative_to(docs.ROOT)})" in readme, f"README.md has no link to {page.name}"
