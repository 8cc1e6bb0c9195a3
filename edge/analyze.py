"""`emotion-edge analyze`: emotions of the faces in images, folders and video files, one line per face."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from edge.core.errors import UserError
from edge.core.paths import IMAGE_SUFFIXES
from edge.core.preprocess import preprocess_face

VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mjpeg"}


def iter_frames(path: Path, every: int = 1) -> Iterator[tuple[str, int, np.ndarray]]:
    """(file, frame index, BGR frame) for an image, a video, or every image/video in a folder."""
    if not path.exists():
        raise UserError(f"{path} does not exist; fix: pass an image, a video file or a folder of them")
    files = sorted(f for f in path.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES) if path.is_dir() else [path]
    if path.is_dir() and not files:
        raise UserError(f"{path} holds no images or videos ({', '.join(sorted(IMAGE_SUFFIXES | VIDEO_SUFFIXES))})")
    for f in files:
        if f.suffix.lower() in VIDEO_SUFFIXES:
            cap = cv2.VideoCapture(str(f))
            if not cap.isOpened():
                raise UserError(f"cannot open video {f}; it is corrupt or its codec is not supported by OpenCV")
            i = 0
            ok, frame = cap.read()
            if not ok:
                raise UserError(f"video {f} has no readable frames; it is corrupt or empty")
            while ok:
                if i % every == 0:
                    yield str(f), i, frame
                i += 1
                ok, frame = cap.read()
            cap.release()
        else:
            frame = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if frame is None:
                raise UserError(f"cannot read image {f}; it is corrupt or not an image")
            yield str(f), 0, frame


def analyze(path: Path, classifier, detector, every: int = 1) -> Iterator[dict]:
    for file, idx, frame in iter_frames(path, every):
        h, w = frame.shape[:2]
        for face_i, box in enumerate(detector.detect(frame)):
            pred = classifier.classify(preprocess_face(frame, box, classifier.spec))
            label, conf = pred.top
            yield {"file": file, "frame": idx, "face": face_i, "box": [round(v, 4) for v in box.normalised(w, h)],
                   "detector_score": round(box.score, 4), "emotion": label, "confidence": round(conf, 4),
                   "probabilities": pred.as_dict(), "model": classifier.name}


def format_line(rec: dict, as_json: bool) -> str:
    if as_json:
        return json.dumps(rec)
    probs = " ".join(f"{k}={v:.2f}" for k, v in rec["probabilities"].items())
    return f"{rec['file']}#{rec['frame']} face {rec['face']}: {rec['emotion']} ({rec['confidence']:.2f})  {probs}"
