"""F.gelu, F.layer_norm, F.embedding and F.scaled_dot_product_attention: forward and gradients
equal torch's (rtol 1e-10 in float64, 1e-4 in float32) on every backend, float64 finite
differences, each hand-written backward equal to the tape's gradient of the plain forward,
the fast paths equal to the plain equations, and the named errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

import xpnn
from tests.helpers.functions import close, finite_differences, gradients, handwritten_and_recorded
from tests.helpers.optional import require_torch
from xpnn import functional as F
from xpnn.functional.attention import HeadsAttention, ScaledDotProductAttention, causal_mask
from xpnn.functional.embedding import Embedding
from xpnn.functional.gelu import Gelu, erf
from xpnn.functional.layer_norm import LayerNorm

RNG = np.random.default_rng(11)
RTOL = {"float64": 1e-10, "float32": 1e-4}
DTYPES = ["float64", "float32"]


def _torch_tensors(*arrays):
    torch = require_torch()
    return [torch.tensor(a, requires_grad=True) for a in arrays]


# -- erf -------------------------------------------------------------------------------------------
def test_erf_is_accurate_to_float64_rounding_from_tiny_to_huge_arguments():
    x = np.concatenate([np.linspace(-7, 7, 20001), np.logspace(-300, 1.5, 4001), -np.logspace(-20, 2, 401)])
    expected = np.array([math.erf(v) for v in x])
    ulps = np.abs(erf(x) - expected) / np.spacing(np.maximum(np.abs(expected), 5e-324))
    assert ulps.max() <= 4  # measured: 3 at most


def test_erf_of_special_values_and_float32_stays_float32(xp, to_bk):
    x = to_bk(np.array([0.0, -0.0, np.inf, -np.inf, 30.0, -30.0, np.nan]))
    got = xpnn.backend.to_host(erf(x))
    np.testing.assert_array_equal(got[:6], [0.0, 0.0, 1.0, -1.0, 1.0, -1.0])
    assert np.isnan(got[6])
    x32 = to_bk(np.linspace(-5, 5, 101, dtype=np.float32))
    y32 = erf(x32)
    assert y32.dtype == xp.float32
    expected = [math.erf(float(v)) for v in np.linspace(-5, 5, 101, dtype=np.float32)]
    np.testing.assert_allclose(xpnn.backend.to_host(y32), expected, rtol=0, atol=3e-7)


# -- equal to torch --------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_matches_torch(approximate, dtype, to_bk):
    torch = require_torch()
    x = RNG.standard_normal((3, 4, 9)) * 3
    dy = RNG.standard_normal(x.shape)
    y, (dx,) = gradients(lambda t: F.gelu(t, approximate), [to_bk(x, dtype)], to_bk(dy, dtype))
    (tx,) = _torch_tensors(x)
    ty = torch.nn.functional.gelu(tx, approximate=approximate)
    ty.backward(torch.tensor(dy))
    close(y, ty, RTOL[dtype], "y")
    close(dx, tx.grad, RTOL[dtype], "dx")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine", ["both", "weight", "none"])
def test_layer_norm_matches_torch(affine, dtype, to_bk):
    torch = require_torch()
    x = RNG.standard_normal((2, 5, 12)) * 2 + 1
    w, b = RNG.uniform(0.5, 1.5, 12), RNG.standard_normal(12)
    dy = RNG.standard_normal(x.shape)
    arrays = [x, w, b][: {"both": 3, "weight": 2, "none": 1}[affine]]
    y, grads = gradients(
        lambda *t: F.layer_norm(*t, eps=1e-5), [to_bk(a, dtype) for a in arrays], to_bk(dy, dtype)
    )
    tensors = _torch_tensors(*arrays)
    ty = torch.nn.functional.layer_norm(tensors[0], (12,), *tensors[1:], eps=1e-5)
    ty.backward(torch.tensor(dy))
    close(y, ty, RTOL[dtype], "y")
    for name, got, t in zip("xwb", grads, tensors, strict=False):
        close(got, t.grad, RTOL[dtype], f"d{name}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_embedding_matches_torch_and_repeated_ids_add_their_gradients(dtype, xp, to_bk):
    torch = require_torch()
    ids = np.array([[1, 3, 1], [0, 1, 4]])  # id 1 three times, id 2 never
    w = RNG.standard_normal((5, 6))
    dy = RNG.standard_normal((2, 3, 6))
    y, (dw,) = gradients(lambda t: F.embedding(to_bk(ids), t), [to_bk(w, dtype)], to_bk(dy, dtype))
    (tw,) = _torch_tensors(w)
    ty = torch.nn.functional.embedding(torch.tensor(ids), tw)
    ty.backward(torch.tensor(dy))
    close(y, ty, RTOL[dtype], "y")
    close(dw, tw.grad, RTOL[dtype], "dw")
    np.testing.assert_allclose(xpnn.backend.to_host(dw)[1], dy[0, 0] + dy[0, 2] + dy[1, 1], rtol=1e-6)
    assert not np.any(xpnn.backend.to_host(dw)[2])


def _sdpa_cases():
    mask = RNG.random((6, 6)) > 0.4
    mask[:, 0] = True  # every query sees at least one key
    return {
        "plain": ({}, {}),
        "causal": ({"causal": True}, {"is_causal": True}),
        "mask": ({"mask": mask}, {"attn_mask": mask}),
        "mask_and_causal": (
            {"mask": mask, "causal": True},
            {"attn_mask": mask & np.tril(np.ones((6, 6), bool))},
        ),
        "scale": ({"scale": 0.3}, {"scale": 0.3}),
    }


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(_sdpa_cases()))
def test_scaled_dot_product_attention_matches_torch(case, dtype, to_bk):
    torch = require_torch()
    ours, theirs = _sdpa_cases()[case]
    q, k, v = (RNG.standard_normal((2, 3, 6, 4)) for _ in range(3))
    dy = RNG.standard_normal((2, 3, 6, 4))
    options = {key: to_bk(value) if key == "mask" else value for key, value in ours.items()}
    y, grads = gradients(
        lambda *t: F.scaled_dot_product_attention(*t, **options), [to_bk(a, dtype) for a in (q, k, v)],
        to_bk(dy, dtype),
    )  # fmt: skip
    tensors = _torch_tensors(q, k, v)
    reference = {key: torch.tensor(value) if key == "attn_mask" else value for key, value in theirs.items()}
    ty = torch.nn.functional.scaled_dot_product_attention(*tensors, **reference)
    ty.backward(torch.tensor(dy))
    close(y, ty, RTOL[dtype], "y")
    for name, got, t in zip("qkv", grads, tensors, strict=True):
        close(got, t.grad, RTOL[dtype], f"d{name}")


def test_causal_attention_with_more_keys_than_queries_uses_torchs_top_left_alignment(to_bk):
    torch = require_torch()
    q, k, v = RNG.standard_normal((1, 3, 4)), RNG.standard_normal((1, 5, 4)), RNG.standard_normal((1, 5, 2))
    y = F.scaled_dot_product_attention(*(to_bk(a) for a in (q, k, v)), causal=True)
    expected = torch.nn.functional.scaled_dot_product_attention(*map(torch.tensor, (q, k, v)), is_causal=True)
    close(y.value, expected, 1e-10)


def test_the_causal_mask_is_built_once_per_size_and_kept(xp):
    first = causal_mask(xp, None, 7, 7)
    assert causal_mask(xp, None, 7, 7) is first
    np.testing.assert_array_equal(xpnn.backend.to_host(first), np.tril(np.ones((7, 7), bool)))


def test_softmax_is_stable_for_huge_logits(to_bk):
    x = np.array([[1e4, 1e4 - 1.0, -1e4], [-3e38, 3e38, 0.0]], dtype=np.float32)
    y = xpnn.backend.to_host(F.softmax(to_bk(x)).value)
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y[0], [1 / (1 + math.exp(-1)), 1 / (1 + math.e), 0.0], rtol=1e-6)
    np.testing.assert_array_equal(y[1], [0.0, 1.0, 0.0])


# -- finite differences and the recorded plain forward ---------------------------------------------
def _cases(to_bk):
    x = to_bk(RNG.standard_normal((2, 3, 5)) * 2, "float64")
    w, b = to_bk(RNG.uniform(0.5, 1.5, 5), "float64"), to_bk(RNG.standard_normal(5), "float64")
    q, k, v = (to_bk(RNG.standard_normal((2, 4, 3)), "float64") for _ in range(3))
    mask = RNG.random((4, 4)) > 0.3
    mask[:, 0] = True
    ids, table = to_bk(np.array([[0, 2, 2], [1, 0, 2]])), to_bk(RNG.standard_normal((3, 4)), "float64")
    packed = to_bk(RNG.standard_normal((2, 4, 12)), "float64")
    return {
        "gelu_none": (Gelu, [x], {"approximate": "none", "fused": False}, None),
        "gelu_tanh": (Gelu, [x], {"approximate": "tanh", "fused": False}, None),
        "layer_norm": (LayerNorm, [x, w, b], {"eps": 1e-5, "fused": False}, None),
        "sdpa": (ScaledDotProductAttention, [q, k, v], {"fused": False}, None),
        "sdpa_causal": (ScaledDotProductAttention, [q, k, v], {"causal": True, "fused": False}, None),
        "sdpa_mask": (ScaledDotProductAttention, [q, k, v], {"mask": to_bk(mask), "fused": False}, None),
        "heads": (HeadsAttention, [packed], {"heads": 2, "causal": True, "fused": False}, None),
        "embedding": (Embedding, [ids, table], {}, (False, True)),
    }


CASES = ["gelu_none", "gelu_tanh", "layer_norm", "sdpa", "sdpa_causal", "sdpa_mask", "heads", "embedding"]


@pytest.mark.parametrize("case", CASES)
def test_gradients_match_finite_differences_in_float64(case, to_bk):
    function, arrays, options, needs = _cases(to_bk)[case]
    out = function.forward(function.context(), *arrays, **options)
    dy = to_bk(RNG.standard_normal(tuple(out.shape)), "float64")
    wanted = needs or [True] * len(arrays)

    def f(*tensors):
        return function.apply(*tensors, **options)

    leaves = [xpnn.Tensor(a, requires_grad=want) for a, want in zip(arrays, wanted, strict=True)]
    f(*leaves).backward(dy)
    numeric = finite_differences(f, arrays, dy)
    for leaf, expected, want in zip(leaves, numeric, wanted, strict=True):
        if want:
            np.testing.assert_allclose(xpnn.backend.to_host(leaf.grad), expected, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("case", CASES)
def test_handwritten_backward_equals_the_recorded_gradient_of_the_plain_forward(case, to_bk):
    function, arrays, options, needs = _cases(to_bk)[case]
    out = function.forward(function.context(), *arrays, **options)
    dy = to_bk(RNG.standard_normal(tuple(out.shape)), "float64")
    written, recorded = handwritten_and_recorded(function, arrays, options, dy, needs)
    for mine, taped in zip(written, recorded, strict=True):
        if taped is not None:
            close(mine, taped, 1e-12)


# -- the fast paths equal the plain equations ------------------------------------------------------
@pytest.mark.fast_paths
@pytest.mark.parametrize("dtype", DTYPES)
def test_fast_paths_equal_the_plain_equations(dtype):
    pytest.importorskip("numba", reason="numba is not installed: there is no fast path to compare")
    x = (RNG.standard_normal((3, 7, 10)) * 2).astype(dtype)
    w, b = RNG.standard_normal(10).astype(dtype), RNG.standard_normal(10).astype(dtype)
    packed = RNG.standard_normal((2, 7, 18)).astype(dtype)
    rtol = 1e-6 if dtype == "float32" else 1e-13
    cases = [
        (Gelu, [x], {"approximate": "tanh"}, 0.0),  # the same bits
        (Gelu, [x * 3], {"approximate": "none"}, rtol),
        (LayerNorm, [x, w, b], {"eps": 1e-5}, rtol),
        (LayerNorm, [x, None, None], {"eps": 1e-5}, rtol),
        (HeadsAttention, [packed], {"heads": 3, "causal": True}, rtol),
        (HeadsAttention, [packed], {"heads": 2}, rtol),
    ]
    for function, arrays, options, tolerance in cases:
        results = []
        for fused in (True, False):
            ctx = function.context()
            y = function.forward(ctx, *arrays, **options, fused=fused)
            ctx.needs = tuple(a is not None for a in arrays)
            dy = np.random.default_rng(0).standard_normal(y.shape).astype(dtype)
            results.append((y, function.backward(ctx, dy)))
        (y1, g1), (y2, g2) = results
        np.testing.assert_allclose(y1, y2, rtol=tolerance, atol=tolerance * np.abs(y2).max())
        for a, b_ in zip(g1, g2, strict=True):
            if a is not None:
                np.testing.assert_allclose(a, b_, rtol=tolerance, atol=tolerance * np.abs(b_).max())


def test_float32_stays_float32(xp, to_bk):
    x = to_bk(RNG.standard_normal((2, 3, 4)), "float32")
    assert F.gelu(x).dtype == xp.float32 and F.gelu(x, "tanh").dtype == xp.float32
    assert F.layer_norm(x).dtype == xp.float32
    assert F.scaled_dot_product_attention(x, x, x, causal=True).dtype == xp.float32


# -- named errors ---------------------------------------------------------------------------------
def test_bad_inputs_raise_named_errors(to_bk):
    x = to_bk(RNG.standard_normal((2, 3, 4)), "float32")
    with pytest.raises(xpnn.ArgumentError, match="approximate"):
        F.gelu(x, approximate="erf")
    with pytest.raises(xpnn.DTypeError, match="floating"):
        F.gelu(to_bk(np.arange(3)))
    with pytest.raises(xpnn.ShapeError, match=r"weight of shape \(4,\)"):
        F.layer_norm(x, to_bk(np.ones(3, np.float32)))
    with pytest.raises(xpnn.DTypeError, match="float32"):
        F.layer_norm(x, to_bk(np.ones(4)))
    with pytest.raises(xpnn.DTypeError, match="integer ids"):
        F.embedding(x, to_bk(np.ones((3, 4), np.float32)))
    with pytest.raises(xpnn.ShapeError, match="num_embeddings, dim"):
        F.embedding(to_bk(np.arange(3)), to_bk(np.ones(4, np.float32)))
    with pytest.raises(xpnn.ShapeError, match="same leading axes"):
        F.scaled_dot_product_attention(x, x, to_bk(RNG.standard_normal((2, 5, 4)), "float32"))
    with pytest.raises(xpnn.DTypeError, match="boolean mask"):
        F.scaled_dot_product_attention(x, x, x, mask=to_bk(np.ones((3, 3), np.float32)))
    with pytest.raises(xpnn.ShapeError, match="broadcastable"):
        F.scaled_dot_product_attention(x, x, x, mask=to_bk(np.ones((4, 3), bool)))
