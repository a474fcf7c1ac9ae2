"""The numba loops on several threads (:mod:`xpnn.kernels.threads`): the thread count follows
what the user set (BLAS's limit, numba's own, the cores allowed), and splitting a loop into
parts leaves every bit as the serial loop computes it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import xpnn
from xpnn.kernels import compile, threads

pytestmark = pytest.mark.fast_paths  # tests of the fast paths themselves: on under XPNN_KERNELS=off
numba = pytest.importorskip("numba", reason="numba is optional (the fast extra); its loops are not tested")
RNG = np.random.default_rng(5)


@pytest.fixture
def parts(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``parts(n)``: every loop split into ``n`` parts from now on, whatever its size."""
    monkeypatch.setattr(compile, "enabled", True)

    def force(n: int) -> None:
        monkeypatch.setattr(threads, "parts_for", lambda elements: n)

    return force


def test_the_count_follows_blas_limits_and_numba_and_is_at_least_one() -> None:
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        assert threads.count() == 1
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        assert threads.count() == 1
    finally:
        numba.set_num_threads(before)
    assert 1 <= threads.count() <= numba.get_num_threads()


def test_small_work_stays_on_one_thread() -> None:
    assert threads.parts_for(threads.MIN_ELEMENTS - 1) == 1


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(f"u{a.dtype.itemsize}")


def _run(model: xpnn.Sequential, x: np.ndarray) -> list[np.ndarray]:
    """Forward and backward of each layer by hand: outputs, input gradients, parameter grads."""
    results, h = [], x
    for layer in model.layers:
        h = layer.forward(h)
        results.append(h)
    d = np.cos(h)
    for layer in reversed(model.layers):
        layer.input_grad = True
        d = layer.backward(d)
        results.append(d)
    results += [p.grad for p in model.parameters()]
    model.zero_grad()
    return results


@pytest.mark.parametrize("n", [2, 3, 7])
def test_convolution_and_pooling_give_the_serial_bits_on_any_number_of_parts(parts: Any, n: int) -> None:
    layers = [xpnn.Conv2D(3, 5, 3, padding=1), xpnn.MaxPool2D(2), xpnn.Conv2D(5, 4, 3, stride=2),
              xpnn.MaxPool2D(3, stride=1, padding=1)]  # fmt: skip
    model = xpnn.Sequential(layers, seed=0)
    x = RNG.standard_normal((6, 3, 13, 12)).astype(np.float32)
    parts(1)
    serial = _run(model, x)
    parts(n)
    for got, want in zip(_run(model, x), serial, strict=True):
        assert np.array_equal(_bits(got), _bits(want))


def _kernel_results() -> list[np.ndarray]:
    """Every other threaded loop on fresh copies of the same inputs: ReLU (alone, after a bias,
    and its gradient with the bias's), softmax cross-entropy and its gradient, the data
    loader's gather, both GELU forms and their gradients, layer norm, the masked softmax and its
    gradient, and Adam, SGD (with and without momentum) and RMSProp steps."""
    from xpnn.functional.gelu import CODY
    from xpnn.kernels import cross_entropy, data, dense, gelu, optimizers, transformer

    rng = np.random.default_rng(11)
    x = rng.standard_normal((37, 29)).astype(np.float32)
    g = rng.standard_normal((37, 29)).astype(np.float32)
    labels = rng.integers(0, 29, 37)
    signed = x.copy()
    signed[0, :3] = np.nan, -0.0, 0.0
    out = [dense.relu(signed), dense.relu_grad(x, g), dense.relu_grad(x, g.copy(), in_place=True)]
    out.append(dense.bias_relu(x.copy(), g[0].copy()))
    out += list(dense.relu_grad_bias(np.maximum(x, 0), g.copy(), None, True))
    loss, probs = cross_entropy.softmax_cross_entropy(x.copy(), labels)
    out += [np.asarray(loss), probs, cross_entropy.softmax_cross_entropy_grad(probs, labels)]
    images = rng.integers(0, 256, (50, 7, 5), dtype=np.uint8)
    out.append(data.gather_scaled(images, rng.permutation(50)[:41], np.float32, 1 / 255))
    y, t = gelu.gelu_tanh(x)
    out += [y, t, gelu.gelu_tanh_backward(x, t, g)]
    y, cdf, e = gelu.gelu_erf(x, CODY)
    out += [y, cdf, e, gelu.gelu_erf_backward(x, cdf, e, g, 0.3989422804014327)]
    out += list(transformer.layer_norm(x, g[1].copy(), g[2].copy(), 1e-5))
    mask = np.tril(np.ones((29, 29), dtype=bool))[:, :29]
    p = transformer.masked_softmax(rng.standard_normal((3, 29, 29)).astype(np.float32), mask, 0.5)
    out += [p.copy(), transformer.softmax_backward(p, rng.standard_normal(p.shape).astype(np.float32), 0.5)]
    w, m, v = x.copy(), g.copy() * 0.1, np.abs(g) * 0.01
    adam = dict(betas=(0.9, 0.999), step_size=1e-3, bias2_root=0.9, eps=1e-8, shrink=0.99)
    assert optimizers.adam(w, g, m, v, **adam)
    w2, buf, w3, acc = x.copy(), g.copy(), x.copy(), np.abs(x)
    assert optimizers.sgd(w2, g, 0.1, buf, momentum=0.9) and optimizers.sgd(w, g, 0.1)
    assert optimizers.rms(w3, g, acc, lr=1e-2, eps=1e-7, rho=0.9)
    return [*out, w, m, v, w2, buf, w3, acc]


@pytest.mark.parametrize("n", [2, 5])
def test_every_other_threaded_loop_gives_the_serial_bits(parts: Any, n: int) -> None:
    parts(1)
    serial = _kernel_results()
    parts(n)
    threaded = _kernel_results()
    assert len(threaded) == len(serial) == 29
    assert all(isinstance(a, np.ndarray) for a in serial + threaded)  # every fast path ran
    for got, want in zip(threaded, serial, strict=True):
        assert got.shape == want.shape and np.array_equal(_bits(got), _bits(want))


def test_pieces_run_on_several_threads_and_a_piece_s_error_is_raised_after_all_finish() -> None:
    import threading
    import time

    seen: list[tuple[int, int, int, int]] = []
    idents: set[int] = set()

    def loop(tag: int, begin: int, end: int, pieces: int) -> int:
        idents.add(threading.get_ident())
        deadline = time.monotonic() + 5.0
        while tag == 8 and len(idents) < 2 and time.monotonic() < deadline:
            time.sleep(0.001)  # until the pool's thread has taken a piece too
        seen.append((tag, begin, end, pieces))
        return begin

    assert threads.run(loop, 1, (7,)) == 0 and seen == [(7, 0, 1, 1)]
    seen.clear()
    idents.clear()
    assert threads.run(loop, 2, (8,)) == 0  # piece 0's result
    pieces = 2 * threads.PIECES_PER_THREAD
    assert sorted(seen) == [(8, i, i + 1, pieces) for i in range(pieces)]  # each piece once
    assert threading.get_ident() in idents and len(idents) == 2

    def failing(begin: int, end: int, pieces: int) -> None:
        if begin == 2:
            raise ValueError("piece 2")
        time.sleep(0.02)
        seen.append((0, begin, end, pieces))

    seen.clear()
    with pytest.raises(ValueError, match="piece 2"):
        threads.run(failing, 2, ())
    assert sorted(seen) == [(0, i, i + 1, pieces) for i in range(pieces) if i != 2]  # the others ran first


@pytest.mark.parametrize("n", [1, 3])
def test_an_index_or_label_out_of_range_in_any_piece_declines_the_kernel(parts: Any, n: int) -> None:
    from xpnn.kernels import cross_entropy, data

    parts(n)
    images, index = RNG.integers(0, 256, (50, 7, 5), dtype=np.uint8), RNG.permutation(50)[:41]
    index[-1] = 50  # in the last piece: each piece checks every index before reading any
    assert data.gather_scaled(images, index, np.float32, 1 / 255) is None
    labels = RNG.integers(0, 29, 37)
    labels[-1] = 29
    logits = RNG.standard_normal((37, 29)).astype(np.float32)
    assert cross_entropy.softmax_cross_entropy(logits, labels) is None
