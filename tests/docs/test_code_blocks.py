"""Every ```python block of README.md and of the site's pages runs (see tests/docs/blocks.py for
the markers), so a renamed keyword fails here instead of a reader.

Blocks run in page order in one namespace per page (a block followed by a ```text block must
print what it shows), in a fresh working folder (files a block
writes land there) that holds a link to ``examples/``, as a checkout's root would. Fashion-MNIST
blocks get the first :data:`~tests.docs.blocks.SLICE` images; where the data set is not
installed, random uint8 images of the same shapes stand in (the code runs; the numbers mean
nothing). ``xpnn.load_fashion_mnist`` is replaced for every block, README's included: README's
quick start names the full set, and the tests run it on that slice too.
"""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import xpnn
from tests.docs import blocks as docs
from tests.helpers import mpi

PAGES = [page for page in docs.pages() if docs.blocks(page)]


def small_fashion_mnist(*args: Any, **kwargs: Any) -> Any:
    """The first SLICE training and test images of Fashion-MNIST (random ones where absent)."""
    try:
        (x, y), (x_test, y_test) = FULL_LOADER(*args, **{**kwargs, "download_missing": False})
    except xpnn.XpnnError:
        rng = np.random.default_rng(0)
        x, x_test = (rng.integers(0, 256, (docs.SLICE, 28, 28), dtype=np.uint8) for _ in range(2))
        y, y_test = (rng.integers(0, 10, docs.SLICE).astype(np.uint8) for _ in range(2))
    return (x[: docs.SLICE], y[: docs.SLICE]), (x_test[: docs.SLICE], y_test[: docs.SLICE])


FULL_LOADER = xpnn.data.load_fashion_mnist


@pytest.fixture
def page_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder like a checkout's root, the small data set, a headless matplotlib."""
    (tmp_path / "examples").symlink_to(docs.ROOT / "examples", target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setattr(xpnn, "load_fashion_mnist", small_fashion_mnist)
    monkeypatch.setattr(xpnn.data, "load_fashion_mnist", small_fashion_mnist)
    monkeypatch.setattr(sys, "path", list(sys.path))  # a block may put examples/ on it
    return tmp_path


def run_block(block: docs.Block, namespace: dict[str, Any]) -> None:
    """Run the block; where the page shows its output, it prints that."""
    if block.fragment:
        exec(compile(docs.FRAGMENT_PRELUDE, f"{block.where} (fragment prelude)", "exec"), namespace)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(block.runnable(), block.where, "exec"), namespace)
    if block.output is not None:
        shown = [line.rstrip() for line in block.output.strip().split("\n")]
        assert [line.rstrip() for line in printed.getvalue().strip().split("\n")] == shown, (
            f"{block.where} prints otherwise than the page shows:\n{printed.getvalue()}"
        )


def run_under_mpi(page: Path, mpi_blocks: list[docs.Block], folder: Path) -> None:
    """The page's ``mpiexec -n 2`` blocks as one script, on two ranks."""
    script = folder / f"{page.stem}_mpi.py"
    script.write_text("\n".join(f"# {b.where}\n{b.code}" for b in mpi_blocks), encoding="utf-8")
    env = mpi.environment()
    env["MPLBACKEND"] = "Agg"
    import subprocess

    done = subprocess.run(
        [mpi.mpiexec(), "-n", "2", sys.executable, str(script)],
        env=env, cwd=folder, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"mpiexec -n 2 {script.name} failed:\n{done.stdout}\n{done.stderr}"


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(docs.ROOT)) for p in PAGES])
def test_every_python_block_of_the_page_runs(page: Path, page_folder: Path) -> None:
    for module in docs.needs(page):
        pytest.importorskip(module, reason=f"{module} is not installed: {page.name} needs it")
    namespace: dict[str, Any] = {"__name__": "__main__"}
    page_blocks = docs.blocks(page)
    mpi_blocks = [b for b in page_blocks if b.mpi]
    for block in page_blocks:
        if block.here:
            try:
                run_block(block, namespace)
            except Exception as error:
                raise AssertionError(f"the block at {block.where} fails: {error!r}") from error
        if mpi_blocks and block is mpi_blocks[-1]:
            run_under_mpi(page, mpi_blocks, page_folder)


def test_every_marker_is_known_and_every_skip_says_why() -> None:
    for page in docs.pages():
        for block in docs.blocks(page):
            known = block.marker in docs.KNOWN_MARKERS or block.skip_reason
            assert known, f"{block.where}: unknown marker <!-- test: {block.marker} -->"
            assert block.skip_reason is None or block.skip_reason.strip(), (
                f"{block.where}: a skip needs a reason"
            )
            compile(block.code, block.where, "exec")  # a skipped block is at least Python


def test_a_page_marks_every_block_that_loads_fashion_mnist() -> None:
    """The reader is told where the tests run a sample on a slice (README cannot carry the
    marker: its quick start is covered by this module's docstring)."""
    for page in docs.pages()[1:]:
        for block in docs.blocks(page):
            if "load_fashion_mnist(" in block.code:
                assert block.marker == "fashion-mnist slice", (
                    f"{block.where}: mark it <!-- test: fashion-mnist slice -->"
                )
                text = " ".join(page.read_text(encoding="utf-8").split())
                assert f"the first {docs.SLICE} training" in text, f"{page.name} must say how many images"
