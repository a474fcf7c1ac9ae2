"""Losses: values against the textbook formulas, finite-difference gradients, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

import xpnn
from xpnn import backend
from xpnn.testing import check_gradients

RNG = np.random.default_rng(99)
LOGITS = RNG.standard_normal((6, 4)) * 2
LABELS = np.array([0, 3, 1, 2, 3, 0])
ONE_HOT = np.eye(4)[LABELS]
PROBS = np.exp(LOGITS) / np.exp(LOGITS).sum(axis=1, keepdims=True)
BINARY_P = 1 / (1 + np.exp(-RNG.standard_normal((6, 3))))
BINARY_T = (RNG.random((6, 3)) > 0.5).astype(float)
REGRESSION_P, REGRESSION_T = RNG.standard_normal((6, 2)), RNG.standard_normal((6, 2))


def _reference(name: str) -> float:
    if name == "SoftmaxCrossEntropy":
        return float(np.mean(-np.log(PROBS[np.arange(6), LABELS])))
    if name == "CategoricalCrossEntropy":
        return float(np.mean(-np.log(np.clip(PROBS, 1e-7, 1 - 1e-7)[np.arange(6), LABELS])))
    if name == "BinaryCrossEntropy":
        return float(np.mean(-(BINARY_T * np.log(BINARY_P) + (1 - BINARY_T) * np.log(1 - BINARY_P))))
    if name == "MSE":
        return float(np.mean((REGRESSION_P - REGRESSION_T) ** 2))
    return float(np.mean(np.abs(REGRESSION_P - REGRESSION_T)))


CASES = {  # name -> (loss, prediction, target)
    "SoftmaxCrossEntropy": (xpnn.SoftmaxCrossEntropy, LOGITS, LABELS),
    "SoftmaxCrossEntropy_one_hot": (xpnn.SoftmaxCrossEntropy, LOGITS, ONE_HOT),
    "CategoricalCrossEntropy": (xpnn.CategoricalCrossEntropy, PROBS, LABELS),
    "CategoricalCrossEntropy_one_hot": (xpnn.CategoricalCrossEntropy, PROBS, ONE_HOT),
    "BinaryCrossEntropy": (xpnn.BinaryCrossEntropy, BINARY_P, BINARY_T),
    "MSE": (xpnn.MSE, REGRESSION_P, REGRESSION_T),
    "MAE": (xpnn.MAE, REGRESSION_P, REGRESSION_T),
}


def _target(to_bk, target: np.ndarray, dtype: str = "float64"):  # type: ignore[no-untyped-def]
    return to_bk(target, "int64") if target.dtype.kind == "i" else to_bk(target, dtype)


@pytest.mark.parametrize("case", sorted(CASES))
def test_loss_value_matches_the_textbook_formula(case, bk, to_bk):
    cls, pred, target = CASES[case]
    loss = cls().forward(to_bk(pred, "float64"), _target(to_bk, target))
    assert loss.ndim == 0
    assert float(loss) == pytest.approx(_reference(case.removesuffix("_one_hot")), rel=1e-12)


@pytest.mark.parametrize("case", sorted(CASES))
def test_loss_gradient_matches_finite_differences(case, bk, to_bk):
    cls, pred, target = CASES[case]
    check_gradients(cls(), to_bk(pred, "float64"), _target(to_bk, target))


@pytest.mark.parametrize("case", sorted(CASES))
def test_float32_predictions_give_float32_loss_and_gradient(case, bk, xp, to_bk):
    cls, pred, target = CASES[case]
    loss_fn = cls()
    loss = loss_fn.forward(to_bk(pred, "float32"), _target(to_bk, target, "float32"))
    assert loss.dtype == xp.float32 and loss_fn.backward().dtype == xp.float32


def test_softmax_cross_entropy_is_stable_for_huge_logits(bk, to_bk):
    logits = to_bk(np.array([[1000.0, 0.0, -1000.0], [-1000.0, 1000.0, 0.0]]), "float32")
    loss_fn = xpnn.SoftmaxCrossEntropy()
    loss = loss_fn.forward(logits, to_bk(np.array([0, 2]), "int64"))
    assert float(loss) == pytest.approx(500.0, rel=1e-6)
    assert np.all(np.isfinite(backend.to_host(loss_fn.backward())))


def test_softmax_cross_entropy_backward_is_probabilities_minus_one_hot_over_n(bk, to_bk):
    loss_fn = xpnn.SoftmaxCrossEntropy()
    loss_fn.forward(to_bk(LOGITS, "float64"), to_bk(LABELS, "int64"))
    xpnn.testing.assert_close(loss_fn.backward(), (PROBS - ONE_HOT) / 6, rtol=1e-12)


def test_labels_out_of_range_are_rejected_with_the_range(bk, to_bk):
    with pytest.raises(
        xpnn.LabelError, match=r"SoftmaxCrossEntropy: labels must be in \[0, 4\), got .*\[0, 4\]"
    ):
        xpnn.SoftmaxCrossEntropy().forward(
            to_bk(LOGITS, "float32"), to_bk(np.array([0, 1, 2, 3, 4, 0]), "int64")
        )
    with pytest.raises(xpnn.LabelError, match=r"\[-1, 2\]"):
        xpnn.CategoricalCrossEntropy().forward(to_bk(PROBS, "float32"), to_bk(LABELS - 1, "int64"))


def test_validate_false_skips_the_label_range_check(bk, to_bk):
    loss_fn = xpnn.SoftmaxCrossEntropy(validate=False)
    loss_fn.forward(to_bk(LOGITS, "float32"), to_bk(LABELS, "int64"))  # no host sync, no error


def test_labels_of_the_wrong_length_are_rejected(bk, to_bk):
    with pytest.raises(xpnn.LabelError, match=r"labels \(batch,\), got \(6, 4\) and \(5,\)"):
        xpnn.SoftmaxCrossEntropy().forward(to_bk(LOGITS, "float32"), to_bk(LABELS[:5], "int64"))


def test_targets_of_the_wrong_shape_are_rejected(bk, to_bk):
    with pytest.raises(xpnn.ShapeError, match=r"MSE: expected targets of shape \(6, 2\)"):
        xpnn.MSE().forward(to_bk(REGRESSION_P, "float32"), to_bk(REGRESSION_T[:, :1], "float32"))


def test_integer_predictions_are_rejected(bk, to_bk):
    with pytest.raises(xpnn.DTypeError, match="floating-point predictions"):
        xpnn.MSE().forward(to_bk(LABELS, "int64"), to_bk(LABELS, "int64"))


def test_targets_on_another_backend_are_rejected(bk, to_bk):
    if bk.name == "numpy":
        other = (
            backend.from_host(LABELS, backend.resolve("array_api_strict"))
            if _has("array_api_strict")
            else None
        )
    else:
        other = LABELS
    if other is None:
        pytest.skip("needs a second backend installed")
    with pytest.raises(xpnn.BackendMismatchError, match="targets"):
        xpnn.SoftmaxCrossEntropy().forward(to_bk(LOGITS, "float32"), other)


def test_check_finite_raises_on_a_nan_loss(bk, to_bk):
    pred = LOGITS.copy()
    pred[2, 1] = np.nan
    with pytest.raises(xpnn.NonFiniteLossError, match="SoftmaxCrossEntropy: the loss is nan"):
        xpnn.SoftmaxCrossEntropy(check_finite=True).forward(to_bk(pred, "float32"), to_bk(LABELS, "int64"))


def test_softmax_then_categorical_cross_entropy_equals_the_fused_loss(bk, to_bk):
    logits, labels = to_bk(LOGITS, "float64"), to_bk(LABELS, "int64")
    softmax, separate, fused = xpnn.Softmax(), xpnn.CategoricalCrossEntropy(), xpnn.SoftmaxCrossEntropy()
    loss = separate.forward(softmax.forward(logits), labels)
    assert float(loss) == pytest.approx(float(fused.forward(logits, labels)), rel=1e-12)
    xpnn.testing.assert_close(softmax.backward(separate.backward()), fused.backward(), rtol=1e-9)
    assert float(loss) == pytest.approx(_reference("SoftmaxCrossEntropy"), rel=1e-12)
    assert math.isfinite(float(loss))


def _has(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True
