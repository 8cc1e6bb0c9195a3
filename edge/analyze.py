"""`emotion-edge analyze`: emotions of the faces in images, folders and video files, one line per face."""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from edge.core.errors import UserError
from edge.core.imageio import read_image
from edge.core.metrics import confusion_matrix, from_confusion
from edge.core.paths import IMAGE_SUFFIXES
from edge.core.preprocess import preprocess_face
from edge.core.types import Box
from edge.draw import FaceMark, annotate
from edge.track import Tracker

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mjpeg"}


class Skipped:
    """Files analyze could not read: each warned about once, counted for the closing summary."""

    def __init__(self) -> None:
        self.files: list[tuple[str, str]] = []

    def add(self, f: Path, why: str) -> None:
        self.files.append((str(f), why))
        log.warning("skipping %s: %s", f, why)


def folder_files(root: Path) -> list[Path]:
    """Images and videos under `root`, sorted, following linked folders (each real folder read once, by the first
    path to it in name order)."""
    seen: set[str] = set()
    out = []
    for folder, dirs, names in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs.sort()  # which of two links to one folder is read does not depend on the file system's order
        out += [
            Path(folder, n)
            for n in names
            if Path(n).suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES and os.path.isfile(os.path.join(folder, n))
        ]
    return sorted(out)


def iter_frames(
    path: Path, every: int = 1, skipped: Skipped | None = None, only: tuple[str, ...] | None = None
) -> Iterator[tuple[str, int, np.ndarray]]:
    """(file, frame index, BGR frame) for an image, a video, or every image/video in a folder.

    `only`: read just the files under these subfolders of the folder. A single unreadable file is a UserError; in a
    folder, unreadable files are skipped and recorded."""
    if not path.exists():
        raise UserError(f"{path} does not exist; fix: pass an image, a video file or a folder of them")
    if path.is_dir():
        files = folder_files(path)
        if not files:
            raise UserError(f"{path} holds no images or videos ({', '.join(sorted(IMAGE_SUFFIXES | VIDEO_SUFFIXES))})")
        if only is not None:
            files = [f for f in files if (rel := f.relative_to(path).parts)[0] in only and len(rel) > 1]
    elif not stat.S_ISREG(path.stat().st_mode):
        raise UserError(f"{path} is not a regular file; fix: pass an image, a video file or a folder")
    else:
        files = [path]
    skipped = skipped or Skipped()

    def bad(f: Path, why: str) -> None:
        if not path.is_dir():
            kind = "video" if f.suffix.lower() in VIDEO_SUFFIXES else "image"
            raise UserError(f"cannot read {kind} {f}: {why}")
        skipped.add(f, why)

    for f in files:
        if f.suffix.lower() in VIDEO_SUFFIXES:
            cap = cv2.VideoCapture(str(f))
            ok, frame = cap.read() if cap.isOpened() else (False, None)
            if not ok:
                cap.release()
                bad(f, "a video OpenCV cannot open or read (corrupt, empty or an unsupported codec)")
                continue
            i = 0
            while ok and frame is not None:
                if i % every == 0:
                    yield str(f), i, frame
                i += 1
                ok, frame = cap.read()
            cap.release()
        else:
            img, why = read_image(f)
            if img is None:
                bad(f, why)
                continue
            yield str(f), 0, img


def analyze_frames(
    path: Path,
    classifier,
    detector,
    every: int = 1,
    skipped: Skipped | None = None,
    only: tuple[str, ...] | None = None,
) -> Iterator[tuple[str, int, np.ndarray, list[tuple[Box, dict]]]]:
    """Per analysed frame: (file, frame index, frame, [(box, record)]), one record per face."""
    # "Already a crop" (--no-detect) must be cropped exactly as training and `evaluate` crop dataset faces: the frame
    # itself is the face (box None), not a whole-frame box that would get the detector's margin and offset.
    whole_frame = detector.name == "full-frame"
    for file, idx, frame in iter_frames(path, every, skipped, only):
        h, w = frame.shape[:2]
        faces = []
        for face_i, box in enumerate(detector.detect(frame)):
            pred = classifier.classify(preprocess_face(frame, None if whole_frame else box, classifier.spec))
            label, conf = pred.top
            rec = {
                "file": file,
                "frame": idx,
                "face": face_i,
                "box": [round(v, 4) for v in box.normalised(w, h)],
                "detector_score": round(box.score, 4),
                "emotion": label,
                "confidence": round(conf, 4),
                "probabilities": pred.as_dict(),
                "model": classifier.name,
            }
            faces.append((box, rec))
        yield file, idx, frame, faces


def analyze(path: Path, classifier, detector, every: int = 1, skipped: Skipped | None = None) -> Iterator[dict]:
    """One record per face (file, frame, box, emotion, confidence, probabilities)."""
    for _, _, _, faces in analyze_frames(path, classifier, detector, every, skipped):
        for _, rec in faces:
            yield rec


class Annotator:
    """`analyze --annotate OUTDIR`: an annotated copy of every image (same name and size) and, for every video,
    one annotated MJPG video `<name>.annotated.avi` of the analysed frames, faces numbered by track."""

    def __init__(self, outdir: Path, root: Path, labels: tuple[str, ...], every: int = 1):
        try:
            outdir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(
                f"cannot create {outdir} ({exc.strerror}); fix: pass a writable --annotate folder"
            ) from None
        self.outdir, self.root, self.labels, self.every = outdir, root, labels, every
        self._video: tuple[str, cv2.VideoWriter, Tracker] | None = None
        self.written: list[Path] = []

    def _target(self, file: str, suffix: str | None = None) -> Path:
        rel = Path(file).relative_to(self.root) if self.root.is_dir() else Path(Path(file).name)
        out = self.outdir / rel
        if suffix:
            out = out.with_name(out.stem + suffix)
        out.parent.mkdir(parents=True, exist_ok=True)
        return out

    def add(self, file: str, idx: int, frame: np.ndarray, faces: list[tuple[Box, dict]]) -> None:
        video = Path(file).suffix.lower() in VIDEO_SUFFIXES
        tracks: dict[int, int] = {}
        if video:
            writer, tracker = self._writer(file, frame)
            probs = [np.array(list(rec["probabilities"].values()), np.float32) for _, rec in faces]
            tracker.update(idx / 30.0, [b for b, _ in faces], list(probs))
            tracks = {id(t.box): t.id for t in tracker.tracks.values()}
        marks = [
            FaceMark(box, rec["emotion"], rec["confidence"], rec["probabilities"], tracks.get(id(box)))
            for box, rec in faces
        ]
        out = annotate(frame, marks)
        if video:
            writer.write(out)
        else:
            target = self._target(file)
            if not cv2.imwrite(str(target), out):
                raise UserError(f"cannot write {target}; fix: check the --annotate folder is writable")
            self.written.append(target)

    def _writer(self, file: str, frame: np.ndarray) -> tuple[cv2.VideoWriter, Tracker]:
        if self._video is None or self._video[0] != file:
            self.close()
            cap = cv2.VideoCapture(file)
            fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
            cap.release()
            target = self._target(file, ".annotated.avi")
            h, w = frame.shape[:2]
            writer = cv2.VideoWriter(str(target), cv2.VideoWriter.fourcc(*"MJPG"), max(1.0, fps / self.every), (w, h))
            if not writer.isOpened():
                raise UserError(f"cannot write video {target}; fix: check the --annotate folder is writable")
            self.written.append(target)
            self._video = (file, writer, Tracker(self.labels, smoothing_s=0.0, min_duration_s=0.0))
        return self._video[1], self._video[2]

    def close(self) -> None:
        if self._video is not None:
            self._video[1].release()
            self._video = None


def format_line(rec: dict, as_json: bool) -> str:
    if as_json:
        return json.dumps(rec)
    probs = " ".join(f"{k}={v:.2f}" for k, v in rec["probabilities"].items())
    return f"{rec['file']}#{rec['frame']} face {rec['face']}: {rec['emotion']} ({rec['confidence']:.2f})  {probs}"


NO_FACE = "(no face)"


class Score:
    """`analyze DIR --score`: how the pipeline does on a labelled folder, DIR/<label>/<images or videos>.

    Each image (or analysed video frame) is one sample whose label is its subfolder's name (or the label `--map`
    gives that name, as in the trainer); its prediction is that of its largest face, as the trainer picks a photo's
    face; a sample in which no face was found counts as wrong (the `(no face)` column), so accuracy and macro-F1
    measure what a user of the whole pipeline gets. Subfolders that name no label of the model are not read, and are
    listed."""

    def __init__(self, root: Path, labels: tuple[str, ...], mapping: dict[str, str] | None = None):
        if not root.is_dir():
            raise UserError(f"--score needs a folder of class folders ({root} is a file); fix: pass DIR/<label>/...")
        self.mapping = mapping or {}
        wrong = sorted(f"{k}={v}" for k, v in self.mapping.items() if v not in labels)
        if wrong:
            raise UserError(f"--map {', '.join(wrong)}: not a label of this model; fix: map onto {', '.join(labels)}")
        subdirs = sorted(d.name for d in root.iterdir() if d.is_dir())
        self.labels = labels
        self.scored = tuple(d for d in subdirs if self.mapping.get(d, d) in labels)
        if not self.scored:
            raise UserError(
                f"{root} has no folder named after a label of this model ({', '.join(labels)}); "
                "fix: put each class's images in DIR/<label>/, or name its folder with --map FOLDER=LABEL"
            )
        self.not_scored = {d: len(folder_files(root / d)) for d in subdirs if d not in self.scored}
        self.root = root
        self.true: list[int] = []
        self.pred: list[int] = []

    def add(self, file: str, faces: list[tuple[Box, dict]]) -> None:
        folder = Path(file).relative_to(self.root).parts[0]
        self.true.append(self.labels.index(self.mapping.get(folder, folder)))
        if not faces:
            self.pred.append(len(self.labels))
            return
        _, rec = max(faces, key=lambda f: f[0].width * f[0].height)
        self.pred.append(self.labels.index(rec["emotion"]))

    def summary(self) -> dict:
        n = len(self.labels)
        if not self.true:
            raise UserError(f"no readable image under the label folders of {self.root}; fix: check the files")
        m = from_confusion(confusion_matrix(np.array(self.true), np.array(self.pred), n + 1), (*self.labels, NO_FACE))
        per_class = {k: m["per_class"][k] for k in self.labels}
        true, pred = np.array(self.true), np.array(self.pred)
        present = {self.mapping.get(d, d) for d in self.scored}
        found = pred < n
        return {
            "samples": len(true),
            "accuracy": round(m["accuracy"], 4),
            "macro_f1": round(float(np.mean([c["f1"] for k, c in per_class.items() if k in present])), 4),
            "no_face": int((~found).sum()),
            "accuracy_where_found": round(float((true[found] == pred[found]).mean()), 4) if found.any() else None,
            "per_class": {
                k: {
                    "samples": per_class[k]["support"],
                    "no_face": int(((true == i) & ~found).sum()),
                    "recall": round(per_class[k]["recall"], 4),
                    "f1": round(per_class[k]["f1"], 4),
                }
                for i, k in enumerate(self.labels)
                if k in present
            },
            "confusion_matrix": m["confusion_matrix"],
            "confusion_matrix_axes": "rows = true class, columns = predicted class, in `labels` order",
            "labels": [*self.labels, NO_FACE],
            "not_scored": self.not_scored,
        }


def format_score(summary: dict, header: dict) -> str:
    lines = [" ".join(f"{k}={v}" for k, v in header.items())]
    lines.append(f"{'label':<12} {'samples':>7} {'no face':>7} {'recall':>7} {'F1':>7}")
    for k, c in summary["per_class"].items():
        lines.append(f"{k:<12} {c['samples']:>7} {c['no_face']:>7} {c['recall']:>7.4f} {c['f1']:>7.4f}")
    found = summary["accuracy_where_found"]
    lines.append(
        f"accuracy {summary['accuracy']:.4f}  macro-F1 {summary['macro_f1']:.4f}  over {summary['samples']} samples "
        f"(no face in {summary['no_face']}, counted wrong; accuracy where a face was found "
        f"{'-' if found is None else f'{found:.4f}'})"
    )
    if summary["not_scored"]:
        lines.append(
            "not scored (no such label): " + ", ".join(f"{k} ({v} files)" for k, v in summary["not_scored"].items())
        )
    return "\n".join(lines)
