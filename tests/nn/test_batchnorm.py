"""BatchNorm: finite differences, torch equality over several steps (running statistics,
eval mode, momentum=None), data-parallel statistics through a communicator, buffers in
checkpoints and to(), a CNN's exact resume, errors."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import xpnn
from tests.helpers.optional import require_torch
from xpnn import backend
from xpnn.errors import BackendMismatchError, CheckpointError, ShapeError
from xpnn.io import archive
from xpnn.testing import assert_close, check_gradients
from xpnn.train.loop import train_step

RNG = np.random.default_rng(5)
OPTIONS = {
    "default": {},
    "no_affine": {"affine": False},
    "no_running_stats": {"track_running_stats": False},
}


@pytest.mark.parametrize("shape", [(6, 3), (3, 3, 2, 4)], ids=["NC", "NCHW"])
@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_batchnorm_gradients_match_finite_differences(shape, option, bk, to_bk):
    layer = xpnn.BatchNorm(3, **OPTIONS[option]).to(bk, dtype="float64")
    if layer.weight is not None:  # away from gamma = 1, beta = 0 so their gradients matter
        layer.weight.value = to_bk(RNG.uniform(0.5, 1.5, 3), "float64")
        layer.bias.value = to_bk(RNG.standard_normal(3), "float64")
    check_gradients(layer, to_bk(RNG.standard_normal(shape) * 2 + 1, "float64"))


def test_batchnorm_gradients_in_eval_mode_match_finite_differences(bk, to_bk):
    layer = xpnn.BatchNorm(3).to(bk, dtype="float64")
    layer.forward(to_bk(RNG.standard_normal((4, 3, 2, 2)), "float64"))
    check_gradients(layer.eval(), to_bk(RNG.standard_normal((4, 3, 2, 2)), "float64"))


@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("shape", [(8, 4), (3, 4, 5, 3)], ids=["NC", "NCHW"])
def test_batchnorm_matches_torch_over_steps_then_in_eval_mode(shape, momentum, bk, to_bk):
    torch = require_torch()
    layer = xpnn.BatchNorm(4, momentum=momentum).to(bk)
    reference = (torch.nn.BatchNorm1d if len(shape) == 2 else torch.nn.BatchNorm2d)(4, momentum=momentum)
    gamma, beta = RNG.uniform(0.5, 2.0, 4).astype(np.float32), RNG.standard_normal(4).astype(np.float32)
    layer.weight.value, layer.bias.value = to_bk(gamma), to_bk(beta)
    with torch.no_grad():
        reference.weight.copy_(torch.tensor(gamma))
        reference.bias.copy_(torch.tensor(beta))
    for step in range(4):
        x = (RNG.standard_normal(shape) * 3 + step).astype(np.float32)
        dy = RNG.standard_normal(shape).astype(np.float32)
        layer.weight.grad = layer.bias.grad = None
        reference.zero_grad()
        xt = torch.tensor(x, requires_grad=True)
        yt = reference(xt)
        yt.backward(torch.tensor(dy))
        y = layer.forward(to_bk(x))
        dx = layer.backward(to_bk(dy))
        pairs = [("y", y, yt), ("dx", dx, xt.grad), ("dgamma", layer.weight.grad, reference.weight.grad),
                 ("dbeta", layer.bias.grad, reference.bias.grad)]  # fmt: skip
        for name, got, want in pairs:
            assert backend.dtype_name(got.dtype) == "float32"
            assert_close(got, want.detach().numpy(), rtol=1e-4, atol=1e-5, what=f"step {step} {name}")
    assert_close(layer.running_mean, reference.running_mean.numpy(), rtol=1e-5, what="running_mean")
    assert_close(layer.running_var, reference.running_var.numpy(), rtol=1e-5, what="running_var")
    assert layer.num_batches_tracked == int(reference.num_batches_tracked)
    x = RNG.standard_normal(shape).astype(np.float32)
    reference.eval()
    assert_close(
        layer.eval().forward(to_bk(x)), reference(torch.tensor(x)).detach().numpy(), rtol=1e-4, atol=1e-5
    )


def test_batchnorm_without_running_stats_uses_batch_statistics_in_eval_mode():
    torch = require_torch()
    layer = xpnn.BatchNorm(2, track_running_stats=False)
    x = RNG.standard_normal((5, 2)).astype(np.float32) * 4 + 3
    expected = torch.nn.functional.batch_norm(torch.tensor(x), None, None, training=True).numpy()
    np.testing.assert_allclose(layer.eval().forward(x), expected, rtol=1e-4, atol=1e-5)
    assert layer.buffers() == {} and layer.counters() == {}


def test_batchnorm_keeps_dtype_and_to_moves_and_casts_its_buffers(bk, to_bk):
    layer = xpnn.BatchNorm(3).to(bk, dtype="float64")
    assert sorted(layer.buffers()) == ["running_mean", "running_var"]
    for value in [*layer.buffers().values(), layer.weight.value]:
        assert backend.backend_name(value) == bk.name and backend.dtype_name(value.dtype) == "float64"
    y = layer.forward(to_bk(RNG.standard_normal((4, 3, 2, 2)), "float64"))
    assert (
        backend.dtype_name(layer.backward(y).dtype)
        == backend.dtype_name(layer.running_var.dtype)
        == "float64"
    )
    layer.reset_parameters(backend.host_rng(0))
    assert backend.backend_name(layer.running_mean) == bk.name
    assert backend.dtype_name(layer.running_mean.dtype) == "float64"


class RecordingCommunicator:
    """A fake communicator: counts calls; ``allreduce_sum`` returns its input (one rank's view
    of ``size`` ranks that all hold the same data)."""

    def __init__(self, size: int) -> None:
        self.size, self.calls = size, 0

    def allreduce_sum(self, array: Any) -> Any:
        self.calls += 1
        return array


def test_batchnorm_allreduces_once_per_forward_and_once_per_backward(bk, to_bk, no_host_sync):
    plain, shared = xpnn.BatchNorm(3).to(bk), xpnn.BatchNorm(3).to(bk)
    communicator = RecordingCommunicator(size=2)
    shared.set_communicator(communicator)
    x, dy = (
        to_bk(RNG.standard_normal((4, 3, 2, 2)).astype(np.float32)),
        to_bk(np.ones((4, 3, 2, 2), np.float32)),
    )
    with no_host_sync():
        y = shared.forward(x)
        assert communicator.calls == 1
        dx = shared.backward(dy)
        assert communicator.calls == 2
    assert_close(y, plain.forward(x), rtol=1e-6, atol=1e-7)
    assert_close(dx, plain.backward(dy), rtol=1e-6, atol=1e-6)
    assert_close(shared.running_var, plain.running_var, rtol=1e-6)
    shared.eval().forward(x)
    assert communicator.calls == 2  # eval mode uses the running statistics: no all-reduce


class ThreadRanks:
    """``size`` in-process ranks (threads) whose ``allreduce_sum`` sums every rank's array."""

    def __init__(self, size: int) -> None:
        self.size, self.barrier = size, threading.Barrier(size)
        self.slots: list[Any] = [None] * size

    def rank(self, index: int) -> Any:
        outer = self

        class Rank:
            size = outer.size

            def allreduce_sum(self, array: Any) -> Any:
                outer.slots[index] = array
                outer.barrier.wait()
                total = sum(outer.slots[1:], outer.slots[0])
                outer.barrier.wait()  # everyone has read the slots before the next call
                return total

        return Rank()


def test_two_ranks_with_half_batches_reproduce_one_process_on_the_whole_batch():
    x = (RNG.standard_normal((8, 3, 3, 3)) * 2 + 1).astype(np.float64)
    dy = RNG.standard_normal(x.shape)
    whole = xpnn.BatchNorm(3).to("numpy", dtype="float64")
    y_whole, dx_whole = whole.forward(x), whole.backward(dy)
    ranks, layers = ThreadRanks(2), [xpnn.BatchNorm(3).to("numpy", dtype="float64") for _ in range(2)]
    results: list[Any] = [None, None]

    def run(r: int) -> None:
        layers[r].set_communicator(ranks.rank(r))
        part = slice(4 * r, 4 * r + 4)
        results[r] = (layers[r].forward(x[part]), layers[r].backward(dy[part]))

    threads = [threading.Thread(target=run, args=(r,)) for r in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    np.testing.assert_allclose(
        np.concatenate([results[0][0], results[1][0]]), y_whole, rtol=1e-12, atol=1e-12
    )
    np.testing.assert_allclose(
        np.concatenate([results[0][1], results[1][1]]), dx_whole, rtol=1e-10, atol=1e-12
    )
    for layer in layers:
        np.testing.assert_allclose(layer.running_var, whole.running_var, rtol=1e-12)
    # parameter gradients stay per rank: data-parallel training averages them afterwards
    np.testing.assert_allclose(layers[0].weight.grad + layers[1].weight.grad, whole.weight.grad, rtol=1e-10)


def test_a_global_batch_of_one_sample_raises_on_every_rank_before_the_statistics_change():
    # rank 0 holds the one sample, rank 1 none: each rank alone would not see it, the global count does
    x = RNG.standard_normal((1, 3)).astype(np.float64)
    ranks, layers = ThreadRanks(2), [xpnn.BatchNorm(3).to("numpy", dtype="float64") for _ in range(2)]
    errors: list[Any] = [None, None]

    def run(r: int) -> None:
        layers[r].set_communicator(ranks.rank(r))
        try:
            layers[r].forward(x[: 1 - r])
        except xpnn.ShapeError as error:
            errors[r] = error

    threads = [threading.Thread(target=run, args=(r,)) for r in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for error, layer in zip(errors, layers, strict=True):
        assert error is not None and "got 1 in the global batch" in str(error)
        np.testing.assert_array_equal(layer.running_var, np.ones(3))
        np.testing.assert_array_equal(layer.running_mean, np.zeros(3))
        assert layer.num_batches_tracked == 0


def small_cnn() -> xpnn.Sequential:
    return xpnn.Sequential(
        [xpnn.Conv2D(1, 4, 3, padding=1), xpnn.BatchNorm(4), xpnn.ReLU(), xpnn.MaxPool2D(2),
         xpnn.Conv2D(4, 4, 3, padding="same"), xpnn.BatchNorm(4), xpnn.ReLU(), xpnn.GlobalAvgPool2D(),
         xpnn.Dropout(0.2), xpnn.Dense(4, 8), xpnn.BatchNorm(8), xpnn.ReLU(), xpnn.Dense(8, 3)],
        seed=2,
    )  # fmt: skip


def images(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, 48)
    x = rng.standard_normal((48, 1, 6, 6)).astype(np.float32) * 0.5
    x[:, 0, :3, :3] += y[:, None, None] == 1
    x[:, 0, 3:, 3:] += y[:, None, None] == 2
    return x, y


def _fit(model: xpnn.Sequential, epochs: int, callbacks: Any = (), resume: Any = None) -> xpnn.History:
    x, y = images()
    optimizer = xpnn.Adam(model.parameters(), lr=0.01)
    return model.fit(x, y, loss=xpnn.SoftmaxCrossEntropy(), optimizer=optimizer, epochs=epochs, batch_size=16,
                     validation_split=0.25, callbacks=callbacks, seed=3, verbose=0,
                     resume=resume)  # fmt: skip


def test_a_cnn_with_batchnorm_trains_without_host_sync_in_a_step(bk, to_bk, no_host_sync):
    model = small_cnn().to(bk.name)
    x, y = images()
    loss, optimizer = xpnn.SoftmaxCrossEntropy(), xpnn.Adam(model.parameters(), lr=0.01)
    xb, yb = to_bk(x[:16]), to_bk(y[:16], "int64")
    with no_host_sync():
        for _ in range(2):
            value, _ = train_step(model, loss, optimizer, xb, yb)
    assert np.isfinite(float(backend.to_host(value)))


def test_cnn_save_load_restores_buffers_exactly_and_predicts_the_same(bk, tmp_path: Path):
    model = small_cnn().to(bk.name)
    _fit(model, epochs=1)
    model.save(tmp_path / "cnn.npz")
    loaded = xpnn.load(tmp_path / "cnn.npz").to(bk.name)
    for name, value in model.buffers().items():
        np.testing.assert_array_equal(backend.to_host(loaded.buffers()[name]), backend.to_host(value))
    assert loaded[1].num_batches_tracked == model[1].num_batches_tracked > 0
    x, _ = images(1)
    np.testing.assert_array_equal(
        backend.to_host(loaded.eval().predict(x)), backend.to_host(model.eval().predict(x))
    )


def test_a_resumed_cnn_fit_equals_the_uninterrupted_one(tmp_path: Path):
    whole = small_cnn()
    full = _fit(whole, epochs=3)
    _fit(small_cnn(), epochs=1, callbacks=[xpnn.ModelCheckpoint(tmp_path / "e{epoch}.npz")])
    resumed = small_cnn()
    resumed.reset_parameters(seed=99)
    history = _fit(resumed, epochs=3, resume=tmp_path / "e1.npz")
    for a, b in zip(resumed.parameters(), whole.parameters(), strict=True):
        np.testing.assert_array_equal(a.value, b.value)
    for name, value in whole.buffers().items():
        np.testing.assert_array_equal(resumed.buffers()[name], value)
    assert history["loss"] == full["loss"]


def test_batchnorm_rejects_a_wrong_channel_count():
    with pytest.raises(
        ShapeError, match=r"BatchNorm\(3\): expected input of shape \(batch, 3\) or .*got \(4, 2, 5, 5\)"
    ):
        xpnn.BatchNorm(3).forward(np.zeros((4, 2, 5, 5), np.float32))


def test_batchnorm_rejects_a_3d_input():
    with pytest.raises(ShapeError, match=r"BatchNorm\(3\).*got \(4, 3, 5\)"):
        xpnn.BatchNorm(3).forward(np.zeros((4, 3, 5), np.float32))


def test_batchnorm_rejects_one_value_per_channel_in_training():
    with pytest.raises(ShapeError, match=r"BatchNorm\(3\): expected more than 1 value per channel.*\(1, 3\)"):
        xpnn.BatchNorm(3).forward(np.zeros((1, 3), np.float32))


def test_batchnorm_rejects_input_of_another_dtype():
    with pytest.raises(xpnn.DTypeError, match=r"BatchNorm\(3\): expected input of dtype float32"):
        xpnn.BatchNorm(3).forward(np.zeros((4, 3), np.float64))


def test_batchnorm_rejects_input_of_another_backend():
    torch = require_torch()
    with pytest.raises(BackendMismatchError, match=r"BatchNorm\(3\): expected input on backend 'numpy'"):
        xpnn.BatchNorm(3).forward(torch.zeros((4, 3)))


@pytest.mark.parametrize("damage", ["missing", "shape"])
def test_loading_a_checkpoint_with_a_bad_batchnorm_buffer_names_layer_buffer_and_shapes(
    damage, tmp_path: Path
):
    model = small_cnn()
    model.save(tmp_path / "cnn.npz")
    opened = archive.read(str(tmp_path / "cnn.npz"))
    header = opened.header
    arrays = {name: opened.array(name) for name in opened.entries if name != archive.HEADER}
    if damage == "missing":
        del arrays["buffer/1.running_var"]
    else:
        arrays["buffer/1.running_var"] = np.ones(3, np.float32)
    archive.write(str(tmp_path / "bad.npz"), header, arrays)
    got = "nothing" if damage == "missing" else r"shape \(3,\)"
    expected = (
        rf"layer 1 \(BatchNorm\(4\)\): buffer 'running_var' expected shape \(4,\), the checkpoint has {got}"
    )
    with pytest.raises(CheckpointError, match=expected):
        xpnn.load(tmp_path / "bad.npz")
