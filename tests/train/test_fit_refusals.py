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
from xpnn.errors import CheckpointError, LabelError


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
