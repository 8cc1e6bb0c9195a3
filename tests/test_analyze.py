"""emotion-edge analyze on real images, folders and video files."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from tests.conftest import ROOT, tight_crop


def _analyze(edge_models, *args):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EMOTION_EDGE_MODELS": str(edge_models[0])}
    return subprocess.run(
        [sys.executable, "-m", "edge", "analyze", *map(str, args), "--model", edge_models[1]],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_image_with_detection_json(tmp_path, edge_models, astronaut):
    path = tmp_path / "astronaut.png"
    cv2.imwrite(str(path), astronaut)
    proc = _analyze(edge_models, path, "--json")
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(x) for x in proc.stdout.splitlines()]
    assert len(lines) == 1
    rec = lines[0]
    assert rec["file"] == str(path) and rec["frame"] == 0 and rec["emotion"] in rec["probabilities"]
    x0, y0, x1, y1 = rec["box"]
    assert 0.3 < (x0 + x1) / 2 < 0.5 and 0.15 < (y0 + y1) / 2 < 0.3


def test_folder_no_detect(tmp_path, edge_models):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((48, 48), 60 * i, np.uint8))
    proc = _analyze(edge_models, tmp_path, "--no-detect", "--json")
    assert proc.returncode == 0, proc.stderr
    recs = [json.loads(x) for x in proc.stdout.splitlines()]
    assert [r["file"].rsplit("/", 1)[1] for r in recs] == ["0.png", "1.png", "2.png"]
    assert all(r["box"] == [0.0, 0.0, 1.0, 1.0] for r in recs)


def test_video_every_nth_frame(edge_models, blink_clip):
    proc = _analyze(edge_models, blink_clip, "--every", "6", "--json")
    assert proc.returncode == 0, proc.stderr
    frames = {json.loads(x)["frame"] for x in proc.stdout.splitlines()}
    assert frames and all(f % 6 == 0 for f in frames) and all(f % 24 < 12 for f in frames)  # faces only when shown


def test_bad_paths_are_one_line(tmp_path, edge_models):
    proc = _analyze(edge_models, tmp_path / "missing.jpg")
    errors = [line for line in proc.stderr.splitlines() if line.startswith("emotion-edge: error:")]
    assert (
        proc.returncode == 2 and len(errors) == 1 and "does not exist" in errors[0] and "Traceback" not in proc.stderr
    )
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"nope")
    proc = _analyze(edge_models, bad)
    assert proc.returncode == 2 and "cannot read image" in proc.stderr


def _png_header(path, width: int, height: int) -> None:
    """A PNG whose header claims width x height (its pixel data is missing): decoding it would allocate the lot."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk)))


def test_folder_skips_bad_files_and_counts_them(tmp_path, edge_models, astronaut):
    import os

    folder = tmp_path / "mixed"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), astronaut)
    (folder / "b.jpg").write_bytes(b"not an image")
    os.mkfifo(folder / "c.jpg")  # never opened: not a regular file
    _png_header(folder / "d.png", 60000, 60000)
    cv2.imwrite(str(folder / "e.png"), astronaut)
    proc = _analyze(edge_models, folder, "--json")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    files = {json.loads(line)["file"].rsplit("/", 1)[-1] for line in proc.stdout.splitlines()}
    assert files == {"a.png", "e.png"}  # the folder went on past the bad files
    assert "skipped 2 unreadable file(s)" in proc.stderr and "larger than" in proc.stderr


def test_huge_image_header_is_refused_not_decoded(tmp_path, edge_models):
    big = tmp_path / "big.png"
    _png_header(big, 20000, 20000)
    proc = _analyze(edge_models, big)
    assert proc.returncode == 2 and "larger than" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def _shipped_models():
    from edge.core.manifest import Manifest
    from edge.core.paths import models_dir

    m = Manifest(models_dir())
    return [
        n for n in m.names if ((m.entry(n).data.get("metrics") or {}).get("int8") or {}).get("accuracy") is not None
    ]


@pytest.mark.parametrize("model", _shipped_models())
def test_public_cli_agrees_with_the_manifest(fer_root, model):
    """`analyze --no-detect --score` over the test split gives the manifest's accuracy and macro-F1 (from `evaluate`)
    to the 4th decimal: the public "already a crop" path preprocesses exactly as training and evaluation do, and the
    score reads each class folder the manifest counted."""
    from edge.core.manifest import Manifest
    from edge.core.paths import models_dir

    entry = Manifest(models_dir()).entry(model)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "edge", "analyze", str(fer_root / "test"), "--no-detect", "--score", "--json"]
    proc = subprocess.run([*cmd, "--model", model], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    score = json.loads(proc.stdout)
    metrics = entry.data["metrics"]
    assert score["samples"] == metrics["int8"].get("n", metrics.get("n")) and score["no_face"] == 0
    assert score["accuracy"] == metrics["int8"]["accuracy"]
    assert score["macro_f1"] == metrics["int8"]["macro"]["f1"]
    assert set(score["per_class"]) == set(entry.labels) and score["pad"] is None


def _score(edge_models, folder, *args):
    proc = _analyze(edge_models, folder, "--score", "--json", *args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_score_counts_images_without_a_face_and_skips_other_folders(tmp_path, edge_models, astronaut):
    """Each image is one sample labelled by its folder; no face found counts as wrong; folders that are not the
    model's labels are not read but listed; `--pad 0` misses the close-up that the default pad finds."""
    from edge.detect import make_detector

    face = make_detector("blazeface-short").detect(astronaut)[0]
    (tmp_path / "happy").mkdir()
    (tmp_path / "sad").mkdir()
    (tmp_path / "not-a-label").mkdir()
    cv2.imwrite(str(tmp_path / "happy" / "whole.png"), astronaut)
    cv2.imwrite(str(tmp_path / "happy" / "close-up.png"), tight_crop(astronaut, face, 0.1))
    cv2.imwrite(str(tmp_path / "sad" / "blank.png"), np.full((120, 120, 3), 127, np.uint8))
    cv2.imwrite(str(tmp_path / "not-a-label" / "x.png"), astronaut)
    lines = [json.loads(x) for x in _analyze(edge_models, tmp_path / "happy", "--json").stdout.splitlines()]
    assert sorted(r["file"].rsplit("/", 1)[1] for r in lines) == ["close-up.png", "whole.png"]
    right = sum(r["emotion"] == "happy" for r in lines)

    score = _score(edge_models, tmp_path)
    assert score["samples"] == 3 and score["no_face"] == 1 and score["not_scored"] == {"not-a-label": 1}
    assert score["per_class"]["happy"] == {**score["per_class"]["happy"], "samples": 2, "no_face": 0}
    assert score["per_class"]["sad"]["samples"] == 1 and score["per_class"]["sad"]["recall"] == 0.0
    assert score["accuracy"] == round(right / 3, 4) and score["pad"] == 0.25
    assert score["confusion_matrix"][score["labels"].index("sad")][-1] == 1  # the blank image: "(no face)"

    unpadded = _score(edge_models, tmp_path, "--pad", "0")
    assert unpadded["no_face"] == 2 and unpadded["per_class"]["happy"]["no_face"] == 1

    (tmp_path / "happy").rename(tmp_path / "feliz")  # a folder named otherwise, labelled by --map as in the trainer
    mapped = _score(edge_models, tmp_path, "--map", "feliz=happy")
    assert {k: v for k, v in mapped.items() if k != "path"} == {k: v for k, v in score.items() if k != "path"}
    (tmp_path / "feliz").rename(tmp_path / "happy")

    text = _analyze(edge_models, tmp_path, "--score")
    assert text.returncode == 0 and "no face in 1, counted wrong" in text.stdout
    assert "not-a-label (1 files)" in text.stdout


def test_score_mistakes_are_one_line(tmp_path, edge_models, astronaut):
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), astronaut)
    (tmp_path / "cats").mkdir()
    cv2.imwrite(str(tmp_path / "cats" / "b.png"), astronaut)
    for args, says in (
        ((image, "--score"), "needs a folder of class folders"),
        ((tmp_path, "--score"), "no folder named after a label"),
        ((tmp_path, "--pad", "2"), "--pad 2.0 is out of range"),
        ((tmp_path, "--score", "--map", "cats=kitten"), "--map cats=kitten: not a label of this model"),
        ((tmp_path, "--score", "--map", "cats"), "is not FOLDER=LABEL"),
        ((tmp_path, "--map", "cats=happy"), "add --score"),
    ):
        proc = _analyze(edge_models, *args)
        errors = [line for line in proc.stderr.splitlines() if line.startswith("emotion-edge: error:")]
        assert proc.returncode == 2 and len(errors) == 1 and says in errors[0], proc.stderr
        assert "Traceback" not in proc.stderr


def test_a_folder_reads_linked_folders_once(tmp_path, edge_models):
    """Linked class folders are read (a dataset assembled from links), each real folder once, loops ended."""
    real = tmp_path / "real"
    real.mkdir()
    for i in range(2):
        cv2.imwrite(str(real / f"{i}.png"), np.full((48, 48), 90 * i, np.uint8))
    view = tmp_path / "view"
    view.mkdir()
    (view / "happy").symlink_to(real, target_is_directory=True)
    (view / "again").symlink_to(real, target_is_directory=True)
    (real / "loop").symlink_to(view, target_is_directory=True)
    proc = _analyze(edge_models, view, "--no-detect", "--json")
    assert proc.returncode == 0, proc.stderr
    names = sorted(json.loads(x)["file"].split("/view/")[1] for x in proc.stdout.splitlines())
    assert names == ["again/0.png", "again/1.png"]
