"""state_dict(to_torch=True) / load_state_dict(from_torch=True): torch's names and layouts,
checked whole before anything changes (issue 26, "PyTorch weights in and out")."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import xpnn
from tests.helpers import travel_models as tm
from tests.helpers.optional import require_torch
from xpnn import backend
from xpnn.errors import CheckpointError, DTypeError, ShapeError
from xpnn.nn import torch_layout


def _small() -> xpnn.Sequential:
    return xpnn.Sequential(
        [xpnn.Conv2D(1, 2, 3), xpnn.BatchNorm(2), xpnn.ReLU(), xpnn.Flatten(), xpnn.Dense(8, 3)], seed=0
    )


def _host_state(model: Any) -> dict[str, Any]:
    values: dict[str, Any] = {k: backend.to_host(v) for k, v in model.state_dict().items()}
    values.update({f"{name}#counters": m.counters() for name, m in model.named_modules()})
    return values


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) if k[-9:] != "#counters" else a[k] == b[k]
                                        for k in a)  # fmt: skip


def test_torch_names_count_parameter_free_layers_and_transpose_dense_weights() -> None:
    model = _small()
    model[1].num_batches_tracked = 7
    state = model.state_dict(to_torch=True)
    assert list(state) == ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
                           "1.num_batches_tracked", "4.weight", "4.bias"]  # fmt: skip
    np.testing.assert_array_equal(state["4.weight"], model[4].weight.value.T)
    assert state["1.num_batches_tracked"].shape == () and state["1.num_batches_tracked"].dtype == np.int64
    assert int(state["1.num_batches_tracked"]) == 7


@pytest.mark.parametrize("kind", tm.MODELS)
def test_torch_state_dict_keys_shapes_and_dtypes_are_the_torch_twins(kind: str) -> None:
    require_torch("the keys are compared with a torch module's")
    ours = tm.build(kind).state_dict(to_torch=True)
    theirs = tm.torch_twin(kind).state_dict()
    assert list(ours) == list(theirs)
    for name, tensor in theirs.items():
        assert tuple(ours[name].shape) == tuple(tensor.shape), name
        assert str(ours[name].dtype) == str(tensor.dtype).removeprefix("torch."), name


def test_to_torch_and_back_on_each_backend(bk: backend.Backend) -> None:
    model = _small().to(bk.name)
    model[1].num_batches_tracked = 3
    state = model.state_dict(to_torch=True)
    assert all(backend.backend_name(v) == backend.backend_name(model[0].weight.value) for v in state.values())
    other = _small().to(bk.name)
    other[4].weight.value = other[4].weight.value * 2.0
    assert other.load_state_dict(state, from_torch=True) == ([], [])
    assert _same(_host_state(other), _host_state(model))


def test_numpy_arrays_and_float64_values_load_cast_to_the_model_dtype() -> None:
    model = _small()
    state = {k: np.asarray(v, dtype=np.float64 if v.dtype == np.float32 else v.dtype) + 0
             for k, v in model.state_dict(to_torch=True).items()}  # fmt: skip
    state["4.weight"] = state["4.weight"] + 1.0
    model.load_state_dict(state, from_torch=True)
    assert model[4].weight.value.dtype == np.float32
    np.testing.assert_allclose(model[4].weight.value, state["4.weight"].T, rtol=1e-7)


def test_torch_bfloat16_tensors_load() -> None:
    torch = require_torch("bfloat16 tensors are torch's")
    model = _small()
    state = {k: torch.as_tensor(np.asarray(v)) for k, v in model.state_dict(to_torch=True).items()}
    state["4.bias"] = torch.tensor([0.5, -1.25, 2.0], dtype=torch.bfloat16)
    model.load_state_dict(state, from_torch=True)
    np.testing.assert_array_equal(model[4].bias.value, [0.5, -1.25, 2.0])


@pytest.mark.parametrize(
    ("edit", "error", "match"),
    [
        (
            lambda s: s.update({"4.weight": s["4.weight"].T}),
            ShapeError,
            r"'4\.weight'.*\(8, 3\), expected \(3, 8\)",
        ),
        (lambda s: s.update({"1.running_var": np.ones(3, np.float32)}), ShapeError, r"'1\.running_var'"),
        (lambda s: s.update({"0.bias": np.ones(2, np.int32)}), DTypeError, r"'0\.bias'.*int32"),
        (lambda s: s.update({"1.num_batches_tracked": np.float32(2)}), DTypeError, r"num_batches_tracked"),
        (lambda s: s.update({"4.bias": [1.0, 2.0, 3.0]}), DTypeError, r"'4\.bias' .*is a list"),
        (lambda s: s.pop("0.weight"), CheckpointError, r"missing keys \['0\.weight'\] \(xpnn '0\.weight'\)"),
        (lambda s: s.update({"2.weight": np.ones(1)}), CheckpointError, r"unexpected keys \['2\.weight'\]"),
    ],
)
def test_a_mismatch_is_named_and_nothing_changes(edit: Any, error: type, match: str) -> None:
    model = _small()
    state = {k: np.array(v) for k, v in model.state_dict(to_torch=True).items()}
    for k in state:
        if state[k].dtype == np.float32:
            state[k] = state[k] + 1.0  # a load that went through would show
    edit(state)
    before = _host_state(model)
    with pytest.raises(error, match=match):
        model.load_state_dict(state, from_torch=True)
    assert _same(_host_state(model), before)


def test_strict_false_loads_what_matches_and_returns_missing_and_unexpected_keys_as_torch() -> None:
    torch = require_torch("the keys are compared with torch's load_state_dict")
    twin = tm.torch_twin("cnn")
    partial = {k: v for k, v in twin.state_dict().items() if not k.startswith("1.")}
    partial["extra.weight"] = torch.zeros(2)
    model = tm.build("cnn")
    missing, unexpected = model.load_state_dict(partial, from_torch=True, strict=False)
    expected = tm.torch_twin("cnn").load_state_dict(partial, strict=False)
    assert (missing, unexpected) == (expected.missing_keys, expected.unexpected_keys)
    np.testing.assert_array_equal(model[0].weight.value, twin[0].weight.detach().numpy())


def test_a_user_module_maps_its_attributes_and_a_subclass_of_dense_inherits_the_transpose() -> None:
    class Wide(xpnn.Dense):
        pass

    class Net(xpnn.Module):
        def __init__(self) -> None:
            self.scale = xpnn.Parameter(np.ones(3, np.float32), name="scale")
            self.layers = {"a": Wide(2, 3), "b": xpnn.Dense(3, 1)}
            self.register_buffer("steps", np.zeros(1, np.float32))

    state = Net().state_dict(to_torch=True)
    assert list(state) == [
        "scale",
        "steps",
        "layers.a.weight",
        "layers.a.bias",
        "layers.b.weight",
        "layers.b.bias",
    ]
    assert state["layers.a.weight"].shape == (3, 2)


def test_a_layout_naming_sub_modules_covers_the_whole_layer_as_torch_multihead_attention() -> None:
    """A stand-in with the transformer issue's attributes (.qkv = Dense(dim, 3 dim), .out =
    Dense(dim, dim)) maps onto torch's packed in_proj_* / out_proj.*."""
    torch = require_torch("the keys are compared with torch's MultiheadAttention")

    class MultiHeadAttention(xpnn.Module):
        def __init__(self, dim: int) -> None:
            self.qkv, self.out = xpnn.Dense(dim, 3 * dim), xpnn.Dense(dim, dim)

    ours = MultiHeadAttention(8)
    theirs = torch.nn.MultiheadAttention(8, 2, batch_first=True)
    state = ours.state_dict(to_torch=True)
    assert {k: tuple(v.shape) for k, v in state.items()} == {
        k: tuple(v.shape) for k, v in theirs.state_dict().items()
    }
    theirs.load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in state.items()})
    np.testing.assert_array_equal(theirs.in_proj_weight.detach().numpy()[:8], ours.qkv.weight.value[:, :8].T)
    back = MultiHeadAttention(8)
    back.load_state_dict(theirs.state_dict(), from_torch=True)
    np.testing.assert_array_equal(back.out.weight.value, ours.out.weight.value)


def test_the_table_names_only_layers_whose_torch_layout_differs() -> None:
    assert set(torch_layout.TORCH_LAYOUTS) == {"Dense", "BatchNorm", "MultiHeadAttention"}
    assert torch_layout.layout_of(xpnn.Conv2D(1, 1, 1)) == torch_layout.TorchLayout()


@pytest.mark.parametrize("causal", [False, True])
def test_xpnns_multi_head_attention_runs_as_torchs_with_the_mapped_weights(causal: bool) -> None:
    torch = require_torch("the outputs are compared with torch's MultiheadAttention")
    ours = xpnn.MultiHeadAttention(8, 2, causal=causal)
    theirs = torch.nn.MultiheadAttention(8, 2, batch_first=True)
    theirs.load_state_dict({k: torch.as_tensor(v) for k, v in ours.state_dict(to_torch=True).items()})
    x = np.random.default_rng(3).standard_normal((2, 5, 8)).astype(np.float32)
    mask = torch.triu(torch.ones(5, 5, dtype=torch.bool), diagonal=1) if causal else None
    want, _ = theirs(*(torch.as_tensor(x),) * 3, attn_mask=mask, need_weights=False)
    got = backend.to_host(ours(x).value)
    np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-5, atol=1e-6)
    back = xpnn.MultiHeadAttention(8, 2, causal=causal)
    back.load_state_dict(theirs.state_dict(), from_torch=True)
    np.testing.assert_allclose(backend.to_host(back(x).value), got, rtol=0, atol=0)
