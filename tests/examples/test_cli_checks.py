"""Issue 24: the example CLI checks its arguments (numbers, paths to write, backend) before any
work: one line naming the error, no traceback, a non-zero exit status."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import xpnn
from tests.examples.loading import EXAMPLES, load_example

fm = load_example("fashion_mnist")

CASES = {
    "--plot in a missing directory": (
        ["--plot", "nodir/x.png"],
        r"ArgumentError: --plot 'nodir/x.png': the directory",
    ),
    "--plot of an unknown format": (
        ["--plot", "x.bogus"],
        r"--plot 'x.bogus' ends in '.bogus', expected one of",
    ),
    "--lr -1": (["--lr", "-1"], r"ArgumentError: --lr must be a finite number > 0, got -1.0"),
    "--lr nan": (["--lr", "nan"], r"--lr must be a finite number > 0, got nan"),
    "--momentum 1.5": (["--momentum", "1.5"], r"--momentum must be in \[0, 1\), got 1.5"),
    "--decay -1": (["--decay", "-1"], r"--decay must be a finite number >= 0"),
    "--seed -1": (["--seed", "-1"], r"--seed must be >= 0, got -1"),
    "--label-smoothing 1": (["--label-smoothing", "1"], r"--label-smoothing must be in \[0, 1\), got 1.0"),
    "--export x.txt": (
        ["--export", "x.txt"],
        r"--export 'x.txt' ends in '.txt', expected one of \('.onnx',\)",
    ),
    "--batch-size 0": (["--batch-size", "0"], r"--batch-size must be >= 1, got 0"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_argument_is_one_line_and_exit_status_2(case: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv, match = CASES[case]
    with pytest.raises(SystemExit) as exited:
        fm.parse_args(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert re.search(match, err), err


def test_a_checkpoint_directory_under_a_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(SystemExit):
        fm.parse_args(["--checkpoint", str(tmp_path / "f" / "run")])
    assert "is a file, not a directory" in capsys.readouterr().err


def test_a_backend_without_its_device_is_one_line_before_the_summary(
    capsys: pytest.CaptureFixture[str],
) -> None:
    try:
        xpnn.backend.resolve("cupy")
        pytest.skip("cupy sees a CUDA device here: nothing to refuse")
    except xpnn.BackendUnavailableError:
        pass
    with pytest.raises(SystemExit):
        fm.parse_args(["--backend", "cupy"])
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "BackendUnavailableError: backend 'cupy'" in err


def test_the_script_refuses_before_any_work_without_a_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(EXAMPLES.parent), "XPNN_DATA": str(tmp_path / "no-data")}
    result = subprocess.run([sys.executable, str(EXAMPLES / "fashion_mnist.py"), "--lr", "-1"], env=env,
                            capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert result.returncode == 2 and result.stdout == ""  # nothing done: not even the backend line
    assert result.stderr.splitlines() == [
        "fashion_mnist.py: error: ArgumentError: --lr must be a finite number > 0, got -1.0 (--help: usage)"
    ]


def test_a_named_error_after_the_checks_is_one_line_and_exit_status_1(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(EXAMPLES.parent), "XPNN_DATA": str(tmp_path / "no-data")}
    command = [sys.executable, str(EXAMPLES / "fashion_mnist.py"), "--backend", "numpy", "--plot", ""]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1 and "DataNotFoundError" in result.stderr


CHAR_LM_CASES = {
    "--lr 0": (["--lr", "0"], r"ArgumentError: --lr must be a finite number > 0, got 0.0"),
    "--temperature -1": (["--temperature", "-1"], r"--temperature must be a finite number > 0"),
    "--plot x.bogus": (["--plot", "x.bogus"], r"--plot 'x.bogus' ends in '.bogus'"),
    "--plot in a missing directory": (["--plot", "nodir/l.png"], r"--plot 'nodir/l.png': the directory"),
    "--seed -2": (["--seed", "-2"], r"--seed must be >= 0, got -2"),
    "--heads 3 of width 128": (["--heads", "3"], r"--heads must divide --width"),
}


@pytest.mark.parametrize("case", list(CHAR_LM_CASES))
def test_the_char_lm_cli_refuses_a_bad_argument_in_one_line(
    case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))  # char_lm.py imports gpt.py from beside itself, as a script does
    char_lm = load_example("char_lm")
    argv, match = CHAR_LM_CASES[case]
    with pytest.raises(SystemExit) as exited:
        char_lm.parse_args(argv)
    err = capsys.readouterr().err
    assert exited.value.code == 2 and len(err.splitlines()) == 1 and re.search(match, err), err
