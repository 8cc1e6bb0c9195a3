"""`emotion-trainer robustness`: what each camera effect does to a face, and the shipped model scored under them
through the device's classifier (its clean row is the manifest's number)."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

from edge.core.errors import UserError
from trainer.robustness import CORRUPTIONS, NAMES, corrupt


@pytest.fixture(scope="module")
def face(astronaut) -> np.ndarray:
    """The astronaut's face as a 96-px crop, BGR with three equal channels as OpenCV reads a grey FER2013 file."""
    grey = cv2.cvtColor(astronaut[20:220, 130:330], cv2.COLOR_BGR2GRAY)
    return cv2.cvtColor(cv2.resize(grey, (96, 96), interpolation=cv2.INTER_AREA), cv2.COLOR_GRAY2BGR)


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:  # a shrunk face, compared at the size the model will see it from
        a = cv2.resize(a, b.shape[1::-1], interpolation=cv2.INTER_LINEAR)
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())


@pytest.mark.parametrize("name", NAMES)
def test_each_corruption_changes_the_face_more_at_each_severity(face, name):
    outs = [corrupt(face, name, s, index=3) for s in (1, 2, 3)]
    for out in outs:
        assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
        assert (out[:, :, 0] == out[:, :, 2]).all(), "a grey face stays grey"
    d = [_distance(out, face) for out in outs]
    assert 0 < d[0] < d[1] < d[2], d
    assert np.array_equal(outs[1], corrupt(face, name, 2, index=3)), "repeatable"


def test_each_corruption_does_what_its_name_says(face):
    grey = face[:, :, 0].astype(np.float32)
    flat = np.full((64, 64, 3), 128, np.uint8)

    def sharpness(img):
        return float(cv2.Laplacian(img[:, :, 0], cv2.CV_32F).var())

    assert sharpness(corrupt(face, "blur", 3, 0)) < 0.25 * sharpness(face)
    noisy = corrupt(flat, "noise", 2, 0).astype(np.float32) - 128
    assert abs(noisy.std() - 16) < 1.5 and noisy.mean() == pytest.approx(0, abs=1.0)
    assert not np.array_equal(corrupt(flat, "noise", 2, 0), corrupt(flat, "noise", 2, 1)), "each image its own field"
    assert corrupt(face, "small", 3, 0).shape[:2] == (16, 16)
    assert corrupt(flat[:8, :8], "small", 3, 0).shape[:2] == (8, 8), "a face already that small is left alone"
    assert corrupt(face, "dark", 1, 0)[:, :, 0].mean() == pytest.approx(0.5 * grey.mean(), abs=1.0)
    assert (corrupt(face, "bright", 3, 0) == 255).mean() > (face == 255).mean() + 0.3, "clipped at white"
    low = corrupt(face, "contrast", 2, 0)[:, :, 0].astype(np.float32)
    assert low.std() == pytest.approx(0.4 * grey.std(), rel=0.05) and low.mean() == pytest.approx(grey.mean(), abs=1)
    # a shifted box moves the face: the image's centre of mass moves by about the level (of a 96-px side)
    dot = np.zeros((96, 96, 3), np.uint8)
    dot[44:52, 44:52] = 255
    moved = corrupt(dot, "shift", 2, 0)[:, :, 0].astype(np.float32)
    ys, xs = np.indices(moved.shape)
    cy, cx = (moved * ys).sum() / moved.sum(), (moved * xs).sum() / moved.sum()
    assert np.hypot(cy - 47.5, cx - 47.5) == pytest.approx(0.1 * 96, abs=0.5)


def test_bad_names_and_severities_are_user_errors(face):
    with pytest.raises(UserError, match="unknown corruption"):
        corrupt(face, "fog", 1, 0)
    with pytest.raises(UserError, match="severity"):
        corrupt(face, "blur", 4, 0)
    assert len(NAMES) == len(set(NAMES)) == len(CORRUPTIONS)


def test_cli_clean_row_is_the_manifest_and_the_report_is_written(run, fer_root, tmp_path):
    """The public command on the whole test split: its clean row equals `evaluate`'s numbers in the manifest (same
    faces, same int8 path), and a corruption moves them."""
    from edge.core.manifest import Manifest
    from edge.core.paths import models_dir
    from trainer.specs import PRODUCTION_MODEL

    models = tmp_path / "models"
    shutil.copytree(models_dir(), models)
    proc = run(
        "trainer", "robustness", fer_root, "--split", "test", "--corruptions", "shift", "--models", models, "--json"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(proc.stdout)
    metrics = Manifest(models_dir()).entry(PRODUCTION_MODEL).data["metrics"]
    assert r["model"] == PRODUCTION_MODEL and r["split"] == "test" and r["n"] == metrics["n"]
    assert r["clean"] == {"accuracy": metrics["int8"]["accuracy"], "macro_f1": metrics["int8"]["macro"]["f1"]}
    [row] = r["corruptions"]
    assert row["corruption"] == "shift" and [lv["severity"] for lv in row["levels"]] == [1, 2, 3]
    assert row["levels"][2]["accuracy"] != r["clean"]["accuracy"]
    assert r["mean_corrupted_accuracy"] == pytest.approx(np.mean([lv["accuracy"] for lv in row["levels"]]), abs=1e-4)
    saved = json.loads((models / "reports" / f"robustness-{PRODUCTION_MODEL}.json").read_text())
    assert saved == r


def test_cli_mistakes_are_one_line(run, fer_root, tmp_path):
    from edge.core.paths import models_dir

    models = tmp_path / "models"
    shutil.copytree(models_dir(), models)
    cases = [
        (["--corruptions", "fog"], "unknown corruption 'fog'"),
        (["--corruptions", ","], "--corruptions names none"),
        (["--faces", "detect"], "reads face crops"),
        (["--peer", "fer"], "'fer' package is not installed"),
    ]
    for args, needle in cases:
        proc = run("trainer", "robustness", fer_root, "--smoke", "--models", models, *args)
        assert proc.returncode == 2, proc.stderr
        errors = [line for line in proc.stderr.splitlines() if line.startswith("emotion-trainer: error:")]
        assert len(errors) == 1 and needle in errors[0] and "fix:" in errors[0], proc.stderr
        assert "Traceback" not in proc.stderr


def test_exposure_rows_match_the_recorded_choice(run, fer_root):
    """`emotion-trainer exposure` on val: its `off` and `stretch` rows are the clean scores `evaluate` recorded when
    it chose the normalisation (the manifest's `exposure_selection`, same bounds), so the alternatives beside them
    (equalising or standardising every face) are compared on the same footing; and it measures how far
    cv2.equalizeHist moves the same faces."""
    from edge.core.manifest import Manifest
    from edge.core.paths import models_dir

    manifest = Manifest(models_dir())
    scored = [
        n
        for n in ("binary-scratch", "binary-resnet", "multiclass4-scratch", "multiclass4-resnet")
        if "int8" in manifest.entry(n).data.get("exposure_selection", {})
    ]
    assert scored, "no shipped model records the val scores of its exposure choice"
    name = scored[0]
    selection = manifest.entry(name).data["exposure_selection"]
    proc = run("trainer", "exposure", name, fer_root, "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(proc.stdout)
    assert r["model"] == name and r["split"] == "val" and r["variant"] == "int8"
    assert r["bounds"] == [*selection["bounds"]["mean"], selection["bounds"]["min_std"]]
    alt = r["alternatives"]
    assert list(alt) == ["off", "stretch", "equalize", "standardize"]
    for row, choice in (("off", "off"), ("stretch", "on")):
        assert round(alt[row]["accuracy"] + alt[row]["macro_f1"], 4) == selection["int8"][choice]["clean_score"]
    assert alt["equalize"]["accuracy"] != alt["off"]["accuracy"], "equalising changes what the model sees"
    moves = r["equalizehist_moves"]
    assert moves["n"] == r["n"] and 0 <= moves["under_2_grey_levels"] <= moves["n"]
    assert moves["median_grey_levels"] > 0


def test_exposure_mistakes_are_one_line(run, fer_root):
    for args, needle in ((["--faces", "detect"], "reads face crops"), (["--split", "nope"], "nope")):
        proc = run("trainer", "exposure", "binary-resnet", fer_root, "--smoke", *args)
        assert proc.returncode == 2, proc.stderr
        errors = [line for line in proc.stderr.splitlines() if line.startswith("emotion-trainer: error:")]
        assert len(errors) == 1 and needle in errors[0] and "fix:" in errors[0], proc.stderr
        assert "Traceback" not in proc.stderr
