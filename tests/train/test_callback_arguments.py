"""Issue 24 item 10 and its raw errors: callbacks name every bad argument when built, and fit
finds a callback that cannot run (a CSV of someone else's, a checkpoint path that is a
directory, a 3 among the callbacks) before training, with the files unchanged."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import xpnn
from xpnn.errors import ArgumentError, ArgumentTypeError

EARLY_STOPPING = {
    "patience=-1": ({"patience": -1}, ArgumentError, r"patience >= 0, got -1"),
    "patience='3'": ({"patience": "3"}, ArgumentTypeError, r"patience to be an integer, got str '3'"),
    "patience=2.5": ({"patience": 2.5}, ArgumentTypeError, r"patience to be an integer"),
    "mode='bogus'": ({"mode": "bogus"}, ArgumentError, r"mode one of 'auto', 'min', 'max', got 'bogus'"),
    "min_delta=nan": ({"min_delta": math.nan}, ArgumentError, r"min_delta a finite number.*nan"),
    "min_delta=-1": ({"min_delta": -1.0}, ArgumentError, r"min_delta a finite number in \[0.0, inf\]"),
    "monitor=None": ({"monitor": None}, ArgumentTypeError, r"monitor the name of a logged number"),
    "restore_best_weights='no'": (
        {"restore_best_weights": "no"},
        ArgumentTypeError,
        r"restore_best_weights True or False",
    ),
}


@pytest.mark.parametrize("case", list(EARLY_STOPPING))
def test_early_stopping_names_a_bad_argument(case: str) -> None:
    kwargs, error, match = EARLY_STOPPING[case]
    with pytest.raises(error, match=rf"EarlyStopping: .*{match}"):
        xpnn.EarlyStopping(**kwargs)


def test_model_checkpoint_given_a_directory_is_refused_when_built(tmp_path: Path) -> None:
    with pytest.raises(ArgumentError, match=r"ModelCheckpoint: path .* is a directory"):
        xpnn.ModelCheckpoint(tmp_path)
    (tmp_path / "epoch-1").mkdir()
    with pytest.raises(ArgumentError, match=r"epoch-1' is a directory"):
        xpnn.ModelCheckpoint(tmp_path / "epoch-{epoch}")


def test_model_checkpoint_under_a_file_is_refused_and_a_new_directory_accepted(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ArgumentError, match=r"is a file, not a directory"):
        xpnn.ModelCheckpoint(tmp_path / "file" / "ck.npz")
    xpnn.ModelCheckpoint(tmp_path / "new" / "dir" / "ck.npz")  # made when it first saves


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"mode": "bogus"}, ArgumentError, r"mode one of"),
        ({"save_best_only": "yes"}, ArgumentTypeError, r"save_best_only True or False"),
        ({"path": None}, ArgumentTypeError, r"path a file path, got NoneType"),
    ],
)
def test_model_checkpoint_names_a_bad_argument(
    tmp_path: Path, kwargs: dict[str, Any], error: type, match: str
) -> None:
    with pytest.raises(error, match=rf"ModelCheckpoint: expected {match}"):
        xpnn.ModelCheckpoint(**{"path": tmp_path / "ck.npz", **kwargs})


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((None,), ArgumentTypeError, r"path a file path, got NoneType None"),
        (("",), ArgumentError, r"non-empty file path"),
        (("nodir/log.csv",), ArgumentError, r"the directory .*nodir' does not exist"),
    ],
)
def test_csv_logger_names_a_bad_path(args: tuple[Any, ...], error: type, match: str) -> None:
    with pytest.raises(error, match=rf"CSVLogger: .*{match}"):
        xpnn.CSVLogger(*args)


def _fit(callbacks: Any) -> xpnn.Sequential:
    model = xpnn.Sequential([xpnn.Dense(3, 2)], seed=0)
    x, y = np.ones((8, 3), np.float32), np.arange(8) % 2
    optimizer = xpnn.SGD(model.parameters(), lr=0.1)
    model.fit(
        x, y, loss=xpnn.SoftmaxCrossEntropy(), optimizer=optimizer, epochs=1, verbose=0, callbacks=callbacks
    )
    return model


def test_csv_logger_refuses_to_append_to_another_csv_before_training(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("name,score\nada,3\n")
    logger = xpnn.CSVLogger(path, append=True)
    with pytest.raises(ArgumentError, match=r"begins with 'name,score\\n', not this logger's header"):
        _fit([logger])
    assert path.read_text() == "name,score\nada,3\n"


def test_csv_logger_appends_to_its_own_file(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    _fit([xpnn.CSVLogger(path)])
    _fit([xpnn.CSVLogger(path, append=True)])
    lines = path.read_text().splitlines()
    assert len(lines) == 3 and lines[0].startswith("epoch,")


@pytest.mark.parametrize("callbacks", [[3], [None], 3, "log.csv"])
def test_fit_names_a_callback_that_is_not_one_before_training(callbacks: Any) -> None:
    with pytest.raises(ArgumentTypeError, match=r"fit: (callbacks\[0\] is|expected callbacks=)"):
        _fit(callbacks)
