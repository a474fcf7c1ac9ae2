"""Issue 26's round trips with torch: the Fashion-MNIST MLP, the CNN and a residual network
written as an xpnn.Module give torch's logits (rtol 1e-6 in float32) after xpnn ->
safetensors -> torch and after torch -> xpnn, and the same predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import xpnn
from tests.helpers import travel_models as tm
from tests.helpers.optional import require_torch

pytest.importorskip("safetensors", reason="safetensors is not installed (pip install 'xpnn[io]')")


@pytest.mark.parametrize("kind", tm.MODELS)
def test_xpnn_to_safetensors_to_torch_gives_the_same_logits(kind: str, tmp_path: Path) -> None:
    require_torch("the file is loaded into a torch module")
    from safetensors.torch import load_file

    model = tm.build(kind)
    xpnn.save(model, tmp_path / "m.safetensors")
    twin = tm.torch_twin(kind)
    twin.load_state_dict(load_file(tmp_path / "m.safetensors"), strict=True)
    x = tm.inputs_for(kind)
    tm.assert_same_logits(tm.torch_logits(twin, x), model.predict(x), rtol=1e-6)


@pytest.mark.parametrize("kind", tm.MODELS)
def test_torch_to_xpnn_gives_the_same_logits(kind: str) -> None:
    torch = require_torch("the weights come from a torch module")
    torch.manual_seed(0)
    twin = tm.torch_twin(kind)
    twin.train()
    with torch.no_grad():  # running statistics of one batch: not the initial 0 and 1
        twin(torch.from_numpy(tm.inputs_for(kind, 16)))
    model = tm.build(kind, seed=9)
    assert model.load_state_dict(twin.state_dict(), from_torch=True) == ([], [])
    x = tm.inputs_for(kind)
    tm.assert_same_logits(model.predict(x), tm.torch_logits(twin, x), rtol=1e-6)


def test_torch_to_safetensors_to_xpnn_gives_the_same_logits(tmp_path: Path) -> None:
    torch = require_torch("the file is written from a torch module")
    from safetensors.torch import save_file

    torch.manual_seed(1)
    twin = tm.torch_twin("resnet")
    save_file(twin.state_dict(), tmp_path / "t.safetensors")
    model = xpnn.load(tmp_path / "t.safetensors", into=tm.build("resnet"))
    x = tm.inputs_for("resnet")
    tm.assert_same_logits(model.predict(x), tm.torch_logits(twin, x), rtol=1e-6)


@pytest.mark.parametrize("kind", tm.MODELS)
def test_in_float64_the_mapping_is_exact_to_rounding(kind: str) -> None:
    """The float32 tolerance is float32's: in float64 the two agree to ~1e-15."""
    torch = require_torch("the weights go into a torch module")
    model = tm.build(kind).to("numpy", dtype="float64")
    twin = tm.torch_twin(kind).double()
    twin.load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in xpnn.io.to_torch(model).items()})
    x = tm.inputs_for(kind).astype(np.float64)
    tm.assert_same_logits(tm.torch_logits(twin, x), model.predict(x), rtol=1e-13)
