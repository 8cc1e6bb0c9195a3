"""The TFLite runtime shim: prefers ai_edge_litert, explains a numpy-2/tflite-runtime clash in one line."""

import builtins

import numpy as np
import pytest

from edge.core import runtime
from edge.core.errors import RuntimeUnavailable


def test_prefers_ai_edge_litert():
    pytest.importorskip("ai_edge_litert")
    assert runtime.runtime_name() == "ai-edge-litert"


def test_no_runtime_is_one_clear_line(monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("ai_edge_litert") or name.startswith("tensorflow"):
            raise ImportError(f"No module named '{name}'")
        if name.startswith("tflite_runtime"):
            raise AttributeError("_ARRAY_API not found")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(RuntimeUnavailable) as exc:
        runtime.runtime_name()
    msg = str(exc.value)
    assert "\n" not in msg and "pip install ai-edge-litert" in msg and "numpy<2" in msg


def test_quantize_roundtrip():
    detail = {"dtype": np.uint8, "quantization": (0.5, 10)}
    x = np.array([0.0, 1.0, 50.0, 500.0], np.float32)
    q = runtime.quantize(x, detail)
    assert q.tolist() == [10, 12, 110, 255]
    assert runtime.dequantize(q, detail).tolist() == [0.0, 1.0, 50.0, 122.5]
    raw = np.array([1, 2, 3], np.uint8)
    assert runtime.quantize(raw, {"dtype": np.uint8, "quantization": (1.0, 0)}) is raw
