"""GELU, LayerNorm, Embedding and MultiHeadAttention as layers: equal to torch's modules in
forward and gradients (rtol 1e-10 in float64, 1e-4 in float32) on every backend, finite
differences, a Sequential holding them saves and reloads, weight tying, Dense(bias=False),
weight-decay groups, and the named errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import xpnn
from tests.helpers.functions import close
from tests.helpers.optional import require_torch
from xpnn import backend
from xpnn.testing import check_gradients

RNG = np.random.default_rng(3)
RTOL = {"float64": 1e-10, "float32": 1e-4}
DTYPES = ["float64", "float32"]


def _torch_dtype(dtype):
    torch = require_torch()
    return getattr(torch, dtype)


def _load_mha_into_torch(mha, reference):
    """Our packed (dim, 3 dim) qkv weight is torch's in_proj_weight (3 dim, dim) transposed."""
    torch = require_torch()
    with torch.no_grad():
        reference.in_proj_weight.copy_(torch.tensor(backend.to_host(mha.qkv.weight.value).T))
        reference.in_proj_bias.copy_(torch.tensor(backend.to_host(mha.qkv.bias.value)))
        reference.out_proj.weight.copy_(torch.tensor(backend.to_host(mha.out.weight.value).T))
        reference.out_proj.bias.copy_(torch.tensor(backend.to_host(mha.out.bias.value)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("masking", ["causal", "mask", "none"])
def test_multi_head_attention_matches_torch_multihead_attention(masking, dtype, bk, to_bk):
    torch = require_torch()
    mha = xpnn.MultiHeadAttention(8, 2, causal=masking == "causal", seed=1).to(bk, dtype=dtype)
    mha.qkv.bias.value = to_bk(RNG.standard_normal(24), dtype)
    mha.out.bias.value = to_bk(RNG.standard_normal(8), dtype)
    reference = torch.nn.MultiheadAttention(8, 2, batch_first=True).to(_torch_dtype("float64"))
    _load_mha_into_torch(mha, reference)
    x, dy = RNG.standard_normal((3, 5, 8)), RNG.standard_normal((3, 5, 8))
    allowed = RNG.random((5, 5)) > 0.4
    allowed[:, 0] = True
    inp = xpnn.Tensor(to_bk(x, dtype), requires_grad=True)
    y = mha(inp, to_bk(allowed)) if masking == "mask" else mha(inp)
    y.backward(to_bk(dy, dtype))
    tx = torch.tensor(x, requires_grad=True)
    blocked = {"causal": ~np.tril(np.ones((5, 5), bool)), "mask": ~allowed, "none": None}[masking]
    ty, _ = reference(
        tx, tx, tx, attn_mask=None if blocked is None else torch.tensor(blocked), need_weights=False
    )
    ty.backward(torch.tensor(dy))
    rtol = RTOL[dtype]
    close(y.value, ty, rtol, "y")
    close(inp.grad, tx.grad, rtol, "dx")
    close(mha.qkv.weight.grad, reference.in_proj_weight.grad.T, rtol, "d qkv.weight")
    close(mha.qkv.bias.grad, reference.in_proj_bias.grad, rtol, "d qkv.bias")
    close(mha.out.weight.grad, reference.out_proj.weight.grad.T, rtol, "d out.weight")


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm_gelu_and_embedding_layers_match_torch_modules(dtype, bk, to_bk):
    torch = require_torch()
    tdtype = _torch_dtype("float64")
    ln, gelu, emb = (
        xpnn.LayerNorm(6).to(bk, dtype=dtype),
        xpnn.GELU(),
        xpnn.Embedding(7, 6, seed=2).to(bk, dtype=dtype),
    )
    ln.weight.value, ln.bias.value = (
        to_bk(RNG.uniform(0.5, 2, 6), dtype),
        to_bk(RNG.standard_normal(6), dtype),
    )
    t_ln, t_emb = torch.nn.LayerNorm(6).to(tdtype), torch.nn.Embedding(7, 6).to(tdtype)
    with torch.no_grad():
        t_ln.weight.copy_(torch.tensor(backend.to_host(ln.weight.value)))
        t_ln.bias.copy_(torch.tensor(backend.to_host(ln.bias.value)))
        t_emb.weight.copy_(torch.tensor(backend.to_host(emb.weight.value)))
    ids = np.array([[1, 6, 1, 0], [3, 3, 3, 2]])
    dy = RNG.standard_normal((2, 4, 6))
    y = gelu(ln(emb(to_bk(ids))))
    y.backward(to_bk(dy, dtype))
    ty = torch.nn.functional.gelu(t_ln(t_emb(torch.tensor(ids))))
    ty.backward(torch.tensor(dy))
    rtol = RTOL[dtype]
    close(y.value, ty, rtol, "y")
    close(emb.weight.grad, t_emb.weight.grad, rtol, "d embedding")
    close(ln.weight.grad, t_ln.weight.grad, rtol, "d ln.weight")
    close(ln.bias.grad, t_ln.bias.grad, rtol, "d ln.bias")


@pytest.mark.parametrize(
    "layer",
    [
        lambda: xpnn.LayerNorm(5),
        lambda: xpnn.LayerNorm(5, elementwise_affine=False),
        lambda: xpnn.GELU(),
        lambda: xpnn.GELU("tanh"),
        lambda: xpnn.MultiHeadAttention(5, 1, causal=True, seed=0),
        lambda: xpnn.MultiHeadAttention(4, 2, bias=False, seed=0),
    ],
    ids=["layer_norm", "layer_norm_plain", "gelu", "gelu_tanh", "mha_causal", "mha_no_bias"],
)
def test_layer_gradients_match_finite_differences(layer, bk, to_bk):
    module = layer().to(bk, dtype="float64")
    if isinstance(module, xpnn.LayerNorm) and module.weight is not None:
        module.weight.value = to_bk(RNG.uniform(0.5, 1.5, 5), "float64")
        module.bias.value = to_bk(RNG.standard_normal(5), "float64")
    width = module.dim if hasattr(module, "dim") else 4
    check_gradients(module, to_bk(RNG.standard_normal((2, 3, width)), "float64"))


def test_embedding_gradient_matches_finite_differences(bk, to_bk):
    emb = xpnn.Embedding(4, 3, seed=0).to(bk, dtype="float64")
    ids = to_bk(np.array([[0, 3, 3], [1, 0, 3]]))
    dy = RNG.standard_normal((2, 3, 3))
    emb.forward(ids)
    assert emb.backward(to_bk(dy, "float64")) is None  # ids have no gradient
    expected = np.zeros((4, 3))
    np.add.at(expected, backend.to_host(ids).reshape(-1), dy.reshape(-1, 3))  # the exact derivative
    np.testing.assert_allclose(backend.to_host(emb.weight.grad), expected, rtol=1e-12)


def test_a_sequential_of_transformer_layers_saves_and_reloads(bk, to_bk, tmp_path: Path):
    model = xpnn.Sequential(
        [xpnn.Embedding(11, 8), xpnn.LayerNorm(8, eps=1e-6), xpnn.MultiHeadAttention(8, 2, causal=True),
         xpnn.GELU("tanh"), xpnn.Dense(8, 11, bias=False)], seed=4,
    ).to(bk)  # fmt: skip
    ids = to_bk(RNG.integers(0, 11, (2, 5)))
    with xpnn.no_grad():
        before = backend.to_host(model(ids).value)
    model.save(tmp_path / "lm.npz")
    loaded = xpnn.load(tmp_path / "lm.npz", backend=bk.name)
    assert [type(m).__name__ for m in loaded.layers] == [type(m).__name__ for m in model.layers]
    assert (
        loaded.layers[2].causal and loaded.layers[3].approximate == "tanh" and loaded.layers[4].bias is None
    )
    with xpnn.no_grad():
        np.testing.assert_array_equal(backend.to_host(loaded(ids).value), before)


def test_a_tied_parameter_is_listed_once_and_gets_both_gradients(to_bk):
    torch = require_torch()

    class Tied(xpnn.Module):
        def __init__(self):
            self.emb = xpnn.Embedding(5, 3, seed=0)
            self.head = self.emb.weight  # one Parameter, used twice

        def forward(self, ids):
            return self.emb(ids) @ self.head.T

    model = Tied()
    assert len(model.parameters()) == 1
    ids = np.array([[0, 2, 2]])
    model(ids).sum().backward()
    w = torch.tensor(backend.to_host(model.emb.weight.value), dtype=torch.float64, requires_grad=True)
    (torch.nn.functional.embedding(torch.tensor(ids), w) @ w.T).sum().backward()
    close(model.emb.weight.grad, w.grad, 1e-5)


def test_dense_without_bias_has_no_bias_parameter(to_bk):
    dense = xpnn.Dense(3, 2, bias=False, seed=0)
    assert dense.bias is None and [p.name for p in dense.parameters()] == ["weight"]
    x = RNG.standard_normal((4, 3)).astype(np.float32)
    np.testing.assert_allclose(dense.forward(x), x @ dense.weight.value, rtol=1e-6)
    dense.backward(np.ones((4, 2), np.float32))
    assert dense.config() == {"n_in": 3, "n_out": 2, "init": "glorot_uniform", "bias": False}


def test_decay_groups_decay_the_matrices_only():
    model = xpnn.Sequential([xpnn.Embedding(5, 4), xpnn.LayerNorm(4), xpnn.Dense(4, 5)], seed=0)
    decay, rest = xpnn.optim.decay_groups(model, 0.1)
    assert [p.name for p in decay["params"]] == ["weight", "weight"] and decay["weight_decay"] == 0.1
    assert [p.ndim for p in rest["params"]] == [1, 1, 1] and rest["weight_decay"] == 0.0
    decay, rest = xpnn.optim.decay_groups(model, 0.1, exclude=["0.weight"])
    assert len(decay["params"]) == 1 and len(rest["params"]) == 4
    optimizer = xpnn.AdamW(xpnn.optim.decay_groups(model, 0.5), lr=0.1)
    before = [p.value.copy() for p in model.parameters()]
    for p in model.parameters():
        p.grad = p.value * 0.0
    optimizer.step()  # zero gradients: only decay moves a parameter
    moved = [not np.array_equal(b, p.value) for b, p in zip(before, model.parameters(), strict=True)]
    assert moved == [True, False, False, True, False]


def test_decay_groups_reject_bad_arguments():
    model = xpnn.Sequential([xpnn.Dense(2, 2)], seed=0)
    with pytest.raises(xpnn.OptimizerError, match="weight_decay"):
        xpnn.optim.decay_groups(model, -1.0)
    with pytest.raises(xpnn.OptimizerError, match="not parameters"):
        xpnn.optim.decay_groups(model, 0.1, exclude=["0.nothing"])


def test_transformer_layers_reject_bad_input_with_named_errors(to_bk):
    with pytest.raises(xpnn.ArgumentError, match="not divisible"):
        xpnn.MultiHeadAttention(10, 3)
    with pytest.raises(xpnn.ShapeError, match=r"\(batch, time, 8\)"):
        xpnn.MultiHeadAttention(8, 2)(np.zeros((2, 8), np.float32))
    with pytest.raises(xpnn.ShapeError, match="broadcastable"):
        xpnn.MultiHeadAttention(8, 2)(np.zeros((2, 3, 8), np.float32), np.ones((4, 4), bool))
    with pytest.raises(xpnn.ShapeError, match=r"\(\.\.\., 4\)"):
        xpnn.LayerNorm(4)(np.zeros((2, 5), np.float32))
    with pytest.raises(xpnn.DTypeError, match="float32"):
        xpnn.LayerNorm(4)(np.zeros((2, 4)))
    with pytest.raises(xpnn.DTypeError, match="integer ids"):
        xpnn.Embedding(4, 2)(np.zeros((2, 4), np.float32))
    with pytest.raises(xpnn.ArgumentError, match="approximate"):
        xpnn.GELU("fast")
    with pytest.raises(xpnn.ArgumentError, match="num_embeddings"):
        xpnn.Embedding(0, 2)
