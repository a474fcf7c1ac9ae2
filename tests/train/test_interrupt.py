"""Issue 24, Ctrl-C in fit: a SIGINT stops training after the current step with the model
and optimizer as after it, fit returns the History so far and prints one line; a second one
raises KeyboardInterrupt at once; a ModelCheckpoint saved where it stopped resumes exactly.
(The example under a real Ctrl-C from outside: tests/examples/test_ctrl_c.py.)"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import xpnn
from tests.helpers import hostile_files as hf
from xpnn import functional as F


@pytest.fixture(autouse=True)
def _sigint_as_in_a_terminal() -> Any:
    """Python's own SIGINT handler while each test runs: a suite started in the background of a
    non-interactive shell inherits SIGINT ignored, and fit then (rightly) leaves it alone."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _data() -> tuple[np.ndarray, np.ndarray]:
    return np.random.default_rng(0).standard_normal((60, 4)).astype(np.float32), np.arange(60) % 3


class _Interrupting:
    """A loss that sends this process SIGINT at its given calls (counted from 1)."""

    def __init__(self, *at: int) -> None:
        self.at, self.calls = at, 0

    def __call__(self, pred: xpnn.Tensor, y: Any) -> xpnn.Tensor:
        self.calls += 1
        if self.calls in self.at:
            os.kill(os.getpid(), signal.SIGINT)
        return F.cross_entropy(pred, y)


def _fit(model: xpnn.Sequential, optimizer: Any, loss: Any, **kwargs: Any) -> xpnn.History:
    x, y = _data()
    return model.fit(
        x, y, loss=loss, optimizer=optimizer, epochs=3, batch_size=10, verbose=0, seed=4, **kwargs
    )


def test_ctrl_c_stops_after_the_current_step_and_returns_the_history_so_far(
    capsys: pytest.CaptureFixture[str],
) -> None:
    model = hf.small_model()
    optimizer = xpnn.Adam(model.parameters(), lr=1e-2)
    loss = _Interrupting(10)  # fit's one-sample rehearsal, then epoch 2's third step (6 an epoch)
    history = _fit(model, optimizer, loss)
    assert history.interrupted and history.epochs == [0]
    assert loss.calls == 10 and optimizer.t == 9  # the step under way was finished, no other taken
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        "fit: stopped by Ctrl-C after step 3/6 of epoch 2; returning the history of 1 complete epoch(s) "
        "(Ctrl-C again exits at once)"
    ]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler given back


def test_a_second_ctrl_c_raises_keyboard_interrupt_at_once() -> None:
    model = hf.small_model()

    class Twice(_Interrupting):
        def __call__(self, pred: xpnn.Tensor, y: Any) -> xpnn.Tensor:
            value = super().__call__(pred, y)
            if self.calls == 2:
                os.kill(os.getpid(), signal.SIGINT)  # the second, inside the same step
            return value

    with pytest.raises(KeyboardInterrupt):
        _fit(model, xpnn.SGD(model.parameters(), lr=0.1), Twice(2))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_checkpoint_saved_at_ctrl_c_resumes_to_the_uninterrupted_run_bit_for_bit(tmp_path: Path) -> None:
    whole = hf.small_model()
    _fit(whole, xpnn.Adam(whole.parameters(), lr=1e-2), _Interrupting())

    model = hf.small_model()
    path = tmp_path / "last.npz"
    _fit(
        model,
        xpnn.Adam(model.parameters(), lr=1e-2),
        _Interrupting(10),
        callbacks=[xpnn.ModelCheckpoint(path)],
    )
    resumed = hf.small_model()
    history = _fit(resumed, xpnn.Adam(resumed.parameters(), lr=1e-2), _Interrupting(), resume=path)
    assert history.epochs == [0, 1, 2] and not history.interrupted
    for a, b in zip(whole.parameters(), resumed.parameters(), strict=True):
        np.testing.assert_array_equal(xpnn.backend.to_host(a.value), xpnn.backend.to_host(b.value))
    for a, b in zip(whole.layers, resumed.layers, strict=True):
        assert a.counters() == b.counters()
