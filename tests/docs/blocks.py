"""The ```python blocks of README.md and of the site's pages (docs/), with their markers.

A block runs as written, in page order, in one namespace per page. An HTML comment on the line
just above its fence marks a block that runs otherwise (the reader does not see it; the page
says so in words):

- ``<!-- test: skip (REASON) -->``: not run here, e.g. it needs a CUDA device; the reason is
  required.
- ``<!-- test: mpiexec -n 2 -->``: the page's blocks so marked run together, as one script,
  under ``mpiexec -n 2``, launched where the last of them stands in the page (the unmarked
  blocks run in the test process, where ``xpnn.distributed.init()`` is the size-1
  communicator); ``<!-- test: mpiexec -n 2, and here -->``: in that script and in the test
  process (the definitions both use).
- ``<!-- test: fashion-mnist slice -->``: the block loads the full Fashion-MNIST set; the test
  hands it the first images only (:data:`SLICE`), a page must mark every such block.

A page that needs optional packages says so once, anywhere in it:
``<!-- test: needs safetensors onnx -->``; its test skips, naming them, where one is missing
(``nox -s tests-cpu`` installs them all).

A ```text block right after a block (blank lines between at most) is what that block prints:
the test compares it with the block's output, line for line.

A block that uses ``...`` as a value (``loss=...``, ``fit(x, y, ..., callbacks=...)``) is a
*fragment* of a program the reader already has: the test runs it after :data:`FRAGMENT_PRELUDE`
(a small model, data and optimizer) with each placeholder filled by :data:`FILL`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SLICE = 256  # training images (and test images) a "fashion-mnist slice" block gets

FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w+-]*)[^\n]*$")
MARKER = re.compile(r"^\s*<!--\s*test:\s*(?P<what>.*?)\s*-->\s*$")
MPI_MARKERS = ("mpiexec -n 2", "mpiexec -n 2, and here")
KNOWN_MARKERS = ("", *MPI_MARKERS, "fashion-mnist slice")
NEEDS = re.compile(r"^\s*<!--\s*test:\s*needs\s+(?P<modules>[\w. ]+?)\s*-->\s*$", re.MULTILINE)
SKIP = re.compile(r"^skip \((?P<reason>.+)\)$")
PLACEHOLDER = re.compile(r"=\s*\.\.\.(?=\s*[,)])|,\s*\.\.\.\s*(?=,)")

FRAGMENT_PRELUDE = """\
import xpnn
x, y = xpnn.data.spiral_data(samples=50, classes=3)
model = xpnn.Sequential([xpnn.Dense(2, 16), xpnn.ReLU(), xpnn.Dense(16, 3)], seed=0)
opt = xpnn.Adam(model.parameters(), lr=0.01)
"""
FILL = {
    "=": "=xpnn.SoftmaxCrossEntropy()",  # loss=... (the one keyword the fragments leave open)
    ",": ", loss=xpnn.SoftmaxCrossEntropy(), optimizer=opt, epochs=1, verbose=0",  # fit(x, y, ..., )
}


@dataclass(frozen=True)
class Block:
    """One fenced ```python block: where it is, its code and its marker (``""``: none)."""

    page: Path
    line: int  # of the opening fence, from 1
    code: str
    marker: str
    output: str | None = None  # the ```text block that follows it: what it prints

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def skip_reason(self) -> str | None:
        match = SKIP.match(self.marker)
        return match.group("reason") if match else None

    @property
    def mpi(self) -> bool:
        """Part of the page's ``mpiexec -n 2`` script."""
        return self.marker in MPI_MARKERS

    @property
    def here(self) -> bool:
        """Run in the test process."""
        return self.skip_reason is None and self.marker != "mpiexec -n 2"

    @property
    def fragment(self) -> bool:
        return PLACEHOLDER.search(self.code) is not None

    def runnable(self) -> str:
        """The code as the test runs it: a fragment with its placeholders filled."""
        if not self.fragment:
            return self.code
        return PLACEHOLDER.sub(lambda m: FILL[m.group(0).lstrip()[0]], self.code)


def pages() -> list[Path]:
    """README.md, then every page of the site in file order."""
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def needs(page: Path) -> list[str]:
    """The importable names a page's ``<!-- test: needs ... -->`` line lists."""
    return [
        name
        for match in NEEDS.finditer(page.read_text(encoding="utf-8"))
        for name in match["modules"].split()
    ]


def blocks(page: Path) -> list[Block]:
    """The ```python blocks of ``page`` in order (other languages are not run)."""
    lines = page.read_text(encoding="utf-8").split("\n")
    found: list[Block] = []
    i, after_python = 0, False  # after_python: only blank lines since a python block closed
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            after_python = after_python and not lines[i].strip()
            i += 1
            continue
        indent, j = len(opening.group("indent")), i + 1
        while not re.match(rf"^ {{{indent}}}```\s*$", lines[j]):
            j += 1
        body = "\n".join(line[indent:] for line in lines[i + 1 : j])
        if opening.group("lang") == "python":
            marker = MARKER.match(lines[i - 1]) if i else None
            found.append(Block(page, i + 1, body + "\n", marker.group("what") if marker else ""))
        elif opening.group("lang") == "text" and after_python:
            found[-1] = replace(found[-1], output=body)
        after_python = opening.group("lang") == "python"
        i = j + 1
    return found
