"""Saving, loading and exporting models: xpnn's ``.npz`` checkpoints (:mod:`~xpnn.io.archive`,
:mod:`~xpnn.io.serialization`), safetensors files in torch's names and layouts
(:mod:`~xpnn.io.safetensors_model`), torch state dicts (:func:`from_torch`, :func:`to_torch`)
and ONNX (:func:`export_onnx`). The optional packages (``safetensors``, ``onnx``,
``onnxruntime``) come with ``pip install 'xpnn[io]'``."""

from xpnn.io.onnx_export import export_onnx
from xpnn.io.torch_state import from_torch, to_torch

__all__ = ["export_onnx", "from_torch", "to_torch"]
