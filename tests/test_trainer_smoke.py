"""End to end with real TensorFlow and the real LiteRT interpreter: smoke train -> int8 export -> load -> evaluate."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge.classify import tta
from edge.classify.tflite import TFLiteClassifier
from edge.classify.tta import POLICIES as TTA_POLICIES
from edge.core.errors import ModelError, UserError
from edge.core.manifest import Manifest, sha256_file
from edge.core.preprocess import PreprocessSpec
from trainer.evaluate import choose_tta
from trainer.specs import SMOKE_PER_CLASS
from trainer.train import read_history

pytest.importorskip("tensorflow", reason="the trainer needs the 'train' extra (TensorFlow)")
pytestmark = pytest.mark.slow


def test_suite_outputs(suite):
    base, stdout = suite
    assert (base / "runs" / "backbone-pretrain" / "backbone.weights.h5").is_file()
    assert "binary-scratch int8" in stdout and "multiclass3-resnet int8" in stdout
    manifest = Manifest(base / "models")
    assert set(manifest.names) == {"binary-scratch", "multiclass3-resnet"}
    for name in manifest.names:
        entry = manifest.entry(name)
        m = entry.data["metrics"]
        assert m["split"] == "test" and m["n"] == SMOKE_PER_CLASS * len(entry.labels)
        for v in ("int8", "float32"):
            assert 0.0 <= m[v]["accuracy"] <= 1.0
            assert np.array(m[v]["confusion_matrix"]).sum() == m["n"]
            assert set(m[v]["per_class"]) == set(entry.labels)
        assert 0.0 <= m["int8_float_agreement"] <= 1.0
        assert entry.data["latency_ms"]["int8"]["p50"] > 0
        assert entry.variant("int8")["input"] == {
            "shape": [1, 100, 100, 3],
            "dtype": "uint8",
            "scale": 1.0,
            "zero_point": 0,
        }
        assert entry.variant("int8")["output"]["dtype"] == "uint8"
        assert entry.variant("float32")["input"]["dtype"] == "float32"
        report = json.loads((base / "models" / "reports" / f"{name}.json").read_text())
        assert report["metrics"] == m and len(report["history"]) >= 1
        # the val score a candidate is judged by: the calibration's held-out gain, not its fitted "after"
        sel = entry.data["calibration_selection"]
        assert sel["split"] == "val" and abs(sel["judged"] - sel["before"] - sel["held_out_gain"]) <= 1.5e-4
        if entry.data["calibration"] is None:
            assert sel["held_out_gain"] == 0.0 and sel["judged"] == sel["before"] == sel["after"]
    resnet = manifest.entry("multiclass3-resnet").data
    assert resnet["labels"] == ["happy", "sad", "surprise"]
    assert any(layer["type"] == "Add" for layer in resnet["architecture"]["layers"])


def test_device_classifier_reproduces_reported_accuracy(suite, fer_root):
    """The exported int8 model, run by the device's classifier, gives exactly the manifest's accuracy."""
    from trainer.dataset import load_split

    base, _ = suite
    clf = TFLiteClassifier.from_manifest("binary-scratch", root=base / "models")
    data = load_split(fer_root, "test", clf.labels, clf.spec, per_class_limit=SMOKE_PER_CLASS)
    pred = np.array([np.argmax(clf.probabilities(x)) for x in data.x])
    acc = float((pred == data.y).mean())
    assert acc == pytest.approx(
        Manifest(base / "models").entry("binary-scratch").data["metrics"]["int8"]["accuracy"], abs=1e-4
    )
    p = clf.classify(data.x[0])
    assert p.labels == ("happy", "sad") and abs(sum(p.probs) - 1.0) < 1e-5


def _copy_models(suite, tmp_path):
    base, _ = suite
    dst = tmp_path / "models"
    shutil.copytree(base / "models", dst)
    return dst


def test_tampered_model_is_refused(suite, tmp_path):
    root = _copy_models(suite, tmp_path)
    path = root / "binary-scratch.int8.tflite"
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(ModelError, match="does not match its manifest") as exc:
        TFLiteClassifier.from_manifest("binary-scratch", root=root)
    assert "\n" not in str(exc.value)


def _edit(root, name, fn):
    data = json.loads((root / "manifest.json").read_text())
    fn(data["models"][name])
    (root / "manifest.json").write_text(json.dumps(data))


def test_label_mismatch_is_refused(suite, tmp_path):
    root = _copy_models(suite, tmp_path)
    _edit(root, "binary-scratch", lambda e: e.update(labels=["happy", "sad", "surprise"]))
    with pytest.raises(ModelError, match="not the ones it was exported with"):  # the labels_digest export recorded
        TFLiteClassifier.from_manifest("binary-scratch", root=root)


def test_shape_mismatch_is_refused(suite, tmp_path):
    root = _copy_models(suite, tmp_path)
    _edit(root, "binary-scratch", lambda e: e["variants"]["int8"]["input"].update(shape=[1, 64, 64, 3]))
    with pytest.raises(ModelError, match="input shape is"):
        TFLiteClassifier.from_manifest("binary-scratch", root=root)
    root2 = _copy_models(suite, tmp_path / "b")
    _edit(root2, "binary-scratch", lambda e: e["preprocess"].update(size=64))
    with pytest.raises(ModelError, match="does not match its preprocessing"):
        TFLiteClassifier.from_manifest("binary-scratch", root=root2)


def test_corrupt_model_file_is_a_one_line_error(tmp_path):
    from edge.core.runtime import make_interpreter

    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a flatbuffer" * 10)
    with pytest.raises(ModelError, match="could not be loaded") as exc:
        make_interpreter(bad)
    assert "\n" not in str(exc.value)


def test_unknown_model_name(suite):
    base, _ = suite
    with pytest.raises(ModelError, match="known: binary-scratch, multiclass3-resnet"):
        Manifest(base / "models").entry("multiclass9-resnet")


def test_flip_tta_averages_face_and_mirror(suite, tmp_path):
    root = _copy_models(suite, tmp_path)
    plain = TFLiteClassifier.from_manifest("binary-scratch", root=root)
    _edit(root, "binary-scratch", lambda e: e.update(tta="flip"))
    flip = TFLiteClassifier.from_manifest("binary-scratch", root=root)
    face = np.random.default_rng(1).integers(0, 256, plain.spec.input_shape, dtype=np.uint8)
    expected = plain.probabilities(face) + plain.probabilities(np.ascontiguousarray(face[:, ::-1]))
    np.testing.assert_allclose(flip.probabilities(face), expected / expected.sum(), atol=1e-6)
    m = Manifest(suite[0] / "models").entry("binary-scratch").data
    assert m["tta"] in TTA_POLICIES and m["tta_selection"]["split"] == "val"
    assert set(m["tta_selection"]["int8_accuracy"]) == set(TTA_POLICIES)  # every policy was tried on val
    assert m["tta"] == choose_tta(m["tta_selection"]["int8_accuracy"])


def test_zoom_flip_tta_averages_six_views_in_one_call_or_six(suite, tmp_path, astronaut):
    """The "zoom-flip" policy averages the face scaled by 1, 1.1 and 1/1.1 about its centre, each with its mirror;
    the batched path (one interpreter call for several faces) gives what one call per view gives."""
    import cv2

    from edge.core.preprocess import preprocess_face
    from edge.core.types import Box

    root = _copy_models(suite, tmp_path)
    plain = TFLiteClassifier.from_manifest("binary-scratch", root=root)
    _edit(root, "binary-scratch", lambda e: e.update(tta="zoom-flip"))
    zoomed = TFLiteClassifier.from_manifest("binary-scratch", root=root)
    face = preprocess_face(astronaut, Box(170, 40, 320, 260), plain.spec)
    side = face.shape[0]
    big = int(round(side * 1.1))
    o = (big - side) // 2
    zoom_in = cv2.resize(face, (big, big), interpolation=cv2.INTER_LINEAR)[o : o + side, o : o + side]
    views = tta.views(face, "zoom-flip")
    assert len(views) == 6 and np.array_equal(views[0], face) and np.array_equal(views[1], face[:, ::-1])
    assert np.abs(views[2].astype(int) - zoom_in.reshape(face.shape)).mean() < 4  # a 1.1 zoom into the centre
    assert np.array_equal(views[3], views[2][:, ::-1]) and np.array_equal(views[5], views[4][:, ::-1])
    assert np.array_equal(views[4][0, 0], face[0, 0])  # the 1/1.1 view: border replicated, no black frame
    expected = np.sum([plain.probabilities(v) for v in views], axis=0)
    np.testing.assert_allclose(zoomed.probabilities(face), expected / expected.sum(), atol=1e-6)
    others = [preprocess_face(astronaut, Box(150 + 9 * k, 50, 330, 250), plain.spec) for k in range(3)]
    for a, b in zip(zoomed.probabilities_batch(others), [zoomed.probabilities(f) for f in others], strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    _edit(root, "binary-scratch", lambda e: e.update(tta="zoom"))
    with pytest.raises(ModelError, match=r"unknown test-time augmentation 'zoom' \(known: none, flip, zoom-flip\)"):
        TFLiteClassifier.from_manifest("binary-scratch", root=root)


def test_a_costlier_tta_must_beat_the_one_kept_by_the_margin_per_extra_pass():
    assert choose_tta({"none": 0.80, "flip": 0.8019, "zoom-flip": 0.8099}) == "none"  # 1 pass: 0.2 pt, 5: 1 pt
    assert choose_tta({"none": 0.80, "flip": 0.8021, "zoom-flip": 0.8100}) == "flip"  # 4 more passes than flip
    assert choose_tta({"none": 0.80, "flip": 0.8021, "zoom-flip": 0.8102}) == "zoom-flip"
    assert choose_tta({"none": 0.80, "flip": 0.79, "zoom-flip": 0.8101}) == "zoom-flip"


def test_exposure_is_chosen_on_val_by_its_rule_and_can_be_forced(suite, run, fer_root, tmp_path):
    """`evaluate` measured the training faces' exposure range and kept the normalisation only as its rule says on
    val; `--exposure on|off` force it, and the model's version follows (it changes the answers)."""
    from trainer.evaluate import EXPOSURE_CLEAN_TOLERANCE, EXPOSURE_GAIN

    base, _ = suite
    for name in Manifest(base / "models").names:
        e = Manifest(base / "models").entry(name).data
        sel = e["exposure_selection"]
        off, on = sel["int8"]["off"], sel["int8"]["on"]
        keep = (
            on["clean_score"] >= off["clean_score"] - EXPOSURE_CLEAN_TOLERANCE
            and on["mean_corrupted_accuracy"] > off["mean_corrupted_accuracy"] + EXPOSURE_GAIN
        )
        assert sel["split"] == "val" and sel["chosen"] == ("on" if keep else "off")
        bounds = [*sel["bounds"]["mean"], sel["bounds"]["min_std"]]
        assert 0 < bounds[0] <= bounds[1] < 255 and bounds[2] > 0
        assert e["preprocess"].get("exposure") == (bounds if keep else None)
    models = _copy_models(suite, tmp_path)
    common = [fer_root, "--smoke", "--runs", base / "runs", "--models", models, "--cache", base / "cache"]
    versions = {}
    for forced in ("on", "off"):
        proc = run("trainer", "evaluate", "binary-scratch", *common, "--exposure", forced)
        assert proc.returncode == 0, proc.stderr[-2000:]
        e = Manifest(models).entry("binary-scratch").data
        assert e["exposure_selection"]["chosen"] == forced and e["exposure_selection"]["forced"] is True
        assert ("exposure" in e["preprocess"]) == (forced == "on")
        versions[forced] = e["version"]
    assert versions["on"] != versions["off"]


def test_models_table_prints_the_manifest(suite, run, monkeypatch):
    """`emotion-edge models` (the README's table) shows each model's manifest numbers, TTA and training time."""
    base, _ = suite
    monkeypatch.setenv("EMOTION_EDGE_MODELS", str(base / "models"))
    proc = run("edge", "models")
    assert proc.returncode == 0, proc.stderr
    manifest = Manifest(base / "models")
    for name in manifest.names:
        e = manifest.entry(name).data
        line = next(ln for ln in proc.stdout.splitlines() if ln.startswith(name))
        assert (
            f"{e['metrics']['int8']['accuracy']:.4f}" in line and f"{e['metrics']['int8']['macro']['f1']:.4f}" in line
        )
        *_, epochs, minutes, version = line.split()
        assert line.split()[7] == e["tta"]  # the test-time augmentation the latency column includes
        assert epochs == str(e["training"]["epochs_run"]) and version == manifest.entry(name).version
        assert minutes == f"{e['training']['minutes_total']:.0f}"  # over every sitting of the run


def test_fine_tune_starts_from_the_pretrained_head(suite):
    """A resnet fine-tune's head starts as the six-class classifier restricted to its classes: before any training
    step it predicts exactly the pre-trained softmax renormalised over those classes."""
    import keras

    from edge.core.preprocess import PreprocessSpec
    from trainer.specs import get_spec, smoke
    from trainer.train import build_model, init_head_from_pretrain

    base, _ = suite
    pre_dir = base / "runs" / "backbone-pretrain"
    assert json.loads((base / "runs" / "multiclass3-resnet" / "train.json").read_text())["head_from_pretrain"] is True
    spec = smoke(get_spec("multiclass3-resnet"))
    shape = PreprocessSpec().input_shape
    model = build_model(spec, "fer-resnet", pre_dir / "backbone.weights.h5", shape)
    assert init_head_from_pretrain(model, pre_dir, spec.labels)
    pre = keras.models.load_model(str(pre_dir / "model.keras"), compile=False)
    pre_labels = json.loads((pre_dir / "train.json").read_text())["labels"]
    x = np.random.default_rng(0).integers(0, 256, size=(4, *shape)).astype(np.float32)
    full = pre.predict(x, verbose=0)[:, [pre_labels.index(c) for c in spec.labels]]
    np.testing.assert_allclose(model.predict(x, verbose=0), full / full.sum(axis=1, keepdims=True), atol=1e-5)
    assert not init_head_from_pretrain(model, base / "runs" / "binary-scratch", spec.labels)  # no head there


def test_random_erasing_blanks_one_grey_rectangle():
    from trainer.augment import random_erase

    y = random_erase(np.full((256, 100, 100, 3), 128.0, np.float32), np.random.default_rng(0), 0.5)
    changed = (y != 128.0).any(axis=(1, 2, 3))
    assert 90 < changed.sum() < 166  # p = 0.5 of 256 images, within ~5 standard deviations
    area = (y[changed] != 128.0).mean(axis=(1, 2, 3))
    assert area.min() > 0.005 and area.max() <= 0.26
    assert (y[..., 0] == y[..., 1]).all() and (y[..., 1] == y[..., 2]).all()  # grey stays grey
    for img in y[changed][:20]:  # the blanked pixels form one axis-aligned rectangle
        ys, xs = np.nonzero(img[..., 0] != 128.0)
        assert len(ys) == (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
    assert (random_erase(np.full((8, 10, 10, 3), 7.0, np.float32), np.random.default_rng(0), 0.0) == 7.0).all()


def test_camera_effects_degrade_like_a_camera_and_keep_the_face():
    from trainer.augment import camera_effects

    rng = np.random.default_rng(0)
    flat = camera_effects(np.full((32, 100, 100, 3), 128.0, np.float32), rng, 1.0)
    assert abs(flat.mean() - 128.0) < 2.0  # no brightness shift, no dark border from the blur's padding
    assert abs(flat[:, :3].mean() - flat[:, 40:60].mean()) < 2.0 and abs(flat[:, :, :3].mean() - 128.0) < 2.0
    assert np.abs(flat[..., 0] - flat[..., 1]).max() <= 2.0  # grey stays grey (JPEG's colour rounding aside)
    assert np.abs(flat[..., 1] - flat[..., 2]).max() <= 2.0
    edges = np.zeros((8, 100, 100, 3), np.float32)
    edges[:, :, ::2] = 255.0  # one-pixel stripes: what blur and JPEG smear first
    out = camera_effects(edges, rng, 1.0)
    assert np.abs(np.diff(out, axis=2)).mean() < 0.8 * np.abs(np.diff(edges, axis=2)).mean()
    assert (camera_effects(edges, rng, 0.0) == edges).all()


def test_a_wide_camera_range_goes_further_and_mild_draws_what_it_always_drew():
    """'wide' blurs and shrinks further than 'mild' on the same draws of which faces get an effect; 'mild' is the
    default everywhere (so runs before it resume the same), and a recipe records the range only when it is not."""
    from trainer.augment import CAMERA_RANGES, augment_batch, camera_effects
    from trainer.specs import Recipe

    stripes = np.zeros((16, 100, 100, 1), np.float32)
    stripes[:, :, ::2] = 255.0

    def detail(x):
        return float(np.abs(np.diff(x, axis=2)).mean())

    mild = camera_effects(stripes, np.random.default_rng(5), 1.0)
    assert (mild == camera_effects(stripes, np.random.default_rng(5), 1.0, "mild")).all()
    wide = camera_effects(stripes, np.random.default_rng(5), 1.0, "wide")
    assert detail(wide) < 0.5 * detail(mild) < detail(stripes)
    assert (camera_effects(stripes, np.random.default_rng(5), 0.0, "wide") == stripes).all()
    a = augment_batch(stripes, np.random.default_rng(9), 0.5, 0.3)
    assert (a == augment_batch(stripes, np.random.default_rng(9), 0.5, 0.3, "mild")).all()
    assert set(CAMERA_RANGES) == {"mild", "wide"} and CAMERA_RANGES["mild"].small is None
    assert "camera_range" not in Recipe().to_dict() and Recipe(camera_range="wide").to_dict()["camera_range"] == "wide"
    with pytest.raises(UserError, match="camera_range"):
        Recipe(camera_range="strong")


def test_train_records_a_wide_camera_range_and_a_later_stop(suite, run, fer_root, tmp_path):
    """`train --camera-range wide --stop-from 0.75 --mixup 0.2 --learning-rate 0.0005` trains with them and records
    each in the run's recipe (the rate in the lr column too); a stop outside the schedule, a negative mixup and a
    rate not above 0 are one line naming the fix."""
    base, _ = suite
    common = ["binary-scratch", fer_root, "--smoke", "--runs", tmp_path / "runs", "--cache", base / "cache"]
    more = ["--camera-range", "wide", "--stop-from", "0.75", "--mixup", "0.2", "--learning-rate", "0.0005"]
    proc = run("trainer", "train", *common, "--epochs", "1", *more)
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = json.loads((tmp_path / "runs" / "binary-scratch" / "train.json").read_text())
    assert info["recipe"]["camera_range"] == "wide" and info["recipe"]["stop_from"] == 0.75
    assert info["recipe"]["mixup"] == 0.2 and info["complete"] is True
    assert info["recipe"]["learning_rate"] == 0.0005 and "optimizer" not in info["recipe"]
    rates = [float(r["lr"]) for r in csv.DictReader((tmp_path / "runs" / "binary-scratch" / "history.csv").open())]
    assert rates == [pytest.approx(0.0005)]
    bad = run("trainer", "train", *common, "--learning-rate", "0")
    assert bad.returncode == 2 and "learning rate 0.0 is not above 0" in bad.stderr and "Traceback" not in bad.stderr
    bad = run("trainer", "train", *common, "--stop-from", "1.5")
    assert bad.returncode == 2 and "stop_from 1.5" in bad.stderr and "Traceback" not in bad.stderr
    bad = run("trainer", "train", *common, "--mixup", "-1")
    assert bad.returncode == 2 and "mixup -1" in bad.stderr and "Traceback" not in bad.stderr


def test_train_with_sgd_records_it_and_resumes_only_with_it(suite, run, fer_root, tmp_path):
    """`train --optimizer sgd` trains with Nesterov SGD at ten times the spec's learning rate and records both in the
    run's recipe (the lr column follows the same warm-up and cosine schedule); a run cut by its time limit continues
    only with the optimizer it started with (its checkpoint holds that optimizer's state): else one line, exit 2; so
    with any other recipe change (seed, width, ...) but `--epochs`, which stretches the schedule and says so."""
    from trainer.specs import SGD_LR_SCALE, Recipe, get_spec, smoke

    base, _ = suite
    common = ["binary-scratch", fer_root, "--smoke", "--runs", tmp_path / "runs", "--cache", base / "cache"]
    cut = run("trainer", "train", *common, "--epochs", "2", "--optimizer", "sgd", "--max-minutes", "0")
    assert cut.returncode == 0, cut.stderr[-2000:]
    run_dir = tmp_path / "runs" / "binary-scratch"
    assert json.loads((run_dir / "train.json").read_text())["complete"] is False
    bad = run("trainer", "train", *common, "--epochs", "2")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "optimizer sgd; fix: continue it with its own command" in bad.stderr and "--optimizer sgd" in bad.stderr
    # any other recipe change is refused the same way, naming what differs and the run's own command
    other = run("trainer", "train", *common, "--epochs", "2", "--optimizer", "sgd", "--seed", "99", "--width", "12")
    assert other.returncode == 2 and "Traceback" not in other.stderr, other.stderr[-2000:]
    width = smoke(get_spec("binary-scratch")).recipe.width
    assert f"was started with seed 1234, width {width}; fix: continue it with its own command" in other.stderr
    assert "emotion-trainer train binary-scratch" in other.stderr.strip().splitlines()[-1]
    # but not a longer schedule: it stretches from the next epoch on, and says so
    longer = run("trainer", "train", *common, "--epochs", "3", "--optimizer", "sgd", "--max-minutes", "0")
    assert longer.returncode == 0 and "continues with 3: the schedule changes" in longer.stderr, longer.stderr[-2000:]
    assert json.loads((run_dir / "train.json").read_text())["epochs_run"] == 2
    done = run("trainer", "train", *common, "--epochs", "3", "--optimizer", "sgd")
    assert done.returncode == 0, done.stderr[-2000:]
    info = json.loads((run_dir / "train.json").read_text())
    lr = smoke(get_spec("binary-scratch")).recipe.learning_rate * SGD_LR_SCALE
    assert info["complete"] is True and info["epochs_run"] == 3
    assert info["recipe"]["optimizer"] == "sgd" and info["recipe"]["learning_rate"] == pytest.approx(lr)
    rows = list(csv.DictReader((run_dir / "history.csv").open()))
    rates = [float(row["lr"]) for row in rows]
    assert len(rates) == 3 and rates[0] == pytest.approx(lr) and lr * 0.02 <= rates[2] < rates[1] < lr
    assert all(float(row["seconds"]) > 0 for row in rows)  # each epoch's wall-clock seconds, over three sittings
    assert "optimizer" not in Recipe().to_dict()
    with pytest.raises(UserError, match="optimizer"):
        Recipe(optimizer="adam")


def test_mixup_blends_faces_targets_and_weights_alike_and_only_in_training(fer_root, tmp_path):
    """With mixup each training face is a convex blend of two faces of its batch, its target and class weight the
    same blend of theirs (labels mixed before the teachers, who are asked about the blend); a batch is still a
    function of (batch, epoch); evaluation batches and mixup 0 are untouched; recipes record it only when on."""
    from trainer.dataset import load_split
    from trainer.specs import Recipe
    from trainer.train import FaceBatches, mix

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (16, 4, 4, 3)).astype(np.float32)
    y = np.eye(2, dtype=np.float32)[np.arange(16) % 2]
    w = np.where(np.arange(16) % 2 == 0, 1.0, 3.0).astype(np.float32)
    mx, my, mw = mix(x, y, w, 0.2, np.random.default_rng(1))
    lam = np.random.default_rng(1).beta(0.2, 0.2, size=16)
    partner = np.random.default_rng(1)
    partner.beta(0.2, 0.2, size=16)
    p = partner.permutation(16)
    assert np.allclose(mx, lam[:, None, None, None] * x + (1 - lam[:, None, None, None]) * x[p], atol=1e-3)
    assert np.allclose(my, lam[:, None] * y + (1 - lam[:, None]) * y[p]) and np.allclose(my.sum(1), 1.0)
    assert np.allclose(mw, lam * w + (1 - lam) * w[p]) and mx.dtype == my.dtype == mw.dtype == np.float32
    assert mix(x, y, None, 0.2, np.random.default_rng(1))[2] is None

    split = load_split(fer_root, "val", ("happy", "sad"), PreprocessSpec(), per_class_limit=20, cache_dir=tmp_path)
    table = {0: 1.0, 1: 2.0}
    plain = FaceBatches(split, 16, 2, training=True, seed=3, augment=True, weights=table)
    mixed = FaceBatches(split, 16, 2, training=True, seed=3, augment=True, weights=table, mixup=0.2)
    a, b, again = plain.get(1, 2), mixed.get(1, 2), mixed.get(1, 2)
    assert all(np.array_equal(u, v) for u, v in zip(b, again, strict=True))
    assert not np.array_equal(a[0], b[0]) and not np.array_equal(a[1], b[1])
    assert np.allclose(b[1].sum(1), 1.0) and ((b[2] >= 1.0) & (b[2] <= 2.0)).all()
    assert (b[0] >= 0).all() and (b[0] <= 255).all()
    val = FaceBatches(split, 16, 2, training=False, seed=3, augment=True, mixup=0.2).get(0, 0)
    assert np.array_equal(val[0], split.x[:16].astype(np.float32))
    assert "mixup" not in Recipe().to_dict() and Recipe(mixup=0.2).to_dict()["mixup"] == 0.2
    with pytest.raises(UserError, match="mixup"):
        Recipe(mixup=-0.5)


def test_early_stopping_watches_the_schedule_from_the_recipes_fraction(tmp_path):
    """By default early stopping starts at half the schedule (as every recorded run had it, so a recipe records
    stop_from only when it differs); 0.75 starts it at three quarters, 1.0 never."""
    import keras

    from trainer.specs import Recipe
    from trainer.train import _resumable_callbacks

    def start(stop_from):
        return _resumable_callbacks(keras, tmp_path, 8, 60, stop_from)[1].start_from_epoch

    assert (start(Recipe().stop_from), start(0.5), start(0.75), start(1.0)) == (30, 30, 45, 60)
    assert "stop_from" not in Recipe().to_dict() and Recipe(stop_from=0.75).to_dict()["stop_from"] == 0.75
    with pytest.raises(UserError, match="stop_from"):
        Recipe(stop_from=-0.1)


def test_augmentation_warps_like_a_detector_and_is_a_function_of_its_generator():
    """The warp mirrors about the centre, keeps the face in frame (reflected border, no black corners), and a
    batch depends only on its faces and its generator (worker threads may make batches in any order)."""
    from trainer.augment import augment_batch, warp

    face = np.zeros((1, 100, 100, 3), np.float32)
    face[:, 40:60, 10:30] = 255.0  # a bright patch left of centre
    batch = np.repeat(face, 64, axis=0)
    out = warp(batch, np.random.default_rng(3))
    left, right = out[:, :, :50].mean(axis=(1, 2, 3)), out[:, :, 50:].mean(axis=(1, 2, 3))
    mirrored = right > left
    assert 16 < mirrored.sum() < 48  # mirror with p 0.5
    assert np.abs(out.mean(axis=(1, 2, 3)) - face.mean()).max() < 0.5 * face.mean()  # the patch stays in frame
    grey = warp(np.full((16, 100, 100, 3), 128.0, np.float32), np.random.default_rng(4))
    np.testing.assert_allclose(grey, 128.0, atol=1e-3)  # reflected border: nothing dark comes in
    a = augment_batch(batch, np.random.default_rng((1, 2, 3)), 0.5, 0.3)
    b = augment_batch(batch, np.random.default_rng((1, 2, 3)), 0.5, 0.3)
    assert np.array_equal(a, b) and not np.array_equal(a, augment_batch(batch, np.random.default_rng(9), 0.5, 0.3))
    assert a.dtype == np.float32 and a.min() >= 0.0 and a.max() <= 255.0


def test_teachers_targets_mix_labels_with_the_renormalised_ensemble(suite):
    """Distillation targets: (1 - w) * one-hot + w * mean over teachers of their softmax restricted to the
    student's labels and renormalised; a teacher that lacks a student label is a one-line UserError."""
    import keras

    from edge.core.errors import UserError
    from trainer.train import Teachers

    base, _ = suite
    teacher_dir = base / "runs" / "multiclass3-resnet"  # happy, sad, surprise
    teachers = Teachers([teacher_dir, teacher_dir], ("sad", "happy"), 0.7)
    assert teachers.records[0]["sha256"] == teachers.records[1]["sha256"] and len(teachers.records) == 2
    x = np.random.default_rng(1).integers(0, 256, size=(6, 100, 100, 3)).astype(np.float32)
    hard = np.eye(2, dtype=np.float32)[[0, 1, 0, 1, 0, 1]]
    got = teachers.targets(x, hard)
    labels = json.loads((teacher_dir / "train.json").read_text())["labels"]
    p = keras.models.load_model(str(teacher_dir / "model.keras")).predict(x, verbose=0)
    p = p[:, [labels.index("sad"), labels.index("happy")]]
    expected = 0.3 * hard + 0.7 * p / p.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)
    with pytest.raises(UserError, match="does not know \\['neutral'\\]"):
        Teachers([teacher_dir], ("happy", "neutral"), 0.7)
    with pytest.raises(UserError, match="outside"):
        Teachers([teacher_dir], ("happy", "sad"), 1.5)


def test_an_int8_teacher_votes_as_its_tflite_model_does_from_every_thread(suite, tmp_path):
    """A teacher folder with model.int8.tflite (the run's int8 export) instead of model.keras: its votes are the
    interpreter's probabilities for the faces quantised as the device quantises them, the same from any worker
    thread, close to the Keras model it was exported from, and its record names the .tflite by sha256."""
    import shutil
    import threading

    from edge.core.runtime import dequantize, make_interpreter, quantize
    from trainer.train import Teachers

    base, _ = suite
    run_dir = base / "runs" / "multiclass3-resnet"  # happy, sad, surprise
    int8 = tmp_path / "int8"
    int8.mkdir()
    shutil.copy(run_dir / "train.json", int8)
    shutil.copy(base / "models" / "multiclass3-resnet.int8.tflite", int8 / "model.int8.tflite")
    x = np.random.default_rng(2).integers(0, 256, size=(5, 100, 100, 3)).astype(np.float32)
    hard = np.eye(2, dtype=np.float32)[[0, 1, 0, 1, 1]]
    teachers = Teachers([int8], ("sad", "happy"), 1.0)
    assert teachers.records[0]["sha256"] == sha256_file(int8 / "model.int8.tflite")
    got = teachers.targets(x, hard)

    interp = make_interpreter(int8 / "model.int8.tflite")  # one face at a time, as edge/classify does
    i, o = interp.get_input_details()[0], interp.get_output_details()[0]
    labels = json.loads((run_dir / "train.json").read_text())["labels"]
    rows = [labels.index("sad"), labels.index("happy")]
    expected = []
    for face in x:
        interp.set_tensor(i["index"], quantize(face[None], i))
        interp.invoke()
        p = dequantize(interp.get_tensor(o["index"]), o)[0, rows]
        expected.append(p / p.sum())
    np.testing.assert_allclose(got, np.array(expected), atol=1e-6)
    keras_votes = Teachers([run_dir], ("sad", "happy"), 1.0).targets(x, hard)
    assert np.abs(got - keras_votes).max() < 0.1  # int8 against float: the same teacher

    results: dict[int, np.ndarray] = {}

    def vote(k: int) -> None:
        results[k] = teachers.targets(x[: 2 + k], hard[: 2 + k])

    threads = [threading.Thread(target=vote, args=(k,)) for k in range(3)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    for k, r in results.items():
        np.testing.assert_allclose(r, got[: 2 + k], atol=1e-6)


def test_distilled_run_records_its_teachers_and_resumes_only_with_them(suite, run, fer_root, tmp_path):
    """`train --teacher RUN_DIR` end to end: the student trains, train.json names the teacher by sha256; a cut run
    continued without its teacher is refused in one line (exit 2)."""
    base, _ = suite
    teacher = base / "runs" / "multiclass3-resnet"
    common = ["binary-scratch", fer_root, "--smoke", "--runs", tmp_path / "runs", "--cache", base / "cache"]
    cut = ("--epochs", "2", "--max-minutes", "0")  # stops after the first of two epochs
    proc = run("trainer", "train", *common, "--teacher", teacher, "--distill-weight", "0.6", *cut)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "run the same command to continue" in proc.stdout
    info = json.loads((tmp_path / "runs" / "binary-scratch" / "train.json").read_text())
    assert info["recipe"]["distill_weight"] == 0.6 and info["complete"] is False
    assert info["teachers"][0]["sha256"] == sha256_file(teacher / "model.keras")
    assert info["teachers"][0]["labels"] == ["happy", "sad", "surprise"]

    proc = run("trainer", "train", *common, "--distill-weight", "0.6", "--epochs", "2")  # teacher forgotten
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "was started with" in proc.stderr and "--teacher" in proc.stderr

    proc = run("trainer", "train", *common, "--teacher", teacher, "--distill-weight", "0.6", "--epochs", "2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = json.loads((tmp_path / "runs" / "binary-scratch" / "train.json").read_text())
    assert info["complete"] is True and info["epochs_run"] == 2 and len(info["teachers"]) == 1

    proc = run("trainer", "train", *common, "--teacher", tmp_path, "--epochs", "1")
    assert proc.returncode == 2 and "has no train.json and model" in proc.stderr, proc.stderr
    assert json.loads((tmp_path / "runs" / "binary-scratch" / "train.json").read_text())["complete"] is True  # intact


def test_a_distilled_run_killed_in_its_first_sitting_resumes_only_with_its_teachers(suite, run, fer_root, tmp_path):
    """train.json records the teachers when the run starts, so a first sitting killed (SIGKILL: power cut, OOM)
    after its first checkpoint is held to the same teachers: refused without them (one line, exit 2), finished
    with them. A checkpoint or minutes file cut mid-write is a one-line error too (the run writes both whole)."""
    import signal
    import subprocess
    import sys
    import time

    base, _ = suite
    teacher = base / "runs" / "multiclass3-resnet"
    runs = tmp_path / "runs"
    common = ["binary-scratch", fer_root, "--smoke", "--runs", runs, "--cache", base / "cache", "--epochs", "6"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "trainer", "train", *map(str, common), "--teacher", str(teacher)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    backup = runs / "binary-scratch" / "backup"
    deadline = time.monotonic() + 240  # the first checkpoint is whole once its metadata is written
    while proc.poll() is None and time.monotonic() < deadline and not (backup / "training_metadata.json").exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before its first checkpoint could be cut"
    info = json.loads((runs / "binary-scratch" / "train.json").read_text())  # the start record
    assert info["complete"] is False and info["teachers"][0]["sha256"] == sha256_file(teacher / "model.keras")

    refused = run("trainer", "train", *common)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "was started with" in refused.stderr and str(teacher) in refused.stderr

    weights = backup / "latest.weights.h5"  # a checkpoint cut while being written: one line, not a traceback
    whole = weights.read_bytes()
    weights.write_bytes(whole[: len(whole) // 3])
    cut = run("trainer", "train", *common, "--teacher", teacher)
    assert cut.returncode == 2 and len(cut.stderr.strip().splitlines()) == 1, cut.stderr
    assert "unreadable" in cut.stderr and f"delete {backup}" in cut.stderr
    weights.write_bytes(whole)
    budget = runs / "binary-scratch" / "budget.json"  # the minutes so far; written whole, so only damage cuts it
    minutes = budget.read_bytes() if budget.is_file() else None
    budget.write_text('{"seco')
    cut = run("trainer", "train", *common, "--teacher", teacher)
    assert cut.returncode == 2 and len(cut.stderr.strip().splitlines()) == 1, cut.stderr
    assert "budget.json is unreadable" in cut.stderr and "fix: delete it" in cut.stderr
    budget.write_bytes(minutes) if minutes is not None else budget.unlink()

    done = run("trainer", "train", *common, "--teacher", teacher)
    assert done.returncode == 0, done.stderr[-2000:]
    info = json.loads((runs / "binary-scratch" / "train.json").read_text())
    assert info["complete"] is True and info["epochs_run"] > 1 and len(info["teachers"]) == 1  # early stop ok


def test_refit_on_train_and_val_keeps_the_selection(suite, run, fer_root, tmp_path):
    """`refit SPEC` end to end on the smoke suite's binary-scratch: its recorded command (a `suite` run) is parsed
    and checked, the run repeats on train + val up to the best epoch of the selection's val curve; the exported
    refit keeps the selection's TTA, refuses val in one line, and is evaluated on test. A recorded recipe that the
    command no longer gives is refused before anything trains."""
    base, _ = suite
    models = _copy_models(suite, tmp_path)
    selection = Manifest(models).entry("binary-scratch").data
    report = (models / "reports" / "binary-scratch.json").read_text()
    history = json.loads(report)["history"]
    best = int(np.argmax([row["val_accuracy"] for row in history])) + 1
    common = [fer_root, "--smoke", "--runs", tmp_path / "runs", "--models", models, "--cache", base / "cache"]

    proc = run("trainer", "refit", "binary-scratch", *common)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (
        f"refit on train + val for {best} of {best} epochs (the epoch val chose for the selection; its recipe had 2)"
        in proc.stdout
    )
    run_dir = tmp_path / "runs" / "refit" / "binary-scratch"
    info = json.loads((run_dir / "train.json").read_text())
    assert info["complete"] is True and info["epochs_run"] == best and info["best_val_accuracy"] is None
    assert (
        info["refit"]["epochs"] == best
        and info["refit"]["of"]["int8_sha256"] == selection["variants"]["int8"]["sha256"]
    )
    assert info["recipe"] | {"max_minutes": 0} == selection["training"]["recipe"] | {"max_minutes": 0}
    both = {c: info["val_counts"][c] + selection["training"]["train_counts"][c] for c in info["val_counts"]}
    assert info["train_counts"] == both == {"happy": 2 * SMOKE_PER_CLASS, "sad": 2 * SMOKE_PER_CLASS}
    curves = read_history(run_dir)
    assert len(curves) == best and not any("val_accuracy" in row for row in curves)  # nothing validated on val

    refit_runs = ["--runs", tmp_path / "runs" / "refit"]
    proc = run("trainer", "export", "binary-scratch", *common, *refit_runs)
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = run("trainer", "evaluate", "binary-scratch", *common, *refit_runs, "--split", "val")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "val is in its training data" in proc.stderr
    proc = run("trainer", "evaluate", "binary-scratch", *common, *refit_runs)
    assert proc.returncode == 0, proc.stderr[-2000:]
    entry = Manifest(models).entry("binary-scratch").data
    assert entry["training"]["refit"] == info["refit"] and entry["metrics"]["split"] == "test"
    assert entry["tta"] == selection["tta"] and entry["calibration"] == selection["calibration"]
    assert entry["tta_selection"] == {"carried_from": selection["variants"]["int8"]["sha256"]}
    assert entry["preprocess"] == selection["preprocess"]  # the exposure val chose for the selection, kept
    assert entry["exposure_selection"]["carried_from"] == selection["variants"]["int8"]["sha256"]
    assert entry["provenance"]["selection"].startswith("a refit on train + val")
    assert entry["variants"]["int8"]["sha256"] != selection["variants"]["int8"]["sha256"]
    proc = run("trainer", "report", "--models", models)
    assert proc.returncode == 0 and "refit on train + val" in (models / "report.html").read_text(), proc.stderr
    suite = ["suite", fer_root, "--smoke", "--specs", "binary-scratch", "--runs", base / "runs", "--models", models]
    proc = run("trainer", *suite, "--cache", base / "cache")  # the refit's selection run is there: left alone
    assert proc.returncode == 0 and "binary-scratch: finished" in proc.stdout, proc.stderr[-2000:]
    assert Manifest(models).entry("binary-scratch").data == entry
    # --exposure forced on a refit (no val involved), then auto again: back to what the selection chose
    proc = run("trainer", "evaluate", "binary-scratch", *common, *refit_runs, "--exposure", "on")
    assert proc.returncode == 0, proc.stderr[-2000:]
    forced = Manifest(models).entry("binary-scratch").data
    assert forced["exposure_selection"]["forced"] is True and len(forced["preprocess"]["exposure"]) == 3
    proc = run("trainer", "evaluate", "binary-scratch", *common, *refit_runs)
    assert proc.returncode == 0 and Manifest(models).entry("binary-scratch").data["preprocess"] == entry["preprocess"]

    changed = json.loads((models / "manifest.json").read_text())  # the selection as recorded, its seed altered
    changed["models"]["binary-scratch"] = selection | {
        "training": selection["training"] | {"recipe": selection["training"]["recipe"] | {"seed": 99}}
    }
    (models / "manifest.json").write_text(json.dumps(changed))
    (models / "reports" / "binary-scratch.json").write_text(report)  # with the selection's val curve
    proc = run("trainer", "refit", "binary-scratch", *common[:3], tmp_path / "other", *common[4:])
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "no longer gives its recorded recipe (seed differ)" in proc.stderr
    assert not (tmp_path / "other").exists()


def test_record_puts_a_run_and_its_val_judgement_on_record(suite, run, fer_root, tmp_path):
    """`record SPEC` copies the run's train.json and history.csv and writes val.json from the entry `evaluate
    --split val` wrote for that very run; a models folder without such a judgement, or one judging another run, is
    refused in one line before anything is written, and a record is never rewritten."""
    base, _ = suite
    models = _copy_models(suite, tmp_path)
    runs = base / "runs"
    record = ["trainer", "record", "binary-scratch", "--runs", runs, "--models", models, "--to"]

    proc = run(*record, tmp_path / "early")  # the suite judged it on test: not a val judgement
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "no val judgement" in proc.stderr and not (tmp_path / "early").exists()

    common = [fer_root, "--smoke", "--runs", runs, "--models", models, "--cache", base / "cache"]
    proc = run("trainer", "evaluate", "binary-scratch", *common, "--split", "val")
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = run(*record, tmp_path / "rec")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rec, entry = tmp_path / "rec", Manifest(models).entry("binary-scratch").data
    for name in ("train.json", "history.csv"):
        assert (rec / name).read_bytes() == (runs / "binary-scratch" / name).read_bytes()
    val = json.loads((rec / "val.json").read_text())
    keys = ("version", "tta", "tta_selection", "calibration", "calibration_selection", "exposure_selection")
    assert {k: val[k] for k in keys} == {k: entry[k] for k in keys} and val["latency_ms"] == entry["latency_ms"]
    m = entry["metrics"]
    assert val["spec"] == "binary-scratch" and val["metrics"]["split"] == "val" and val["metrics"]["n"] == m["n"]
    assert val["metrics"]["int8"] == {"accuracy": m["int8"]["accuracy"], "macro_f1": m["int8"]["macro"]["f1"]}
    assert val["metrics"]["float32"]["macro_f1"] == m["float32"]["macro"]["f1"]

    again = run(*record, rec)
    assert again.returncode == 2 and "on record already" in again.stderr and len(again.stderr.splitlines()) == 1
    other = json.loads((models / "manifest.json").read_text())  # a judgement of another run of the same spec
    other["models"]["binary-scratch"]["provenance"]["command"] += " --seed 99"
    (models / "manifest.json").write_text(json.dumps(other))
    proc = run(*record, tmp_path / "other")
    assert proc.returncode == 2 and "is not the run in" in proc.stderr and not (tmp_path / "other").exists()


def test_ensemble_of_one_run_twice_is_that_run(suite, run, fer_root, tmp_path):
    """`ensemble` on the same run twice: the ensemble and the weight average must equal the run itself (to the
    printed digit); a run of more classes is restricted to the spec's (no soup then); a cut run is scored alone but
    left out of the ensembles, as `combine` refuses it; one of other classes is a one-line error."""
    base, _ = suite
    one = base / "runs" / "binary-scratch"
    common = [fer_root, "--smoke", "--cache", base / "cache"]

    def rows(*dirs) -> dict[str, list[str]]:
        proc = run("trainer", "ensemble", "binary-scratch", *common, *dirs)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return {line.rsplit(None, 4)[0].strip(): line.split()[-4:] for line in proc.stdout.splitlines()[1:]}

    same = rows(one, one)
    assert same["ensemble (mean probability, 2 runs)"] == same[f"#1 {one}"] == same[f"#2 {one}"]
    assert same["weight average (soup, 2 runs)"] == same[f"#1 {one}"]
    assert all(0.0 <= float(v) <= 1.0 for v in same[f"#1 {one}"][:2])
    assert all(0.0 <= float(v) <= 2.0 for v in same[f"#1 {one}"][2:])
    three = base / "runs" / "multiclass3-resnet"
    mixed = rows(one, three, one)
    best = [k for k in mixed if k.startswith("ensemble (mean probability) of the best 2: ")]
    assert set(mixed) == {f"#1 {one}", f"#2 {three}", f"#3 {one}", "ensemble (mean probability, 3 runs)", *best}
    assert len(best) == 1 and mixed[f"#1 {one}"] == same[f"#1 {one}"]
    # the best two: both copies of the one run if it scores above the restricted one, else that one and #1 (ties
    # keep the order given)
    assert best[0].endswith(("#1 #3", "#1 #2"))
    cut = tmp_path / "cut" / "binary-scratch"
    shutil.copytree(one, cut)
    info = json.loads((cut / "train.json").read_text())
    (cut / "train.json").write_text(json.dumps(info | {"complete": False}))
    left_out = rows(one, cut, one)
    assert set(left_out) == {
        f"#1 {one}",
        f"#2 {cut} (cut before its schedule ended: not in the ensembles)",
        f"#3 {one}",
        "ensemble (mean probability, 2 runs)",
        "weight average (soup, 3 runs)",
    }
    proc = run("trainer", "ensemble", "multiclass3-resnet", *common, three, one)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "not ['happy', 'sad', 'surprise'] or more" in proc.stderr


def test_a_pretraining_folder_scores_as_its_run_and_continues(suite, run, fer_root, tmp_path):
    """A committed pre-training folder (backbone, head.npz, train.json; no model.keras) is the network its run
    saved: `ensemble` restricted to a spec's classes scores it as that run, to the printed digit, marked as a
    folder, and ensembles it like a run; `combine` takes it as a member, restricted, recording the sha256 of the
    two files it read. `pretrain --backbone-weights` of it continues that network, its six-class head included; a
    folder without the head continues the backbone alone, and says so."""
    import keras

    from trainer.dataset import DataOptions
    from trainer.ensemble import restricted

    base, _ = suite
    pre = base / "runs" / "backbone-pretrain"
    folder = tmp_path / "pretrained" / "w8"
    folder.mkdir(parents=True)
    for name in ("backbone.weights.h5", "head.npz", "train.json"):
        shutil.copy(pre / name, folder / name)
    common = [fer_root, "--smoke", "--cache", base / "cache"]
    proc = run("trainer", "ensemble", "multiclass3-resnet", *common, pre, folder)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {line.rsplit(None, 4)[0].strip(): line.split()[-4:] for line in proc.stdout.splitlines()[1:]}
    marked = f"#2 {folder} (a pre-training folder)"
    assert set(rows) == {f"#1 {pre}", marked, "ensemble (mean probability, 2 runs)"}
    assert rows[f"#1 {pre}"] == rows[marked] == rows["ensemble (mean probability, 2 runs)"]
    proc = run("trainer", "combine", "multiclass3-resnet", pre, folder, "--runs", tmp_path / "c")
    assert proc.returncode == 0 and "ensemble of 2 runs" in proc.stdout, proc.stderr[-2000:]
    info = json.loads((tmp_path / "c" / "multiclass3-resnet" / "train.json").read_text())
    assert [m["run"] for m in info["ensemble"]] == [str(pre), str(folder)]
    assert info["ensemble"][0]["model_sha256"] == sha256_file(pre / "model.keras")
    assert info["ensemble"][1]["pretraining_sha256"] == {
        name: sha256_file(folder / name) for name in ("backbone.weights.h5", "head.npz")
    }
    assert info["ensemble"][1]["command"] == json.loads((folder / "train.json").read_text())["command"]
    labels = ("happy", "sad", "surprise")
    x = (
        DataOptions(root=fer_root, per_class_limit=SMOKE_PER_CLASS, cache_dir=base / "cache")
        .load("val", labels, PreprocessSpec())
        .x[:16]
    )
    six = keras.models.load_model(str(pre / "model.keras"), compile=False)
    want = restricted(six, json.loads((pre / "train.json").read_text())["labels"], labels, "pre").predict(x, verbose=0)
    model = keras.models.load_model(str(tmp_path / "c" / "multiclass3-resnet" / "model.keras"), compile=False)
    assert np.allclose(model.predict(x, verbose=0), want, atol=1e-5)
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    (broken / "head.npz").unlink()
    proc = run("trainer", "combine", "multiclass3-resnet", pre, broken, "--runs", tmp_path / "c2")
    assert proc.returncode == 2 and "has no model.keras and train.json" in proc.stderr, proc.stderr[-2000:]

    weights = folder / "backbone.weights.h5"
    proc = run("trainer", "pretrain", *common, "--backbone-weights", weights, "--runs", tmp_path / "more")
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = json.loads((tmp_path / "more" / "backbone-pretrain" / "train.json").read_text())
    assert info["head_from_pretrain"] is True and info["recipe"]["head_from_pretrain"] is True
    assert info["backbone_weights"] == str(weights) and "head initialised from the pre-trained" in proc.stderr
    (folder / "head.npz").unlink()
    proc = run("trainer", "pretrain", *common, "--backbone-weights", weights, "--runs", tmp_path / "bare")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (
        json.loads((tmp_path / "bare" / "backbone-pretrain" / "train.json").read_text())["head_from_pretrain"] is False
    )
    assert "no pre-trained head" in proc.stderr


def test_a_refit_cut_by_its_time_limit_resumes_only_as_the_same_refit(suite, run, fer_root, tmp_path):
    """A refit split over sittings: `--max-minutes 0` stops it after its first epoch with a checkpoint, the same
    command finishes it at the chosen epoch, with the selection's current TTA; resuming it as the refit of another
    selection is one line, exit 2.
    (The selection's val curve is edited so that its best epoch is the second of two.)"""
    base, _ = suite
    models = _copy_models(suite, tmp_path)
    path = models / "reports" / "binary-scratch.json"
    report = json.loads(path.read_text())
    report["history"] = [row | {"val_accuracy": 0.5 + 0.1 * i} for i, row in enumerate(report["history"][:2])]
    path.write_text(json.dumps(report))
    common = [fer_root, "--smoke", "--runs", tmp_path / "runs", "--models", models, "--cache", base / "cache"]
    run_dir = tmp_path / "runs" / "refit" / "binary-scratch"

    proc = run("trainer", "refit", "binary-scratch", *common, "--max-minutes", "0")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "for 1 of 2 epochs" in proc.stdout and "run the same command to continue" in proc.stdout
    assert json.loads((run_dir / "train.json").read_text())["complete"] is False and (run_dir / "backup").is_dir()

    report["history"][0]["val_accuracy"] = 0.9  # now the recorded curve chooses epoch 1: another refit
    path.write_text(json.dumps(report))
    proc = run("trainer", "refit", "binary-scratch", *common)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "interrupted run of another kind" in proc.stderr

    report["history"][0]["val_accuracy"] = 0.5
    path.write_text(json.dumps(report))
    # meanwhile val re-chose the selection's TTA (a re-evaluation changes tta and the version hashing it): the
    # same refit resumes and takes the new decision, as a fresh refit would
    _edit(models, "binary-scratch", lambda e: e.update(tta="zoom-flip", version="0" * 12))
    proc = run("trainer", "refit", "binary-scratch", *common)
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = json.loads((run_dir / "train.json").read_text())
    assert info["complete"] is True and info["epochs_run"] == 2 and info["refit"]["epochs"] == 2
    assert info["refit"]["tta"] == "zoom-flip" and info["refit"]["of"]["version"] == "0" * 12
    assert not (run_dir / "backup").exists() and len(read_history(run_dir)) == 2


def test_combine_ships_the_members_mean_as_one_model(suite, run, fer_root, tmp_path):
    """`combine` of two finished runs (the suite's binary-scratch and one more seed) writes one model whose float
    TFLite export gives the mean of the members' Keras probabilities; `export` and `evaluate` ship it as any run,
    with each member on record; the report draws each member; refit refuses it in one line; what cannot be
    combined (one run, runs of two architectures or of fewer classes, a folder already holding a model) is a
    one-line error; and runs of more classes take part restricted to the spec's, renormalised."""
    import keras

    base, _ = suite
    models = _copy_models(suite, tmp_path)
    cache = ["--cache", base / "cache"]
    proc = run(
        "trainer", "train", "binary-scratch", fer_root, "--smoke", "--seed", "5", "--runs", tmp_path / "r2", *cache
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    one, two = base / "runs" / "binary-scratch", tmp_path / "r2" / "binary-scratch"
    ens = tmp_path / "ens"
    proc = run("trainer", "combine", "binary-scratch", one, two, "--runs", ens)
    assert proc.returncode == 0 and "ensemble of 2 runs" in proc.stdout, proc.stderr[-2000:]
    info = json.loads((ens / "binary-scratch" / "train.json").read_text())
    assert [m["run"] for m in info["ensemble"]] == [str(one), str(two)]
    assert [m["model_sha256"] for m in info["ensemble"]] == [sha256_file(d / "model.keras") for d in (one, two)]
    assert [m["recipe"]["seed"] for m in info["ensemble"]][1] == 5 and "seed" not in info["recipe"]

    common = [fer_root, "--smoke", "--runs", ens, "--models", models, *cache]
    for step in ("export", "evaluate"):
        proc = run("trainer", step, "binary-scratch", *common)
        assert proc.returncode == 0, proc.stderr[-2000:]
    entry = Manifest(models).entry("binary-scratch")
    assert entry.data["training"]["ensemble"] == info["ensemble"] and entry.data["metrics"]["split"] == "test"
    assert [m["params"] for m in entry.data["architecture"]["members"]] == [info["params"] // 2] * 2

    from trainer.dataset import DataOptions

    faces = DataOptions(root=fer_root, per_class_limit=SMOKE_PER_CLASS, cache_dir=base / "cache")
    x = faces.load("val", entry.labels, entry.preprocess).x[:16]
    mean = np.mean(
        [keras.models.load_model(str(d / "model.keras"), compile=False).predict(x, verbose=0) for d in (one, two)],
        axis=0,
    )
    clf = TFLiteClassifier(entry, "float32", num_threads=1, tta="none", calibration={})
    got = np.stack([clf.probabilities(face) for face in x])
    assert np.allclose(got, mean, atol=1e-4), np.abs(got - mean).max()

    proc = run("trainer", "report", "--models", models)
    page = (models / "report.html").read_text()
    assert proc.returncode == 0 and page.count(f"{two}") >= 1 and "Member</span> 2" in page, proc.stderr
    proc = run("trainer", "refit", "binary-scratch", fer_root, "--smoke", "--models", models, "--runs", tmp_path / "rf")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "is an ensemble of 2 runs" in proc.stderr and not (tmp_path / "rf").exists()
    three = base / "runs" / "multiclass3-resnet"
    for spec, args, says in (
        ("binary-scratch", (one,), "at least two runs"),
        ("binary-scratch", (one, three), "the runs differ in arch"),
        ("binary-resnet", (one, two), "the runs are scratch networks and binary-resnet is a resnet spec"),
        ("multiclass3-resnet", (three, one), "not ['happy', 'sad', 'surprise'] or more"),
        ("binary-scratch", (one, two), "already holds a model"),
    ):
        proc = run("trainer", "combine", spec, *args, "--runs", ens)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and says in proc.stderr, proc.stderr

    # runs of more classes take part restricted: each member's softmax over the spec's classes, renormalised
    copy = tmp_path / "copy" / "multiclass3-resnet"
    shutil.copytree(three, copy)
    proc = run("trainer", "combine", "binary-resnet", three, copy, "--runs", ens)
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = json.loads((ens / "binary-resnet" / "train.json").read_text())
    assert info["spec"] == "binary-resnet" and info["labels"] == ["happy", "sad"] and "train_counts" not in info
    assert [m["labels"] for m in info["ensemble"]] == [["happy", "sad", "surprise"]] * 2
    member = keras.models.load_model(str(three / "model.keras"), compile=False).predict(x, verbose=0)[:, :2]
    combined = keras.models.load_model(str(ens / "binary-resnet" / "model.keras"), compile=False).predict(x, verbose=0)
    assert np.allclose(combined, member / member.sum(axis=1, keepdims=True), atol=1e-5)


def test_a_float_file_too_large_to_ship_stays_in_its_run_folder(suite, fer_root, tmp_path):
    """A float file over the limit even with float16 weights (five- and six-network ensembles) is not shipped:
    `export` leaves it in the run folder as the float reference (and removes one an earlier export shipped),
    the model ships its int8 file; the device refuses float32 for it in one line naming why; `evaluate` measures
    the reference as the float32 numbers, and says in one line how to make it again when it is not there."""
    from trainer.dataset import DataOptions
    from trainer.evaluate import evaluate
    from trainer.export import export

    base, _ = suite
    run_dir = tmp_path / "runs" / "binary-scratch"
    shutil.copytree(base / "runs" / "binary-scratch", run_dir)
    models = _copy_models(suite, tmp_path)
    data = DataOptions(root=fer_root, per_class_limit=SMOKE_PER_CLASS, cache_dir=base / "cache")
    assert (models / "binary-scratch.float32.tflite").is_file()  # shipped by the suite, under the real limit
    limit = (models / "binary-scratch.float32.tflite").stat().st_size // 4  # its float16 file is about half
    export("binary-scratch", run_dir, models, data, float_limit=limit)

    entry = Manifest(models).entry("binary-scratch")
    ref = entry.data["float_reference"]
    assert set(entry.data["variants"]) == {"int8"} and not (models / "binary-scratch.float32.tflite").exists()
    assert ref["folder"] == str(run_dir) and ref["weights"] == "float16" and ref["size_bytes"] > limit
    assert sha256_file(run_dir / ref["file"]) == ref["sha256"]
    with pytest.raises(ModelError, match="too large to ship") as err:
        TFLiteClassifier(entry, "float32")
    assert "\n" not in str(err.value) and "fix: choose one of ['int8']" in str(err.value)

    evaluate("binary-scratch", models, data, split="test", latency_runs=5)
    entry = Manifest(models).entry("binary-scratch")
    m = entry.data["metrics"]
    faces = data.load("test", entry.labels, entry.preprocess)
    reference = TFLiteClassifier(entry.float_reference(), "float32")  # the TTA and calibration evaluate chose
    pred = np.array([int(np.argmax(reference.probabilities(x))) for x in faces.x])
    assert m["float32"]["accuracy"] == round(float((pred == faces.y).mean()), 4) and m["int8_float_agreement"] > 0.5

    (run_dir / ref["file"]).unlink()
    with pytest.raises(UserError, match="float reference .* is not here") as err:
        evaluate("binary-scratch", models, data, split="test", latency_runs=5)
    assert "\n" not in str(err.value) and "fix: run 'emotion-trainer export binary-scratch" in str(err.value)

    export("binary-scratch", run_dir, models, data)  # under the real limit: shipped again, no reference
    entry = Manifest(models).entry("binary-scratch")
    assert set(entry.data["variants"]) == {"int8", "float32"} and entry.data["float_reference"] is None


def test_float16_weights_halve_a_float_file_and_keep_its_answers(tmp_path):
    """`convert(..., float16_weights=True)`: the weights stored as float16, the tensors float32, the outputs those of
    the float32 file to float16 precision."""
    import keras

    from edge.core.runtime import make_interpreter
    from trainer.export import convert

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(256, "relu"), keras.layers.Dense(4, "softmax")])
    x = np.random.default_rng(0).random((8, 64), dtype=np.float32)
    outs, sizes = [], []
    for half in (False, True):
        path = tmp_path / f"m{int(half)}.tflite"
        path.write_bytes(convert(model, None, float16_weights=half))
        interp = make_interpreter(path)
        i, o = interp.get_input_details()[0], interp.get_output_details()[0]
        assert i["dtype"] == o["dtype"] == np.float32
        interp.resize_tensor_input(i["index"], list(x.shape))
        interp.allocate_tensors()
        interp.set_tensor(i["index"], x)
        interp.invoke()
        outs.append(interp.get_tensor(o["index"]))
        sizes.append(path.stat().st_size)
    assert sizes[1] < 0.6 * sizes[0]
    assert np.allclose(outs[0], outs[1], atol=2e-3)
