"""TFLite runtime shim: ai_edge_litert first, then tflite_runtime, then tensorflow.lite.

Build an interpreter once per model and keep it; `quantize`/`dequantize` are the only places that
apply a tensor's (scale, zero_point).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelError, RuntimeUnavailable

log = logging.getLogger(__name__)

_BACKENDS = (
    ("ai_edge_litert.interpreter", "ai-edge-litert"),
    ("tflite_runtime.interpreter", "tflite-runtime"),
    ("tensorflow.lite", "tensorflow"),
)


def _interpreter_class() -> tuple[Any, str]:
    problems = []
    for module_name, dist in _BACKENDS:
        try:
            module = __import__(module_name, fromlist=["Interpreter"])
            return module.Interpreter, dist
        except ImportError as exc:
            # tflite-runtime 2.14 was built against numpy 1: under numpy 2 it fails with
            # "_ARRAY_API not found" (an ImportError or AttributeError depending on the path).
            problems.append(f"{dist}: {exc}")
        except AttributeError as exc:
            problems.append(f"{dist}: {exc}")
    hint = "pip install ai-edge-litert (64-bit Python 3.10+)"
    if any("_ARRAY_API" in p or "numpy" in p.lower() for p in problems):
        hint += "; tflite-runtime needs numpy<2 ('pip install \"numpy<2\"')"
    raise RuntimeUnavailable(f"no TFLite runtime could be imported ({'; '.join(problems)}); fix: {hint}")


def runtime_name() -> str:
    return _interpreter_class()[1]


_BANNER = b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU."


@contextlib.contextmanager
def _without_delegate_banner():
    """The runtime's C++ logger prints an INFO banner on stderr for every interpreter; our errors are one line, so
    stderr is captured (in a file: no pipe to fill) while the interpreter is built and everything else is passed on."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        sys.stderr.flush()
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            rest = b"".join(line for line in tmp.read().splitlines(keepends=True) if not line.startswith(_BANNER))
            if rest:
                sys.stderr.buffer.write(rest) if hasattr(sys.stderr, "buffer") else sys.stderr.write(
                    rest.decode(errors="replace")
                )
                sys.stderr.flush()


def make_interpreter(model_path: str | Path, num_threads: int = 1) -> Any:
    """Load and allocate a TFLite interpreter; a corrupt file becomes a one-line ModelError."""
    cls, dist = _interpreter_class()
    path = Path(model_path)
    if not path.is_file():
        raise ModelError(f"model file {path} not found; fix: run 'emotion-trainer export' or reinstall the models")
    try:
        with _without_delegate_banner():
            interp = cls(model_path=str(path), num_threads=int(num_threads))
            interp.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelError(
            f"model file {path} could not be loaded by {dist} ({str(exc).splitlines()[0]}); "
            "fix: re-export or reinstall it"
        ) from None
    log.debug("loaded %s with %s (%d threads)", path, dist, num_threads)
    return interp


def quant_params(detail: dict) -> tuple[float, int]:
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return float(scale), int(zero_point)


def quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    """Real values -> the tensor's dtype. With scale 1 and zero point 0 (our uint8 inputs) bytes pass unchanged."""
    dtype = detail["dtype"]
    scale, zp = quant_params(detail)
    if scale == 0.0:
        return x.astype(dtype)
    if scale == 1.0 and zp == 0 and x.dtype == dtype:
        return x
    info = np.iinfo(dtype)
    q = np.round(x.astype(np.float32) / scale + zp)
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, detail: dict) -> np.ndarray:
    """The tensor's values -> float32 real values: real = scale * (q - zero_point)."""
    scale, zp = quant_params(detail)
    if scale == 0.0:
        return q.astype(np.float32)
    return (scale * (q.astype(np.float32) - zp)).astype(np.float32)


class BatchRunner:
    """One model on batches of any size: an interpreter per batch size (input resized and tensors allocated on first
    use), inputs quantised and outputs dequantised by the tensors' own parameters. An interpreter is not thread-safe:
    one runner per thread (trainer/train.py keeps one per worker thread)."""

    def __init__(self, model_path: str | Path, num_threads: int = 1):
        self.path, self.num_threads = Path(model_path), num_threads
        self._by_size: dict[int, tuple[Any, dict, dict]] = {}

    def run(self, x: np.ndarray) -> np.ndarray:
        """Real-valued outputs for the batch x (batch first, e.g. (n, 100, 100, 3) face bytes)."""
        found = self._by_size.get(len(x))
        if found is None:
            interp = make_interpreter(self.path, self.num_threads)
            interp.resize_tensor_input(interp.get_input_details()[0]["index"], list(x.shape))
            interp.allocate_tensors()
            found = self._by_size[len(x)] = (interp, interp.get_input_details()[0], interp.get_output_details()[0])
        interp, i, o = found
        interp.set_tensor(i["index"], quantize(x, i))
        interp.invoke()
        return dequantize(interp.get_tensor(o["index"]), o)
