"""examples/gpt.py and examples/char_lm.py: the GPT trains exactly as the same model in PyTorch
(float64, same weights and batches, 20 AdamW steps, rtol 1e-8), and the script runs end to
end with tiny sizes, resumes exactly, and samples from its checkpoint."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

import xpnn
from tests.examples.loading import EXAMPLES
from tests.helpers.optional import require_torch
from xpnn import backend
from xpnn.io import serialization
from xpnn.optim import decay_groups

sys.path.insert(0, str(EXAMPLES))  # char_lm.py imports gpt.py from beside itself, as a script does
import char_lm
import gpt

BENCHMARKS = EXAMPLES.parent / "benchmarks"
TEXT = Path(os.__file__)  # a small corpus on every machine (os.py: ~40,000 characters)
TINY = ["--layers", "2", "--heads", "2", "--width", "8", "--context", "8", "--batch-size", "3",
        "--eval-batches", "2", "--sample-length", "20", "--text", str(TEXT)]  # fmt: skip


def _torch_twin():
    require_torch()
    spec = importlib.util.spec_from_file_location("bench_torch_gpt", BENCHMARKS / "_torch_gpt.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("gelu", ["tanh", "none"])
def test_gpt_trains_as_the_same_model_in_pytorch_for_20_adamw_steps(gelu, bk):
    torch = require_torch()
    twin = _torch_twin()
    model = gpt.GPT(13, layers=2, heads=2, width=8, context=6, gelu=gelu, seed=5).to(bk, dtype="float64")
    reference = twin.from_xpnn(model, torch.float64)
    ours = xpnn.AdamW(decay_groups(model, 0.1), lr=1e-2, betas=(0.9, 0.99))
    theirs = torch.optim.AdamW(twin.decay_groups(reference, 0.1), lr=1e-2, betas=(0.9, 0.99))
    tokens = (np.arange(400) * 5 + np.random.default_rng(0).integers(0, 2, 400)) % 13  # learnable
    loader = xpnn.data.TextLoader(tokens, batch_size=4, context=6, seed=1, target=bk)
    losses = []
    for step in range(20):
        x, y = loader.batch(step)
        loss = model.loss(x, y)
        ours.zero_grad()
        loss.backward()
        ours.step()
        tx, ty = (torch.from_numpy(backend.to_host(a)) for a in (x, y))
        reference_loss = reference.loss(tx, ty)
        theirs.zero_grad()
        reference_loss.backward()
        theirs.step()
        losses.append((float(loss.value), reference_loss.item()))
    mine, expected = np.array(losses).T
    np.testing.assert_allclose(mine, expected, rtol=1e-8)
    assert expected[-5:].mean() < expected[0] - 0.1  # it learned: the comparison means something


def _run(capsys, *flags: str) -> list[str]:
    assert char_lm.main([*TINY, *flags]) == 0
    return capsys.readouterr().out.strip().splitlines()


def test_the_example_trains_end_to_end_with_tiny_sizes(capsys, tmp_path: Path):
    lines = _run(capsys, "--iters", "6", "--eval-every", "3", "--plot", str(tmp_path / "lm.png"))
    reports = [line for line in lines if "| val " in line]
    assert len(reports) == 2 and "nats" in reports[0] and "bits" in reports[0]
    assert any(line.startswith("seconds per iteration: ") for line in lines)
    assert re.fullmatch(r"validation loss: \d+\.\d{4}", lines[-1])
    assert (tmp_path / "lm.png").stat().st_size > 0


def test_a_resumed_run_ends_exactly_as_the_uninterrupted_one(capsys, tmp_path: Path, monkeypatch):
    saved = serialization.save

    def save_and_keep(path, model, **keywords):  # keep the checkpoint of each report
        saved(path, model, **keywords)
        shutil.copy(path, Path(path).with_name(f"at-{keywords['training']['step']}.npz"))

    monkeypatch.setattr(char_lm.serialization, "save", save_and_keep)
    flags = ["--iters", "6", "--eval-every", "3"]
    whole = _run(capsys, *flags, "--checkpoint", str(tmp_path / "whole"))
    (tmp_path / "cut").mkdir()
    shutil.copy(tmp_path / "whole" / "at-3.npz", tmp_path / "cut" / "last.npz")  # as if stopped at 3
    resumed = _run(capsys, *flags, "--checkpoint", str(tmp_path / "cut"), "--resume")
    assert resumed[1].startswith("resumed from") and resumed[-1] == whole[-1]
    final = [np.load(tmp_path / run / "at-6.npz") for run in ("whole", "cut")]
    params = [name for name in final[0].files if name.startswith("param/")]
    assert params and all(np.array_equal(final[0][name], final[1][name]) for name in params)


def test_generate_samples_from_the_checkpoint_at_a_temperature(capsys, tmp_path: Path):
    _run(capsys, "--iters", "2", "--eval-every", "2", "--checkpoint", str(tmp_path))
    lines = _run(capsys, "--checkpoint", str(tmp_path), "--generate", "30", "--temperature", "0.5")
    text = "\n".join(lines)
    assert text.startswith("def ") and len(text) == 34
    again = _run(capsys, "--checkpoint", str(tmp_path), "--generate", "30", "--temperature", "0.5")
    assert again == lines  # the same seed samples the same text


def test_a_checkpoint_of_another_run_is_refused(capsys, tmp_path: Path):
    _run(capsys, "--iters", "2", "--eval-every", "2", "--checkpoint", str(tmp_path))
    with pytest.raises(xpnn.CheckpointError, match="another run"):
        _run(capsys, "--iters", "4", "--checkpoint", str(tmp_path), "--resume")


def test_two_ranks_train_as_one_process_on_the_global_batch():
    from tests.helpers import mpi

    flags = [*TINY, "--batch-size", "4", "--iters", "4", "--eval-every", "2"]
    runs = [
        mpi.run(ranks, EXAMPLES / "char_lm.py", [*flags, "--distributed"], timeout=120) for ranks in (0, 2)
    ]
    numbers = []
    for done in runs:
        assert done.returncode == 0, done.stdout + done.stderr
        reports = [
            line
            for line in done.stdout.splitlines()
            if "| val " in line or line.startswith("validation loss:")
        ]
        numbers.append(
            [float(v) for line in reports for v in re.findall(r"(?:train|val|loss:) (\d+\.\d+)", line)]
        )
    assert len(numbers[0]) == 5
    np.testing.assert_allclose(numbers[1], numbers[0], rtol=1e-4)
