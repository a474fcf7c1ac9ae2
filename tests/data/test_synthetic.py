"""xpnn.data.synthetic: the NNFS book's data, equal to the ``nnfs`` package's after the same seed."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from xpnn.data import synthetic as datasets

nnfs_datasets = pytest.importorskip("nnfs.datasets")  # test-only dependency


@pytest.mark.parametrize("name", ["spiral_data", "vertical_data"])
def test_global_seed_gives_the_nnfs_package_data_in_float32(name: str) -> None:
    np.random.seed(7)
    expected_x, expected_y = getattr(nnfs_datasets, name)(100, 3)
    np.random.seed(7)
    x, y = getattr(datasets, name)(100, 3)
    assert x.dtype == np.float32 and x.shape == (300, 2)
    np.testing.assert_array_equal(x, expected_x.astype(np.float32))
    assert y.dtype == expected_y.dtype == np.uint8
    np.testing.assert_array_equal(y, expected_y)


def test_nnfs_init_gives_bit_identical_spiral_data_in_a_subprocess() -> None:
    # nnfs.init() patches numpy for the whole process: keep it out of this one
    script = textwrap.dedent(
        """
        import numpy as np, nnfs
        from nnfs.datasets import spiral_data as book, vertical_data as book_vertical
        from xpnn.data.synthetic import spiral_data, vertical_data
        nnfs.init()
        expected = book(samples=100, classes=3)
        np.random.seed(0)
        got = spiral_data(samples=100, classes=3)
        assert expected[0].dtype == got[0].dtype == np.float32, (expected[0].dtype, got[0].dtype)
        assert np.array_equal(expected[0], got[0]) and np.array_equal(expected[1], got[1])
        np.random.seed(1)
        expected = book_vertical(50, 2)
        np.random.seed(1)
        got = vertical_data(50, 2)
        assert np.array_equal(expected[0], got[0]) and np.array_equal(expected[1], got[1])
        print("ok")
        """
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=root
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_sine_data_equals_the_nnfs_package_in_float32() -> None:
    expected_x, expected_y = nnfs_datasets.sine_data(500)
    x, y = datasets.sine_data(500)
    assert x.dtype == y.dtype == np.float32 and x.shape == y.shape == (500, 1)
    np.testing.assert_array_equal(x, expected_x.astype(np.float32))
    np.testing.assert_array_equal(y, expected_y.astype(np.float32))


@pytest.mark.parametrize("name", ["spiral_data", "vertical_data"])
def test_explicit_seed_is_reproducible_and_leaves_the_global_generator_alone(name: str) -> None:
    np.random.seed(3)
    before = np.random.get_state()[1].copy()
    a = getattr(datasets, name)(50, 4, seed=11)
    b = getattr(datasets, name)(50, 4, seed=11)
    np.testing.assert_array_equal(np.random.get_state()[1], before)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], getattr(datasets, name)(50, 4, seed=12)[0])


def test_explicit_seed_equals_the_global_generator_seeded_alike() -> None:
    np.random.seed(5)
    global_draw = datasets.spiral_data(30, 2)
    private_draw = datasets.spiral_data(30, 2, seed=5)
    np.testing.assert_array_equal(global_draw[0], private_draw[0])


def test_spiral_labels_are_blocks_of_samples_per_class() -> None:
    _, y = datasets.spiral_data(10, 3, seed=0)
    np.testing.assert_array_equal(y, np.repeat(np.arange(3, dtype=np.uint8), 10))


@pytest.mark.parametrize("samples, classes", [(0, 3), (10, 0), (-1, 2)])
def test_non_positive_sizes_raise_naming_them(samples: int, classes: int) -> None:
    with pytest.raises(ValueError, match=rf"samples={samples}, classes={classes}"):
        datasets.spiral_data(samples, classes)
