"""examples/fashion_mnist.py --model resnet: the residual CNN as an xpnn.Module builds, its
tape gradients are right (finite differences, and PyTorch's for the same weights), it fits,
and the example's options (summary, checkpoints and --resume, --plot) work with it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import xpnn
from tests.examples.loading import load_example
from xpnn import backend
from xpnn import functional as F

fm = load_example("fashion_mnist")


def tiny_images(n: int, size: int = 28, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 1, size, size), dtype=np.uint8), rng.integers(0, 10, n).astype(np.int64)


def test_resnet_has_the_architecture_of_the_issue() -> None:
    model = fm.build_model("resnet", seed=0)
    shapes = {name: p.shape for name, p in model.named_parameters()}
    assert shapes["stem.0.weight"] == (16, 1, 3, 3)
    assert shapes["blocks.0.conv2.weight"] == (16, 16, 3, 3)
    assert shapes["blocks.1.conv1.weight"] == (32, 16, 3, 3)
    assert shapes["blocks.1.shortcut.0.weight"] == (32, 16, 1, 1)  # the 1x1 projections
    assert shapes["blocks.2.shortcut.0.weight"] == (64, 32, 1, 1)
    assert shapes["head.weight"] == (64, 10)
    assert not any(name.endswith(".bias") and "conv" in name for name in shapes)  # BatchNorm's bias only
    assert "blocks.0.shortcut.0.weight" not in shapes  # the identity where width and size stay
    assert sum(p.size for p in model.parameters()) == 77_754
    assert len(model.buffers()) == 2 * 9  # running mean and variance of the nine BatchNorms


def test_resnet_maps_a_batch_of_images_to_ten_logits_at_any_size() -> None:
    model = fm.build_model("resnet", seed=0)
    for size in (28, 9):
        x = np.random.default_rng(0).random((3, 1, size, size), dtype=np.float32)
        out = model(x)
        assert isinstance(out, xpnn.Tensor) and out.shape == (3, 10) and out.dtype == np.float32


def test_the_seed_fixes_the_initial_weights() -> None:
    first, again, other = fm.ResNet(seed=1), fm.ResNet(seed=1), fm.ResNet(seed=2)
    for a, b in zip(first.parameters(), again.parameters(), strict=True):
        np.testing.assert_array_equal(a.value, b.value)
    assert not np.array_equal(first.head.weight.value, other.head.weight.value)


def _loss(model: Any, x: np.ndarray, y: np.ndarray) -> xpnn.Tensor:
    return F.cross_entropy(model(x), y)


def test_resnet_tape_gradients_match_central_differences_in_float64() -> None:
    model = fm.ResNet(widths=(4, 6, 8), seed=0).to("numpy", dtype="float64")
    rng = np.random.default_rng(1)
    x, y = rng.random((4, 1, 8, 8)), rng.integers(0, 10, 4)
    _loss(model, x, y).backward()
    eps = 1e-6
    for name, p in model.named_parameters():
        analytic = p.grad.reshape(-1)
        for i in rng.choice(p.size, size=min(3, p.size), replace=False):
            flat = p.value.reshape(-1)
            saved = flat[i]
            flat[i] = saved + eps
            plus = _loss(model, x, y).item()
            flat[i] = saved - eps
            minus = _loss(model, x, y).item()
            flat[i] = saved
            assert analytic[i] == pytest.approx((plus - minus) / (2 * eps), rel=1e-5, abs=1e-8), (name, i)


def test_resnet_forward_and_gradients_equal_pytorchs_for_the_same_weights() -> None:
    torch = pytest.importorskip("torch")
    nn = torch.nn
    model = fm.ResNet(widths=(4, 6, 8), seed=0).to("numpy", dtype="float64")

    def block(c_in: int, c_out: int, stride: int) -> Any:
        main = nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out),
                             nn.ReLU(), nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False),
                             nn.BatchNorm2d(c_out))  # fmt: skip
        short = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
        return main, (short if stride != 1 or c_in != c_out else nn.Identity())

    blocks = [block(4, 4, 1), block(4, 6, 2), block(6, 8, 2)]
    stem = nn.Sequential(nn.Conv2d(1, 4, 3, 1, 1, bias=False), nn.BatchNorm2d(4), nn.ReLU())
    head = nn.Linear(8, 10)
    reference = nn.ModuleList([stem, *(m for pair in blocks for m in pair), head]).double()
    convs = [m for m in reference.modules() if isinstance(m, nn.Conv2d)]
    ours = [m for _, m in model.named_modules() if isinstance(m, xpnn.Conv2D)]
    assert len(convs) == len(ours)  # the order of the torch modules above is the Module's
    with torch.no_grad():
        for theirs, mine in zip(convs, ours, strict=True):
            theirs.weight.copy_(torch.from_numpy(mine.weight.value))
        head.weight.copy_(torch.from_numpy(model.head.weight.value.T))
        head.bias.copy_(torch.from_numpy(model.head.bias.value))
    rng = np.random.default_rng(2)
    x, y = rng.random((5, 1, 9, 9)), rng.integers(0, 10, 5)

    h = stem(torch.from_numpy(x))
    for main, short in blocks:
        h = torch.relu(main(h) + short(h))
    logits = head(h.mean(dim=(2, 3)))
    torch.nn.functional.cross_entropy(logits, torch.from_numpy(y)).backward()
    out = model(x)
    F.cross_entropy(out, y).backward()

    np.testing.assert_allclose(out.value, logits.detach().numpy(), rtol=1e-10, atol=1e-12)
    for theirs, mine in zip(convs, ours, strict=True):
        np.testing.assert_allclose(mine.weight.grad, theirs.weight.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(model.head.weight.grad, head.weight.grad.numpy().T, rtol=1e-10, atol=1e-12)


def test_resnet_fits_one_step_on_numpy() -> None:
    model = fm.build_model("resnet", seed=0)
    before = {name: np.array(value, copy=True) for name, value in model.state_dict().items()}
    x, y = tiny_images(16)
    optimizer = xpnn.AdamW(model.parameters(), 1e-3)
    history = model.fit(x, y, loss=xpnn.SoftmaxCrossEntropy(), optimizer=optimizer, epochs=1, batch_size=16,
                        seed=0, verbose=0)  # fmt: skip
    assert np.isfinite(history["loss"][0])
    after = model.state_dict()
    assert all(not np.array_equal(before[name], after[name]) for name in before)  # weights and statistics
    assert after["head.weight"].dtype == np.float32


def test_summary_lists_every_layer_of_the_module_with_its_output_shape_and_the_total() -> None:
    text = fm.build_model("resnet", seed=0).summary(input_shape=(1, 28, 28))
    assert "blocks.2.shortcut.0" in text and "Conv2D(32 -> 64, kernel (1, 1))" in text
    assert "(batch, 64, 7, 7)" in text and "output: (batch, 10)" in text
    assert "total parameters: 77,754 (float32, backend numpy)" in text


class _StopAfterFirstEpoch(xpnn.ModelCheckpoint):
    """The example's checkpoint callback, then a stop: an interrupted run."""

    def on_epoch_end(self, run: Any, epoch: int, logs: dict[str, float]) -> None:
        super().on_epoch_end(run, epoch, logs)
        run.stop = True


def test_the_example_trains_resnet_with_checkpoints_an_exact_resume_and_the_plot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = (tiny_images(40, seed=0), tiny_images(30, seed=1))  # the plot shows 24 test images
    monkeypatch.setattr(xpnn, "load_fashion_mnist", lambda: data)
    common = ["--model", "resnet", "--backend", "numpy", "--epochs", "2", "--batch-size", "16"]
    fm.main([*common, "--checkpoint", str(tmp_path / "whole"), "--plot", str(tmp_path / "fm.png")])
    out = capsys.readouterr().out
    assert "blocks.1.shortcut.0" in out and "test accuracy: " in out.splitlines()[-1]
    assert (tmp_path / "fm.png").stat().st_size > 10_000

    with monkeypatch.context() as patch:
        patch.setattr(xpnn, "ModelCheckpoint", _StopAfterFirstEpoch)
        fm.main([*common, "--checkpoint", str(tmp_path / "parts"), "--plot", ""])
    fm.main([*common, "--checkpoint", str(tmp_path / "parts"), "--resume", "--plot", ""])
    assert "resuming from" in capsys.readouterr().out

    whole = xpnn.load(tmp_path / "whole" / "model.npz", into=fm.ResNet(seed=5))
    resumed = xpnn.load(tmp_path / "parts" / "model.npz", into=fm.ResNet(seed=6))
    for name, value in whole.state_dict().items():
        np.testing.assert_array_equal(resumed.state_dict()[name], value, err_msg=name)


def test_resnet_runs_on_every_backend(bk: backend.Backend) -> None:
    model = fm.ResNet(widths=(4, 6, 8), seed=0).to(bk.name)
    x = backend.from_host(np.random.default_rng(0).random((2, 1, 8, 8), dtype=np.float32), bk)
    loss = F.cross_entropy(model(x), backend.from_host(np.array([1, 7]), bk))
    loss.backward()
    assert all(p.grad is not None and p.grad.dtype == bk.xp.float32 for p in model.parameters())


def test_resnet_trains_with_label_smoothing_by_default_and_the_test_loss_is_plain() -> None:
    resnet, mlp = fm.parse_args(["--model", "resnet", "--plot", ""]), fm.parse_args(["--plot", ""])
    assert fm.training_loss(resnet).label_smoothing == 0.1  # chosen on the validation split
    assert fm.training_loss(mlp).label_smoothing == 0.0
    none = fm.parse_args(["--model", "resnet", "--label-smoothing", "0", "--plot", ""])
    assert fm.training_loss(none).label_smoothing == 0.0


def test_resnet_peaks_at_3e_3_with_adamw_and_a_given_lr_wins() -> None:
    def peak(argv: list[str], name: str = "adamw") -> float:
        args = fm.parse_args([*argv, "--plot", ""])
        model = fm.build_model(args.model, 0)
        schedule = fm.build_optimizer(args, name, model, 100, 10).param_groups[0]["lr"]
        return float(schedule.lr)  # OneCycle's peak

    assert peak(["--model", "resnet"]) == 3e-3
    assert peak(["--model", "resnet", "--lr", "5e-4"]) == 5e-4
    assert peak(["--model", "resnet"], "sgd") == 0.05
    assert peak(["--model", "mlp", "--schedule", "one-cycle"]) == 1e-3
