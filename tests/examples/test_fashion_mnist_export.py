"""The showcase's --export writes the trained model as ONNX that runs to the model's logits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.examples.loading import load_example

ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'xpnn[io]')")


def test_export_writes_the_model_as_onnx_on_images_scaled_as_the_model_sees_them(tmp_path: Path) -> None:
    example = load_example("fashion_mnist")
    args = example.parse_args(["--model", "cnn", "--export", str(tmp_path / "fm.onnx")])
    model = example.build_model(args.model, 0)
    images = np.random.default_rng(0).integers(0, 256, (6, 1, 28, 28), dtype=np.uint8)
    example.export(model, (None, (images, None)), args.export)
    x = images.astype(np.float32) / 255.0
    session = ort.InferenceSession(args.export, providers=["CPUExecutionProvider"])
    logits = session.run(None, {"input": x})[0]
    np.testing.assert_allclose(logits, model.predict(x), rtol=1e-5, atol=1e-6)
