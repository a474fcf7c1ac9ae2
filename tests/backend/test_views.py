"""``view_as``: the one view helper of the flat buffers (never array-api-compat's
``reshape(copy=False)``, which its torch wrapper refuses before array-api-compat 1.16)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import xpnn
from xpnn import backend
from xpnn.backend.views import supports_views, view_as


def test_a_view_writes_through_to_its_buffer(bk: Any, to_bk: Any) -> None:
    flat = to_bk(np.zeros(12), "float32")
    if not supports_views(flat):  # the flat buffers are not used there (per-parameter path)
        assert bk.name in ("array_api_strict", "jax")
        return
    view = view_as(flat[2:8], (2, 3))
    assert tuple(view.shape) == (2, 3)
    backend.assign(view, view + 1.0)
    assert np.array_equal(backend.to_host(flat), np.r_[np.zeros(2), np.ones(6), np.zeros(4)])


def test_a_non_contiguous_numpy_array_is_refused_rather_than_copied() -> None:
    with pytest.raises(ValueError, match="non-contiguous"):
        view_as(np.zeros(12, np.float32)[::2], (2, 3))


@pytest.mark.fast_paths
def test_flat_buffers_do_not_need_reshape_with_copy_false(
    bk: Any, to_bk: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As with array-api-compat < 1.16 on torch: ``reshape(..., copy=False)`` raising."""
    real = bk.xp.reshape

    def old_reshape(x: Any, shape: Any, *, copy: Any = None, **kwargs: Any) -> Any:
        if copy is not None:
            raise NotImplementedError("reshape doesn't yet support the copy keyword")
        return real(x, shape, **kwargs)

    monkeypatch.setattr(bk.xp, "reshape", old_reshape)
    params = [xpnn.Parameter(to_bk(np.ones(s), "float32"), f"p{i}") for i, s in enumerate(((2, 3), (4,)))]
    opt = xpnn.SGD(params, 0.5)
    for p in params:
        p.grad = to_bk(np.ones(p.shape), "float32")
    opt.step()
    assert all(np.array_equal(backend.to_host(p.value), np.full(p.shape, 0.5)) for p in params)
    if supports_views(params[0].value):
        assert opt._flat[0] is not None  # packed: the views came from view_as
