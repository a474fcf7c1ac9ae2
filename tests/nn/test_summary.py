"""model.summary(input_shape=...) and print(model): modules by dotted name, output shapes from
one probe forward that changes nothing, parameters, trainable / frozen (issue 26, "Summary")."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import xpnn
from tests.helpers import hostile_safetensors as hs
from tests.helpers import travel_models as tm
from xpnn import backend
from xpnn.errors import ArgumentError, ShapeError


def _row(table: str, name: str) -> list[str]:
    line = next(line for line in table.splitlines() if line.strip().split("  ")[0] == name)
    return [cell.strip() for cell in line.strip().split("  ") if cell.strip()]


def test_each_layer_has_its_output_shape_and_parameter_count() -> None:
    table = tm.build("cnn").summary(input_shape=(1, 28, 28))
    assert table.splitlines()[0] == "input: (batch, 1, 28, 28); output: (batch, 10)"
    assert _row(table, "4") == ["4", "Conv2D(32 -> 64, kernel (3, 3))", "(batch, 64, 14, 14)", "18,432"]
    assert _row(table, "8") == ["8", "Flatten()", "(batch, 3136)", "0"]
    assert _row(table, "13") == ["13", "Dense(128 -> 10)", "(batch, 10)", "1,290"]
    assert "total parameters: 421,738 (float32, backend numpy)" in table
    assert "trainable: 421,738; frozen: 0" in table and "running statistics): 192 numbers" in table


def test_nested_modules_by_dotted_name_and_the_frozen_split() -> None:
    model = tm.build("resnet")
    model.blocks[1].conv2.weight.requires_grad = False
    table = model.summary(input_shape=(1, 28, 28))
    assert _row(table, "blocks.1") == ["blocks.1", "Block", "(batch, 8, 14, 14)", "1,184"]
    assert "\n  blocks.1.conv2  " in table  # indented under its block
    assert _row(table, "head_pool") == ["head_pool", "GlobalAvgPool2D()", "(batch, 8)", "0"]
    assert "trainable: 1,978; frozen: 576" in table


def test_the_probe_changes_nothing() -> None:
    model = hs.small_model()
    marker = model[4].forward
    model[4].forward = marker  # an instance's own forward survives the probe
    before = hs.state(model)
    model.summary(input_shape=(4,))
    assert model.training and all(m.training for m in model.modules())
    assert hs.same(hs.state(model), before)
    assert all("forward" not in vars(m) for m in model.modules() if m is not model[4])
    assert vars(model[4])["forward"] is marker
    assert all(p.grad is None for p in model.parameters())


def test_on_each_backend(bk: backend.Backend) -> None:
    table = hs.small_model().to(bk.name).summary(input_shape=(4,))
    assert _row(table, "1") == ["1", "BatchNorm(8)", "(batch, 8)", "16"]
    assert f"backend {bk.name}" in table


def test_a_module_the_forward_never_calls_is_marked() -> None:
    class Net(xpnn.Module):
        def __init__(self) -> None:
            self.used, self.spare = xpnn.Dense(3, 2), xpnn.Dense(3, 2)

        def forward(self, x: Any) -> Any:
            return self.used(x)

    assert _row(Net().summary(input_shape=(3,)), "spare")[2] == "(not called)"


def test_print_shows_the_table_and_a_layer_its_repr(capsys: pytest.CaptureFixture[str]) -> None:
    model = hs.small_model()
    print(model)
    print(model[0])
    out = capsys.readouterr().out
    assert out.startswith("name  layer") and "Dense(4 -> 8)" in out and out.endswith("\nDense(4 -> 8)\n")
    assert repr(model).startswith("Sequential([")


def test_a_wrong_input_shape_is_the_layers_error_and_changes_nothing() -> None:
    model = hs.small_model()
    with pytest.raises(ShapeError, match=r"Dense\(4 -> 8\): expected input of shape \(batch, 4\)"):
        model.summary(input_shape=(5,))
    assert model.training and all("forward" not in vars(m) for m in model.modules())
    with pytest.raises(ArgumentError, match=r"input_shape must be a tuple of sizes"):
        model.summary(input_shape=(0,))


def test_without_an_input_shape_no_shapes_are_shown() -> None:
    table = xpnn.Sequential([xpnn.Dense(784, 256), xpnn.ReLU(), xpnn.Dense(256, 10)]).summary()
    assert table.splitlines()[0].split() == ["name", "layer", "parameters"]
    assert "total parameters: 203,530" in table and np.all(
        ["batch" not in line for line in table.splitlines()]
    )
