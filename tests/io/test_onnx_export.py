"""xpnn.io.export_onnx: the traced model as an ONNX file that onnx.checker accepts and ONNX
Runtime runs to xpnn's outputs, for any batch size; the model is left as it was (issue 26,
"ONNX export")."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import xpnn
from tests.helpers import hostile_safetensors as hs
from tests.helpers import travel_models as tm
from xpnn import backend
from xpnn import functional as F
from xpnn.errors import ExportError, MissingDependencyError

onnx = pytest.importorskip("onnx", reason="onnx is not installed (pip install 'xpnn[io]')")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'xpnn[io]')")


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


def _round_trip(model: Any, x: np.ndarray, tmp_path: Path, rtol: float = 1e-5, **keywords: Any) -> Any:
    proto = xpnn.io.export_onnx(model, x, tmp_path / "m.onnx", **keywords)
    ours = backend.to_host(model.predict(x))
    theirs = _run(tmp_path / "m.onnx", backend.to_host(x))
    error = np.linalg.norm(theirs - ours) / np.linalg.norm(ours)
    assert error <= rtol, f"relative error {error:.3g} in the 2-norm"
    return proto


@pytest.mark.parametrize("kind", tm.MODELS)
def test_onnx_runtime_gives_xpnns_logits_and_predictions_for_a_batch_of_test_images(
    kind: str, tmp_path: Path
) -> None:
    model = tm.build(kind)
    x = tm.inputs_for(kind, 64)
    xpnn.io.export_onnx(model, x[:1], tmp_path / "m.onnx")  # traced on one image, run on 64
    tm.assert_same_logits(_run(tmp_path / "m.onnx", x), model.predict(x), rtol=1e-5)


def test_the_file_passes_the_checker_with_a_free_batch_axis_and_its_opset(tmp_path: Path) -> None:
    proto = xpnn.io.export_onnx(tm.build("cnn"), tm.inputs_for("cnn", 4), tmp_path / "m.onnx")
    onnx.checker.check_model(onnx.load(tmp_path / "m.onnx"), full_check=True)
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", 17)]
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [1, 28, 28]
    assert proto.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    names = {i.name for i in proto.graph.initializer}
    assert {"0.weight", "1.running_mean", "13.weight"} <= names


def test_the_model_is_left_as_it_was(tmp_path: Path) -> None:
    model = hs.small_model()
    model[0].weight.requires_grad = False
    before = hs.state(model)
    _round_trip(model, np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32), tmp_path)
    assert model.training and all(m.training for m in model.modules())
    assert not model[0].weight.requires_grad and model[4].weight.requires_grad
    assert hs.same(hs.state(model), before)


def test_activations_pooling_normalization_and_dropout_as_identity(tmp_path: Path) -> None:
    layers = [xpnn.Conv2D(2, 4, 3, padding="same"), xpnn.LeakyReLU(0.2), xpnn.AvgPool2D(2, padding=1),
              xpnn.Conv2D(4, 4, (2, 3), stride=2, bias=False), xpnn.Tanh(),
              xpnn.MaxPool2D(2, stride=1, ceil_mode=True), xpnn.GlobalAvgPool2D(), xpnn.Dropout(0.5),
              xpnn.Dense(4, 6), xpnn.BatchNorm(6), xpnn.Sigmoid(), xpnn.Dense(6, 5),
              xpnn.Softmax()]  # fmt: skip
    model = xpnn.Sequential(layers, seed=3)
    _round_trip(model, np.random.default_rng(1).standard_normal((5, 2, 9, 11)).astype(np.float32), tmp_path)


class Elementwise(xpnn.Module):
    """The Tensor operations a residual block of your own may use."""

    def __init__(self) -> None:
        self.a, self.b = xpnn.Dense(6, 6), xpnn.Dense(6, 6)
        self.scale = xpnn.Parameter(np.full(6, 0.5, np.float32), name="scale")

    def forward(self, x: Any) -> Any:
        h = F.relu(self.a(x)) * 0.5 + 1.0
        h = (h - self.b(h) / 2.0) * self.scale - (-x) ** 2
        h = h.reshape(-1, 2, 3).transpose(0, 2, 1)
        h = 2.0 - h.mean(axis=1, keepdims=True) + h.sum(axis=2).max(axis=1).reshape(-1, 1, 1)
        return h.reshape(h.shape[0], -1).exp().log() + 0.0 * x.abs().sqrt().min(axis=1, keepdims=True)


@pytest.mark.parametrize("opset", [17, 18, 21])
def test_elementwise_operations_constants_and_reshapes(tmp_path: Path, opset: int) -> None:
    x = np.random.default_rng(2).standard_normal((4, 6)).astype(np.float32)
    proto = _round_trip(Elementwise(), x, tmp_path, opset=opset)
    assert proto.opset_import[0].version == opset


def test_on_each_backend(tmp_path: Path, bk: backend.Backend) -> None:
    model = tm.build("resnet").to(bk.name)
    _round_trip(model, backend.from_host(tm.inputs_for("resnet", 3), bk), tmp_path)


def test_float64_stays_float64(tmp_path: Path) -> None:
    """(ONNX Runtime's CPU provider has no float64 Conv: an MLP shows it.)"""
    model = hs.small_model().to("numpy", dtype="float64")
    proto = _round_trip(model, np.random.default_rng(3).standard_normal((5, 4)), tmp_path, rtol=1e-13)
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE


def test_a_batchnorm_without_running_statistics_is_refused(tmp_path: Path) -> None:
    model = xpnn.Sequential([xpnn.Dense(3, 4), xpnn.BatchNorm(4, track_running_stats=False)])
    with pytest.raises(ExportError, match=r"BatchNorm normalizing with the batch's own statistics"):
        xpnn.io.export_onnx(model, np.ones((2, 3), np.float32), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_an_operation_without_an_onnx_form_is_named(tmp_path: Path) -> None:
    class Clipped(xpnn.Module):
        def __init__(self) -> None:
            self.dense = xpnn.Dense(3, 2)

        def forward(self, x: Any) -> Any:
            return self.dense(x).clip(0.0, 1.0)

    with pytest.raises(ExportError, match=r"tape node 'clip' has no ONNX form.*onnx_ops\.ONNX_OPS"):
        xpnn.io.export_onnx(Clipped(), np.ones((2, 3), np.float32), tmp_path / "m.onnx")


def test_an_unsupported_opset_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"opset 11, expected 17 to 21"):
        xpnn.io.export_onnx(hs.small_model(), np.ones((2, 4), np.float32), tmp_path / "m.onnx", opset=11)


def test_without_onnx_the_error_names_the_extra(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(MissingDependencyError, match=r"export_onnx needs onnx.*pip install 'xpnn\[io\]'"):
        xpnn.io.export_onnx(hs.small_model(), np.ones((2, 4), np.float32), tmp_path / "m.onnx")


class Tokens(xpnn.Module):
    """An embedding lookup written as ``weight[ids]`` (integer input), pooled, then a Dense."""

    def __init__(self) -> None:
        rng = np.random.default_rng(4)
        self.table = xpnn.Parameter(rng.standard_normal((20, 6)).astype(np.float32), name="table")
        self.head = xpnn.Dense(6, 3)

    def forward(self, ids: Any) -> Any:
        return self.head(self.table[ids].mean(axis=1))


def test_integer_token_ids_are_the_graphs_input(tmp_path: Path) -> None:
    model = Tokens()
    ids = np.random.default_rng(5).integers(0, 20, (7, 5))
    proto = xpnn.io.export_onnx(model, ids[:1], tmp_path / "t.onnx")
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.INT64
    with xpnn.no_grad():  # predict takes images (floats, or uint8 it scales): call the model
        expected = model(ids).value
    np.testing.assert_allclose(_run(tmp_path / "t.onnx", ids), expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_uint8_images_as_fit_and_predict_take_them_give_predicts_logits(kind: str, tmp_path: Path) -> None:
    model = tm.build(kind)
    images = np.random.default_rng(6).integers(0, 256, (9, *tm.inputs_for(kind, 1).shape[1:]), dtype=np.uint8)
    proto = xpnn.io.export_onnx(model, images[:1], tmp_path / "u8.onnx")
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert [node.op_type for node in proto.graph.node[:2]] == ["Cast", "Mul"]
    tm.assert_same_logits(_run(tmp_path / "u8.onnx", images), model.predict(images), rtol=1e-5)
