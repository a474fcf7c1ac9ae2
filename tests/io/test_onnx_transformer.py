"""xpnn.io.export_onnx of the transformer pieces: a character GPT (embedding, LayerNorm, causal
multi-head attention, GELU in both forms, a tied head, slicing, reshapes), attention with a
boolean mask, LayerNorm without weights; ONNX Runtime gives xpnn's outputs for other batch
sizes than the traced one (issue 26, "the transformer layers when they exist")."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import xpnn
from xpnn import backend
from xpnn import functional as F

pytest.importorskip("onnx", reason="onnx is not installed (pip install 'xpnn[io]')")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'xpnn[io]')")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
from gpt import GPT  # noqa: E402  # the example's model, beside this repository's tests

RNG = np.random.default_rng(4)


def _onnx(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _xpnn(model: Any, x: np.ndarray) -> np.ndarray:
    with xpnn.no_grad():
        return backend.to_host(model.eval()(x).value)


def _close(theirs: np.ndarray, ours: np.ndarray, rtol: float = 1e-5) -> None:
    assert theirs.shape == ours.shape
    error = np.linalg.norm(theirs - ours) / np.linalg.norm(ours)
    assert error <= rtol, f"relative error {error:.3g} in the 2-norm"


@pytest.mark.parametrize("gelu", ["none", "tanh"])
def test_a_character_gpt_runs_in_onnx_runtime_with_xpnns_logits_for_any_batch(
    gelu: str, tmp_path: Path
) -> None:
    model = GPT(31, layers=2, heads=2, width=16, context=8, gelu=gelu, seed=0)
    xpnn.io.export_onnx(model, RNG.integers(0, 31, (2, 8)), tmp_path / "gpt.onnx")
    for batch in (1, 5):
        ids = RNG.integers(0, 31, (batch, 8))
        _close(_onnx(tmp_path / "gpt.onnx", ids), _xpnn(model, ids))


class _MaskedAttention(xpnn.Module):
    """Self-attention of (batch, heads, time, d) with a fixed boolean mask, a LayerNorm without
    weights before it, and one time step sliced off after."""

    def __init__(self) -> None:
        self.norm = xpnn.LayerNorm(6, elementwise_affine=False)
        self.mask = RNG.random((5, 5)) > 0.3
        self.mask[:, 0] = True  # every query attends somewhere

    def forward(self, x: Any) -> Any:
        h = self.norm(x)
        out = F.scaled_dot_product_attention(h, h, h, mask=self.mask)
        return out[:, :, 1:, :]


def test_attention_with_a_boolean_mask_layer_norm_without_weights_and_a_slice(tmp_path: Path) -> None:
    model = _MaskedAttention()
    x = RNG.standard_normal((2, 3, 5, 6)).astype(np.float32)
    xpnn.io.export_onnx(model, x, tmp_path / "attention.onnx")
    x3 = RNG.standard_normal((3, 3, 5, 6)).astype(np.float32)
    _close(_onnx(tmp_path / "attention.onnx", x3), _xpnn(model, x3))


def test_gelu_and_a_multi_head_attention_layer_in_a_sequential(tmp_path: Path) -> None:
    model = xpnn.Sequential(
        [xpnn.MultiHeadAttention(8, 2, causal=True), xpnn.GELU(), xpnn.Dense(8, 3)], seed=1
    )
    x = RNG.standard_normal((2, 4, 8)).astype(np.float32)
    xpnn.io.export_onnx(model, x, tmp_path / "mha.onnx")
    _close(_onnx(tmp_path / "mha.onnx", x), _xpnn(model, x))
