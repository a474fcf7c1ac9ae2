"""Issue 24: progress inside an epoch is visible when output is not a terminal: a line every
``XPNN_PROGRESS_SECONDS`` (default 5 s) with the samples done, the running loss and accuracy,
then the epoch's summary line as before."""

from __future__ import annotations

import re

import numpy as np
import pytest

import xpnn
from tests.helpers import hostile_files as hf


def _fit(epochs: int = 2) -> None:
    model = hf.small_model()
    x, y = np.random.default_rng(0).standard_normal((60, 4)).astype(np.float32), np.arange(60) % 3
    model.fit(x, y, loss=xpnn.SoftmaxCrossEntropy(), optimizer=xpnn.SGD(model.parameters(), lr=0.1),
              epochs=epochs, batch_size=20, verbose=1)  # fmt: skip


def test_output_to_a_pipe_gets_a_line_inside_each_epoch_when_one_is_due(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XPNN_PROGRESS_SECONDS", "0")  # due after every step
    _fit()
    lines = capsys.readouterr().out.strip().splitlines()
    pattern = r"epoch \d/2: \d\d/60 samples, loss \d\.\d{4}, acc \d\.\d{4}, samples_s [\d,]+"
    inside = [line for line in lines if re.fullmatch(pattern, line)]
    assert [line.split(" samples")[0] for line in inside] == [
        "epoch 1/2: 20/60", "epoch 1/2: 40/60", "epoch 1/2: 60/60",
        "epoch 2/2: 20/60", "epoch 2/2: 40/60", "epoch 2/2: 60/60",
    ]  # fmt: skip
    assert sum(line.startswith("epoch 2/2: loss ") for line in lines) == 1  # the summary still follows


def test_an_epoch_shorter_than_the_interval_prints_only_its_summary(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XPNN_PROGRESS_SECONDS", "3600")
    _fit(epochs=1)
    assert capsys.readouterr().out.strip().splitlines()[0].startswith("epoch 1/1: loss ")
