"""Issue 24: Ctrl-C during the CNN example's fit, a real SIGINT sent to a subprocess: one
line says so, no traceback, the plot is written, the checkpoint resumes to exactly the model
of the uninterrupted run; the exit status is 130 (as a shell reports SIGINT)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np

import xpnn
from tests.data.test_data import write_fake_fashion
from tests.examples.loading import EXAMPLES

ROOT = EXAMPLES.parent
COMMON = ["--model", "cnn", "--backend", "numpy", "--epochs", "1", "--batch-size", "16"]


def _environment(data: Path) -> dict[str, str]:
    env = {**os.environ, "XPNN_DATA": str(data), "PYTHONPATH": str(ROOT), "XPNN_PROGRESS_SECONDS": "0"}
    env.pop("XPNN_TEST_BACKENDS", None)
    return env


def _sigint_as_in_a_terminal() -> None:
    """The child's SIGINT disposition as a foreground job's: a suite started in the background
    of a non-interactive shell ignores SIGINT, and a child inherits that (then Python installs no
    handler and Ctrl-C does nothing, as it should for a background job)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(EXAMPLES / "fashion_mnist.py"), *COMMON, *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)


def test_ctrl_c_in_the_cnn_examples_fit_writes_the_plot_and_a_checkpoint_that_resumes_exactly(
    tmp_path: Path,
) -> None:
    write_fake_fashion(tmp_path / "data", n_train=300, n_test=30)
    env = _environment(tmp_path / "data")
    command = [sys.executable, str(EXAMPLES / "fashion_mnist.py"), *COMMON,
               "--checkpoint", str(tmp_path / "parts"), "--plot", str(tmp_path / "cut.png")]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=_sigint_as_in_a_terminal)  # fmt: skip
    assert process.stdout is not None
    seen = []
    for line in process.stdout:  # the first progress line inside epoch 1: fit is under way
        seen.append(line)
        if line.startswith("epoch 1/1: 16/270 samples"):
            process.send_signal(signal.SIGINT)
            break
    out, err = process.communicate(timeout=600)
    assert process.returncode == 130, "".join(seen) + out + err
    assert err.splitlines() == [
        line for line in err.splitlines() if line.startswith("fit: stopped by Ctrl-C")
    ]
    assert len(err.splitlines()) == 1 and "of epoch 1; returning the history of 0 complete epoch(s)" in err
    assert "Traceback" not in out + err and "plot written to" in out
    assert (tmp_path / "cut.png").stat().st_size > 10_000
    training = xpnn.io.serialization.open_checked(tmp_path / "parts" / "last.npz").header["training"]
    assert training["epoch"] == 0 and 0 < training["step"] < 17

    resumed = _run(["--checkpoint", str(tmp_path / "parts"), "--resume", "--plot", ""], env)
    assert resumed.returncode == 0 and "resuming from" in resumed.stdout, resumed.stderr
    whole = _run(["--checkpoint", str(tmp_path / "whole"), "--plot", ""], env)
    assert whole.returncode == 0, whole.stderr
    a = np.load(tmp_path / "whole" / "model.npz")
    b = np.load(tmp_path / "parts" / "model.npz")
    for name in a.files:
        if name != "__header__":
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
