"""Metrics on the device: counts and accuracies against NumPy's, with no host synchronisation."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from xpnn import backend
from xpnn.nn.metrics import accuracy, confusion_matrix, correct_count, per_class_accuracy

RNG = np.random.default_rng(7)
LOGITS = RNG.standard_normal((9, 4)).astype(np.float32)
LABELS = np.array([0, 3, 1, 2, 3, 0, 1, 1, 2])
EXPECTED = int(np.count_nonzero(LOGITS.argmax(axis=1) == LABELS))


@pytest.mark.parametrize("label_dtype", ["int64", "int32", "uint8"])
def test_correct_count_of_integer_labels_of_any_width(
    bk: backend.Backend, to_bk: Any, no_host_sync: Any, label_dtype: str
) -> None:
    pred, labels = to_bk(LOGITS), to_bk(LABELS, label_dtype)
    with no_host_sync():
        count = correct_count(pred, labels)
    assert type(count) is type(pred) and count.ndim == 0  # an array on the device: no sync per step
    assert bk.xp.isdtype(count.dtype, "integral")
    assert int(count) == EXPECTED
    assert 0 < EXPECTED < len(LABELS)  # the data tests both hits and misses


def test_correct_count_of_one_hot_targets_and_of_one_output_column(to_bk: Any) -> None:
    assert int(correct_count(to_bk(LOGITS), to_bk(np.eye(4, dtype=np.float32)[LABELS]))) == EXPECTED
    p = np.array([[0.9], [0.2], [0.6], [0.4]], dtype=np.float32)  # one column: p > 0.5 is class 1
    t = np.array([[1.0], [1.0], [0.0], [0.0]], dtype=np.float32)
    assert int(correct_count(to_bk(p), to_bk(t))) == 2


@pytest.mark.parametrize("dtype", ["bool", "uint8", "float32"])
def test_correct_count_of_a_binary_target_of_any_dtype_for_one_output_column(to_bk: Any, dtype: str) -> None:
    p = np.array([[0.9], [0.2], [0.6], [0.4], [0.7]], dtype=np.float32)  # p > 0.5: class 1
    t = np.array([1, 1, 0, 0, 1]).astype(dtype)
    for target in (t, t.reshape(-1, 1)):
        assert int(correct_count(to_bk(p), to_bk(target, dtype))) == 3


def test_accuracy_is_a_float32_fraction(to_bk: Any) -> None:
    acc = accuracy(to_bk(LOGITS), to_bk(LABELS))
    assert str(acc.dtype).endswith("float32")
    assert float(acc) == pytest.approx(EXPECTED / len(LABELS))


def test_confusion_matrix_and_per_class_accuracy_match_numpy(to_bk: Any) -> None:
    predicted = LOGITS.argmax(axis=1)
    expected = np.zeros((4, 4), dtype=np.int64)
    np.add.at(expected, (LABELS, predicted), 1)
    matrix = confusion_matrix(to_bk(predicted), to_bk(LABELS), 4)
    np.testing.assert_array_equal(backend.to_host(matrix), expected)
    recall = backend.to_host(per_class_accuracy(matrix))
    np.testing.assert_allclose(recall, np.diag(expected) / expected.sum(axis=1), rtol=1e-6)
