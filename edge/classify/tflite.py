"""The TFLite emotion classifier: interpreter built once, checked against the manifest, dequantised in one place."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from edge.core.errors import ModelError
from edge.core.manifest import Manifest, ModelEntry
from edge.core.paths import models_dir
from edge.core.preprocess import PreprocessSpec
from edge.core.runtime import BatchRunner, dequantize, make_interpreter, quantize
from edge.core.types import Prediction
from edge.stats import latency_summary

from .calibration import apply as apply_calibration
from .calibration import offsets_vector as calibration_offsets
from .tta import check as check_tta
from .tta import views


class TFLiteClassifier:
    """Classify preprocessed face crops with one manifest-checked model variant."""

    def __init__(
        self,
        entry: ModelEntry,
        variant: str = "int8",
        num_threads: int = 1,
        tta: str | None = None,
        calibration: dict[str, float] | None = None,
    ):
        """tta: test-time augmentation, a policy of edge.classify.tta ("none", "flip", "zoom-flip"); calibration:
        per-label log-probability offsets ({} for none). Default for both: what the manifest records (chosen on val
        by 'emotion-trainer evaluate')."""
        self.name = entry.name
        self.variant = variant
        try:  # a hand-edited manifest entry: one line, not a KeyError traceback
            self.version = entry.version
            self.labels = entry.labels
            self.spec: PreprocessSpec = entry.preprocess
            path = entry.verify_file(variant)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelError(
                f"the manifest entry of model {entry.name!r} is malformed ({type(exc).__name__}: {exc}); "
                "fix: restore models/manifest.json from the release or re-export the model"
            ) from None
        if len(set(self.labels)) != len(self.labels) or not self.labels:
            raise ModelError(
                f"model {self.name!r} lists labels {list(self.labels)}; they must be distinct; fix: restore the "
                "manifest"
            )
        self._batches = BatchRunner(path, num_threads)  # an interpreter per batch size, built on first use
        self._interp = make_interpreter(path, num_threads)
        entry.check_interpreter(self._interp, variant)
        self._in = self._interp.get_input_details()[0]
        self._out = self._interp.get_output_details()[0]
        # Test-time augmentation chosen on the val split by 'emotion-trainer evaluate' and recorded in the
        # manifest, so the device does exactly what was measured: "flip" averages the face and its mirror.
        self.tta = check_tta(tta or entry.data.get("tta") or "none", f"model {self.name!r}")
        table = entry.data.get("calibration") if calibration is None else calibration
        self.calibration = dict(table or {})
        self._offsets = calibration_offsets(table, self.labels, self.name)

    @classmethod
    def from_manifest(
        cls, name: str | None = None, variant: str = "int8", num_threads: int = 1, root: str | Path | None = None
    ) -> TFLiteClassifier:
        return cls(Manifest(root or models_dir()).entry(name), variant, num_threads)

    def probabilities(self, face: np.ndarray) -> np.ndarray:
        """float32 probabilities (len(labels),) for one uint8 face of shape spec.input_shape."""
        if face.shape != self.spec.input_shape or face.dtype != np.uint8:
            raise ModelError(
                f"classifier {self.name!r} expects uint8 {self.spec.input_shape}, got {face.dtype} {face.shape}"
            )
        probs = np.mean([self._run(v) for v in views(face, self.tta)], axis=0)
        total = float(probs.sum())
        # uint8 softmax outputs step in 1/256 and may not sum to exactly 1; renormalise.
        if total <= 0:
            return np.full(len(self.labels), 1.0 / len(self.labels), np.float32)
        return apply_calibration(probs / total, self._offsets)

    def probabilities_batch(self, faces: list[np.ndarray]) -> list[np.ndarray]:
        """Probabilities for several faces in one interpreter call (TTA views included in the same call): the
        interpreter's batch dimension is resized to the number of images, one interpreter per size, built on
        first use. Per face the result is the same as probabilities()."""
        if not faces:
            return []
        if len(faces) == 1 and self.tta == "none":
            return [self.probabilities(faces[0])]
        for face in faces:
            if face.shape != self.spec.input_shape or face.dtype != np.uint8:
                raise ModelError(
                    f"classifier {self.name!r} expects uint8 {self.spec.input_shape}, got {face.dtype} {face.shape}"
                )
        x = np.stack([v for face in faces for v in views(face, self.tta)])  # face-major: face 0's views, then 1's
        probs = self._run_batch(x).reshape(len(faces), -1, len(self.labels)).mean(axis=1)
        total = probs.sum(axis=1, keepdims=True)
        uniform = np.full_like(probs, 1.0 / len(self.labels))
        probs = np.where(total > 0, apply_calibration(probs / np.where(total > 0, total, 1.0), self._offsets), uniform)
        return list(probs)

    def _run_batch(self, x: np.ndarray) -> np.ndarray:
        return self._batches.run(x)

    def _run(self, face: np.ndarray) -> np.ndarray:
        self._interp.set_tensor(self._in["index"], quantize(np.ascontiguousarray(face)[None], self._in))
        self._interp.invoke()
        return dequantize(self._interp.get_tensor(self._out["index"])[0], self._out)

    def latency_ms(self, face: np.ndarray, runs: int = 200, warmup: int = 10) -> dict[str, float | int]:
        """Per-face classification time (preprocessed bytes -> probabilities, TTA included): latency_summary."""
        for _ in range(warmup):
            self.probabilities(face)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            self.probabilities(face)
            times.append((time.perf_counter() - t0) * 1000.0)
        return latency_summary(times)

    def classify(self, face: np.ndarray) -> Prediction:
        p = self.probabilities(face)
        return Prediction(self.labels, tuple(float(v) for v in p))
