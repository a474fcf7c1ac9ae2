"""xpnn.Module as a PyTorch user meets it in the first week: the tree of parameters, modules
and buffers, modes, placement, gradients, state dicts, repr and summary."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import xpnn
from xpnn import backend
from xpnn import functional as F


class Net(xpnn.Module):
    """The DESIGN example: an input layer, residual blocks in a list, a scale, a head."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = xpnn.Dense(6, 8, seed=0)
        self.blocks = [xpnn.Dense(8, 8, seed=1), xpnn.Dense(8, 8, seed=2)]
        self.scale = xpnn.Parameter(np.ones((1,), np.float32), "scale")
        self.head = xpnn.Dense(8, 3, seed=3)

    def forward(self, x: Any) -> Any:
        h = F.relu(self.inp(x))
        for block in self.blocks:
            h = h + F.relu(block(h))
        return self.head(h * self.scale)


class Tree(xpnn.Module):
    """Modules nested in a list of lists and a dict, a BatchNorm and Dropout deep inside."""

    def __init__(self) -> None:
        self.stages = [[xpnn.Dense(2, 2, seed=0), xpnn.Dropout(0.5)], [xpnn.BatchNorm(2)]]
        self.heads = {"q": xpnn.Dense(2, 1, seed=1), "k": xpnn.Sequential([xpnn.Dense(2, 1, seed=2)])}


def test_parameters_are_found_in_assignment_order_with_dotted_names() -> None:
    assert [name for name, _ in Net().named_parameters()] == [
        "inp.weight", "inp.bias", "blocks.0.weight", "blocks.0.bias", "blocks.1.weight", "blocks.1.bias",
        "scale", "head.weight", "head.bias",
    ]  # fmt: skip


def test_modules_nested_in_lists_of_lists_and_dicts_are_found() -> None:
    assert [name for name, _ in Tree().named_modules()] == [
        "", "stages.0.0", "stages.0.1", "stages.1.0", "heads.q", "heads.k", "heads.k.0",
    ]  # fmt: skip
    assert [name for name, _ in Tree().named_parameters()] == [
        "stages.0.0.weight", "stages.0.0.bias", "stages.1.0.weight", "stages.1.0.bias",
        "heads.q.weight", "heads.q.bias", "heads.k.0.weight", "heads.k.0.bias",
    ]  # fmt: skip


def test_a_tied_parameter_is_listed_once_under_its_first_name() -> None:
    net = Net()
    net.head.weight = xpnn.Parameter(np.zeros((8, 3), np.float32))
    net.extra = xpnn.Dense(8, 3)
    net.extra.weight = net.head.weight
    names = [name for name, _ in net.named_parameters()]
    assert names.count("head.weight") == 1 and "extra.weight" not in names and "extra.bias" in names
    assert len(net.parameters()) == len({id(p) for p in net.parameters()}) == 10


def test_a_shared_module_is_listed_once_in_named_modules() -> None:
    net = Net()
    net.again = net.blocks[0]
    assert [name for name, _ in net.named_modules()].count("blocks.0") == 1
    assert "again" not in dict(net.named_modules())


def test_apply_visits_each_subtree_in_order_children_before_parents() -> None:
    tree = Tree()
    names = {id(m): name for name, m in tree.named_modules()}
    visited: list[str] = []
    tree.apply(lambda m: visited.append(names[id(m)]))
    assert visited == ["stages.0.0", "stages.0.1", "stages.1.0", "heads.q", "heads.k.0", "heads.k", ""]


def test_train_and_eval_reach_every_module_in_lists_and_dicts() -> None:
    tree = Tree().eval()
    assert [m.training for m in tree.modules()] == [False] * 7
    tree.train()
    assert [m.training for m in tree.modules()] == [True] * 7


def test_zero_grad_sets_every_gradient_to_none() -> None:
    net = Net()
    net(np.ones((2, 6), np.float32)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_a_frozen_parameter_gets_no_gradient_and_the_others_do() -> None:
    net = Net()
    net.inp.weight.requires_grad = False
    net(np.ones((2, 6), np.float32)).sum().backward()
    assert net.inp.weight.grad is None
    assert all(p.grad is not None for name, p in net.named_parameters() if name != "inp.weight")


def test_an_optimizer_leaves_a_frozen_parameter_unchanged() -> None:
    net = Net()
    net.blocks[1].weight.requires_grad = False
    frozen = net.blocks[1].weight.value.copy()
    moving = net.blocks[0].weight.value.copy()
    optimizer = xpnn.AdamW(net.parameters(), lr=0.1, weight_decay=0.5)  # decay would move it too
    for _ in range(3):
        F.mse(net(np.ones((4, 6), np.float32)), np.zeros((4, 3), np.float32)).backward()
        optimizer.step()
        optimizer.zero_grad()
    np.testing.assert_array_equal(net.blocks[1].weight.value, frozen)
    assert not np.array_equal(net.blocks[0].weight.value, moving)


class WithBuffers(xpnn.Module):
    def __init__(self) -> None:
        self.dense = xpnn.Dense(3, 2, seed=0)
        self.register_buffer("offset", np.full((2,), 0.5, np.float32))
        self.register_buffer("steps", np.zeros((), np.int64))

    def forward(self, x: Any) -> Any:
        return self.dense(x) + self.offset


def test_registered_buffers_are_in_buffers_and_state_dict_and_not_parameters() -> None:
    module = WithBuffers()
    assert list(module.buffers()) == ["offset", "steps"]
    assert list(module.state_dict()) == ["dense.weight", "dense.bias", "offset", "steps"]
    assert all(p is not module.offset for p in module.parameters())


def test_to_moves_and_casts_floating_buffers_and_keeps_integer_ones_integer(bk: Any) -> None:
    module = WithBuffers().to(bk.name, dtype="float64")
    assert backend.backend_name(module.offset) == bk.name
    assert backend.dtype_name(module.offset.dtype) == "float64"
    assert backend.dtype_name(module.steps.dtype) == "int64"
    assert backend.dtype_name(module.dense.weight.dtype) == "float64"


def test_to_without_a_dtype_keeps_float64_float64(bk: Any) -> None:
    module = WithBuffers().to("numpy", dtype="float64").to(bk.name)
    assert {backend.dtype_name(a.dtype) for a in (*module.state_dict().values(),)} == {"float64", "int64"}
    out = module(backend.from_host(np.ones((2, 3)), bk))
    assert backend.dtype_name(out.dtype) == "float64"


def test_a_buffer_set_to_none_is_no_buffer_until_it_has_a_value() -> None:
    module = WithBuffers()
    module.register_buffer("mask", None)
    assert "mask" not in module.state_dict()
    module.mask = np.ones((2,), np.float32)
    assert "mask" in module.state_dict()


def test_register_buffer_refuses_a_non_array_naming_the_module_and_buffer() -> None:
    with pytest.raises(xpnn.ArgumentTypeError, match=r"WithBuffers.register_buffer: .*'scale' and a list"):
        WithBuffers().register_buffer("scale", [1.0, 2.0])


def test_register_buffer_refuses_the_name_of_a_parameter_of_the_module() -> None:
    module = WithBuffers()
    with pytest.raises(xpnn.ArgumentError, match=r"'weight' is already a Parameter of this module"):
        module.dense.register_buffer("weight", np.zeros((3, 2), np.float32))
    assert [name for name, _ in module.named_parameters()] == ["dense.weight", "dense.bias"]


def test_load_state_dict_refuses_a_wrong_entry_before_changing_any_other() -> None:
    module = WithBuffers()
    before = {k: np.array(v, copy=True) for k, v in module.state_dict().items()}
    state = {k: v + 1 for k, v in before.items()}
    state["offset"] = np.zeros((3,), np.float32)  # the wrong shape, after entries that fit
    with pytest.raises(xpnn.ShapeError, match=r"'offset' has shape \(3,\), the module's is \(2,\)"):
        module.load_state_dict(state)
    for key, value in module.state_dict().items():
        np.testing.assert_array_equal(value, before[key])


def test_load_state_dict_not_strict_loads_what_matches_and_returns_missing_and_unexpected() -> None:
    module = WithBuffers()
    weight = np.arange(6, dtype=np.float32).reshape(3, 2)
    missing, unexpected = module.load_state_dict({"dense.weight": weight, "head.bias": weight}, strict=False)
    assert missing == ["dense.bias", "offset", "steps"] and unexpected == ["head.bias"]
    np.testing.assert_array_equal(module.dense.weight.value, weight)


def test_load_state_dict_strict_names_the_missing_and_unexpected_keys() -> None:
    expected = r"missing keys \['offset', 'steps'\].*unexpected keys \['x'\]"
    with pytest.raises(xpnn.CheckpointError, match=expected):
        WithBuffers().load_state_dict({"dense.weight": np.zeros((3, 2)), "dense.bias": np.zeros(2), "x": 1})


def test_repr_shows_each_sub_module_under_its_name() -> None:
    assert repr(Net()) == (
        "Net(\n  (inp): Dense(6 -> 8)\n  (blocks.0): Dense(8 -> 8)\n  (blocks.1): Dense(8 -> 8)\n"
        "  (head): Dense(8 -> 3)\n)"
    )


def test_summary_lists_members_and_counts_a_shared_parameter_once() -> None:
    net = Net()
    net.again = net.blocks[0]
    text = net.summary()
    assert "scale     Parameter(1,)" in text and "blocks.0  Dense(8 -> 8)" in text
    assert "total parameters: 228 (float32, backend numpy)" in text  # 56 + 72 + 72 + 1 + 27


def test_calling_a_module_without_forward_names_it_in_a_missing_forward_error() -> None:
    class NoForward(xpnn.Module):
        def __init__(self) -> None:
            self.dense = xpnn.Dense(2, 2)

    with pytest.raises(xpnn.MissingForwardError, match=r"NoForward.forward is not written"):
        NoForward()(np.ones((1, 2), np.float32))
    assert issubclass(xpnn.MissingForwardError, NotImplementedError)


def test_a_layer_used_twice_adds_its_penalty_once_in_a_module_and_in_a_sequential() -> None:
    dense = xpnn.Dense(3, 3, seed=0, weight_regularizer_l2=0.1)

    class Twice(xpnn.Module):
        def __init__(self) -> None:
            self.first, self.second = dense, dense

    sequential = xpnn.Sequential([dense, xpnn.Tanh(), dense], seed=0)  # draws dense's weights anew
    once = float(dense.regularization_loss())
    assert once > 0.0
    assert float(Twice().regularization_loss()) == once
    assert float(sequential.regularization_loss()) == once
