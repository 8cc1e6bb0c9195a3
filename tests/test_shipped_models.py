"""Every shipped model: manifest-checked load through the device's classifier, and its accuracy re-measured."""

from __future__ import annotations

import numpy as np
import pytest

from edge.classify.tflite import TFLiteClassifier
from edge.core.manifest import Manifest, model_version
from edge.core.paths import models_dir

MANIFEST = Manifest(models_dir())
NAMES = MANIFEST.names
PER_CLASS = 100  # a balanced sample: its accuracy estimates the model's macro recall (balanced accuracy)


def test_manifest_is_consistent():
    if not NAMES:
        pytest.skip(f"no models shipped yet in {MANIFEST.path}")
    assert MANIFEST.default_model in NAMES
    for name in NAMES:
        e = MANIFEST.entry(name)
        # both files, or (a float file too large to ship) the int8 file and the float reference export kept
        assert set(e.data["variants"]) == {"int8", "float32"} or (
            set(e.data["variants"]) == {"int8"} and e.data["float_reference"]["weights"] == "float16"
        )
        assert {"int8", "float32"} <= set(e.data["metrics"]) and e.data["metrics"]["int8_float_agreement"] > 0.9
        assert e.data["metrics"]["split"] == "test", f"{name} was not evaluated on the test split"
        # the published version is the one derived from the files' bytes (a re-export changes it)
        assert e.data["version"] == e.version == model_version(e.data)
        assert len(e.version) == 12 and int(e.version, 16) >= 0


def test_version_changes_with_what_decides_the_output():
    one = {"variants": {"int8": {"sha256": "a" * 64}, "float32": {"sha256": "b" * 64}}, "tta": "flip"}
    flipped = {**one, "variants": dict(reversed(one["variants"].items()))}
    assert model_version(one) == model_version(flipped)  # not the order of the variants
    assert model_version(one) != model_version({**one, "variants": {**one["variants"], "int8": {"sha256": "c" * 64}}})
    assert model_version(one) != model_version({**one, "tta": "none"})
    assert model_version(one) != model_version({**one, "calibration": {"happy": 0.0, "sad": 0.2}})
    assert model_version({**one, "calibration": None}) == model_version(one)  # none is none


SHIPPED = [(n, v) for n in NAMES for v in MANIFEST.entry(n).data["variants"]]


@pytest.mark.parametrize(("name", "variant"), SHIPPED or [("<none>", "int8")])
def test_shipped_model_loads_and_scores(name, variant, fer_root):
    if name == "<none>":
        pytest.skip(f"no models shipped yet in {MANIFEST.path}")
    from trainer.dataset import load_split

    entry = MANIFEST.entry(name)
    clf = TFLiteClassifier(entry, variant)  # verifies sha256 and the interpreter's tensors
    data = load_split(fer_root, "test", clf.labels, clf.spec, per_class_limit=PER_CLASS)
    pred = np.array([int(np.argmax(clf.probabilities(x))) for x in data.x])
    balanced = float(np.mean([(pred[data.y == i] == i).mean() for i in range(len(clf.labels))]))
    reported = entry.data["metrics"][variant]["macro"]["recall"]
    # ~3 standard errors of a 100-per-class sample below the full-test-split number.
    floor = reported - 3 * np.sqrt(reported * (1 - reported) / (PER_CLASS * len(clf.labels))) - 0.01
    assert balanced >= floor, (
        f"{name} {variant}: balanced accuracy {balanced:.3f} < floor {floor:.3f} (reported {reported:.3f})"
    )


def test_readme_table_is_the_models_command_output():
    """The README's shipped-models table is `emotion-edge models` as it prints today: no number typed by hand, none
    left behind by a re-evaluation."""
    import subprocess
    import sys
    from pathlib import Path

    if not NAMES:
        pytest.skip(f"no models shipped yet in {MANIFEST.path}")
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-m", "edge", "models"], capture_output=True, text=True, cwd=root, timeout=120, check=True
    )
    printed = [ln for ln in proc.stdout.splitlines() if ln.split() and ln.split()[0].rstrip("*") in NAMES]
    readme = (root / "README.md").read_text().splitlines()
    header = next(i for i, ln in enumerate(readme) if ln.startswith("model") and "int8 acc" in ln)
    assert readme[header] == proc.stdout.splitlines()[0]
    assert readme[header + 1 : header + 1 + len(printed)] == printed


def test_no_shipped_file_passes_the_float_file_limit():
    """A float file over FLOAT_FILE_LIMIT ships with float16 weights and says so; it still takes and gives float32
    tensors, so the device runs it as any float32 variant. One over the limit even so (an ensemble of five or six
    networks) is not shipped: the manifest records it as the float reference, larger than the limit. No shipped file
    passes the limit."""
    pytest.importorskip("tensorflow", reason="trainer.export needs the 'train' extra")
    from trainer.export import FLOAT_FILE_LIMIT

    manifest = Manifest(models_dir())
    for name in manifest.names:
        data = manifest.entry(name).data
        for variant, rec in data["variants"].items():
            assert rec["size_bytes"] <= FLOAT_FILE_LIMIT, (name, variant)
            assert rec["size_bytes"] == (models_dir() / rec["file"]).stat().st_size, (name, variant)
            if rec.get("weights") == "float16":
                assert variant == "float32" and rec["input"]["dtype"] == rec["output"]["dtype"] == "float32"
        ref = data.get("float_reference")
        if ref:
            assert "float32" not in data["variants"] and ref["size_bytes"] > FLOAT_FILE_LIMIT, name
            assert ref["weights"] == "float16" and ref["input"]["dtype"] == ref["output"]["dtype"] == "float32"
            assert not (models_dir() / ref["file"]).exists(), name  # no file the manifest does not list
    shipped = {p.name for p in models_dir().glob("*.tflite")}
    listed = {rec["file"] for n in manifest.names for rec in manifest.entry(n).data["variants"].values()}
    assert shipped == listed
