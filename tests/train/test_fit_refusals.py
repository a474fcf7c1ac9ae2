"""Issue 24 items 7, 8 and 10 (resume): fit refuses, before anything changes, labels out of
range when resuming (the checkpoint not yet loaded), an optimizer of another model's
parameters, and a resume with another batch size."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import xpnn
from tests.helpers import hostile_files as hf
from xpnn.errors import ArgumentTypeError, CheckpointError, LabelError, OptimizerError


def _data(n: int = 30) -> tuple[np.ndarray, np.ndarray]:
    return np.random.default_rng(0).standard_normal((n, 4)).astype(np.float32), np.arange(n) % 3


def _fresh() -> tuple[xpnn.Sequential, xpnn.Adam]:
    model = hf.small_model()
    return model, xpnn.Adam(model.parameters(), lr=1e-2)


def _fit(model: xpnn.Sequential, optimizer: Any, **kwargs: Any) -> Any:
    x, y = _data()
    options = {"epochs": 2, "batch_size": 10, "verbose": 0, **kwargs}
    return model.fit(options.pop("x", x), options.pop("y", y), loss=xpnn.SoftmaxCrossEntropy(),
                     optimizer=optimizer, **options)  # fmt: skip


@pytest.mark.parametrize("where", ["training", "validation"])
def test_resume_with_labels_out_of_range_is_refused_before_the_checkpoint_loads(
    tmp_path: Path, where: str
) -> None:
    hf.trained(tmp_path / "ck.npz")
    model, optimizer = _fresh()
    before = hf.state(model, optimizer)
    x, y = _data()
    bad = y.copy()
    bad[17] = 7  # not the first sample: the one-sample rehearsal does not see it
    kwargs: dict[str, Any] = {"y": bad} if where == "training" else {"validation_data": (x[:12], bad[6:18])}
    with pytest.raises(LabelError, match=r"labels must be in \[0, 3\).*\[0, 7\]"):
        _fit(model, optimizer, resume=tmp_path / "ck.npz", **kwargs)
    assert hf.same(hf.state(model, optimizer), before)


def test_resume_with_another_batch_size_is_refused_with_nothing_changed(tmp_path: Path) -> None:
    hf.trained(tmp_path / "ck.npz")  # batch size 10
    model, optimizer = _fresh()
    before = hf.state(model, optimizer)
    with pytest.raises(CheckpointError, match=r"trained with batch_size 10, this fit has 16"):
        _fit(model, optimizer, resume=tmp_path / "ck.npz", batch_size=16)
    assert hf.same(hf.state(model, optimizer), before)
    assert len(_fit(model, optimizer, resume=tmp_path / "ck.npz", batch_size=10).epochs) == 1


def test_fit_refuses_an_optimizer_of_another_models_parameters_before_any_step() -> None:
    model, _ = _fresh()
    foreign = xpnn.Adam(hf.small_model().parameters(), lr=1e-2)
    before = hf.state(model)
    with pytest.raises(
        OptimizerError, match=r"fit: the optimizer updates 4 parameter\(s\) that are not this"
    ):
        _fit(model, foreign)
    assert hf.same(hf.state(model), before) and foreign.t == 0


def test_fit_refuses_an_optimizer_holding_one_foreign_parameter_among_its_own() -> None:
    model, _ = _fresh()
    stray = hf.small_model().parameters()[0]
    with pytest.raises(OptimizerError, match=r"1 parameter\(s\) that are not this model's.*\(4, 8\)"):
        _fit(model, xpnn.SGD([*model.parameters(), stray], lr=0.1))


def test_fit_trains_an_optimizer_over_a_subset_of_the_parameters_and_leaves_the_rest() -> None:
    model, _ = _fresh()
    host = xpnn.backend.to_host
    frozen, trained = model.layers[0].parameters(), model.layers[3].parameters()
    before = [host(p.value) for p in frozen], [host(p.value) for p in trained]
    _fit(model, xpnn.SGD(trained, lr=0.1))
    assert all(np.array_equal(a, host(p.value)) for a, p in zip(before[0], frozen, strict=True))
    assert not any(np.array_equal(a, host(p.value)) for a, p in zip(before[1], trained, strict=True))


LR_FIND_CASES = {
    "steps=2.5": ({"steps": 2.5}, ArgumentTypeError, r"steps an integer, got float 2.5"),
    "loss='mse'": ({"loss": "mse"}, ArgumentTypeError, r"lr_find: expected loss= an xpnn Loss"),
    "optimizer=None": ({"optimizer": None}, ArgumentTypeError, r"expected optimizer= an xpnn Optimizer"),
    "x a list": ({"x": [[0.0] * 4] * 30}, ArgumentTypeError, r"expected x to be an array"),
    "end='10'": ({"end": "10"}, ArgumentTypeError, r"expected end to be a number"),
    "foreign optimizer": ({"foreign": True}, OptimizerError, r"lr_find: the optimizer updates 4 parameter"),
}


@pytest.mark.parametrize("case", list(LR_FIND_CASES))
def test_lr_find_names_each_bad_argument_before_any_step(case: str) -> None:
    overrides, error, match = LR_FIND_CASES[case]
    model, optimizer = _fresh()
    x, y = _data()
    kwargs: dict[str, Any] = {
        "loss": xpnn.SoftmaxCrossEntropy(),
        "optimizer": optimizer,
        "steps": 5,
        **overrides,
    }
    if kwargs.pop("foreign", False):
        kwargs["optimizer"] = xpnn.Adam(hf.small_model().parameters(), lr=1e-2)
    before = hf.state(model)
    with pytest.raises(error, match=match):
        xpnn.lr_find(model, kwargs.pop("x", x), y, **kwargs)
    assert hf.same(hf.state(model), before)
