"""`emotion-trainer report`: every model with the manifest's numbers; loads and works in a real headless browser."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from edge.core.manifest import Manifest
from trainer.report import build

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, Path]:
    """The page of the shipped models (their manifest and reports), as `emotion-trainer report` writes it."""
    from edge.core.paths import models_dir

    models = models_dir()
    if not Manifest(models).names:
        pytest.fail("no shipped models in models/manifest.json")
    out = tmp_path_factory.mktemp("report") / "report.html"
    out.write_text(build(models))
    return models, out


def test_every_model_with_manifest_numbers(report):
    models, out = report
    page = out.read_text()
    manifest = Manifest(models)
    data = json.loads(re.search(r"<script type='application/json' id='data'>(.*?)</script>", page, re.S).group(1))
    assert set(data["models"]) == set(manifest.names)
    for name in manifest.names:
        m = manifest.entry(name).data["metrics"]
        section = re.search(
            rf'<section class="model" data-model="{re.escape(name)}"[^>]*>(.*?)</section>', page, re.S
        ).group(1)
        for variant in ("int8", "float32"):
            assert f"{m[variant]['accuracy']:.4f}" in section
            assert f"{m[variant]['macro']['f1']:.4f}" in section
            for row in m[variant]["confusion_matrix"]:
                for v in row:
                    assert f">{v}</text>" in section
        assert '<svg class="cm"' in section and "<polyline" in section  # confusion picture and curves
        entry = manifest.entry(name).data
        tta = re.search(r"Test-time augmentation</span>: <b>([a-z-]+)</b>.*?passes per face</span>: (\d+)", section)
        assert tta and tta.group(1) == entry["tta"], name  # what the device applies, as the manifest says
        assert int(tta.group(2)) == {"none": 1, "flip": 2, "zoom-flip": 6}[entry["tta"]]
        for policy, acc in ((entry.get("tta_selection") or {}).get("int8_accuracy") or {}).items():
            assert f"{policy} <span class='num'>{acc:.4f}</span>" in section  # what val measured for each
        row = re.search(rf"<tr data-row='{re.escape(name)}'[^>]*>(.*?)</tr>", page, re.S).group(1)
        assert f"{m['int8']['accuracy']:.4f}" in row
    assert "Matriz de confusión" in page  # Spanish labels travel with the page
    assert "http://" not in page and "https://" not in page  # self-contained, opens offline


def test_peer_rows_from_compare_fer_reports(report, tmp_path):
    """A peer report written by `compare-fer` appears in the side-by-side table with its own numbers."""
    import numpy as np

    from edge.core.metrics import evaluate_probs
    from trainer.peer import write_report

    models = tmp_path / "models"
    shutil.copytree(report[0], models, ignore=shutil.ignore_patterns("detectors", "assets", "*.tflite"))
    rng = np.random.default_rng(3)
    labels = ("happy", "sad")
    metrics = evaluate_probs(rng.dirichlet((1, 1), 50), rng.integers(0, 2, 50), labels)
    write_report(
        {"package": "fer", "version": "0.0-test", "labels": list(labels), "metrics": metrics}, models, "binary-resnet"
    )
    page = build(models)
    row = re.search(r"<tr class='peer' data-peer='fer'>(.*?)</tr>", page, re.S).group(1)
    assert "fer 0.0-test" in row and f"{metrics['accuracy']:.4f}" in row and f"{metrics['macro']['f1']:.4f}" in row


def test_robustness_rows_from_robustness_reports(report, tmp_path):
    """Reports written by `robustness` (a model's and the fer peer's) appear under the comparison: clean accuracy,
    each effect's mean over its three severities and the mean over all corrupted sets, peers marked as such."""
    from trainer.robustness import write_report

    models = tmp_path / "models"
    shutil.copytree(report[0], models, ignore=shutil.ignore_patterns("detectors", "assets", "*.tflite"))
    levels = [{"severity": s, "level": s, "accuracy": a, "macro_f1": a} for s, a in ((1, 0.8), (2, 0.7), (3, 0.3))]
    base = {"split": "test", "n": 12, "corruptions": [{"corruption": "blur", "what": "", "levels": levels}]}
    ours = {"title": "binary-resnet v1 (int8)", "clean": {"accuracy": 0.9, "macro_f1": 0.9}}
    peer = {"title": "fer 0.0-test", "package": "fer", "clean": {"accuracy": 0.55, "macro_f1": 0.5}}
    write_report({**base, **ours, "mean_corrupted_accuracy": 0.6}, models, "robustness-binary-resnet")
    write_report({**base, **peer, "mean_corrupted_accuracy": 0.125}, models, "robustness-fer-binary-resnet")
    page = build(models)
    row = re.search(r"<tr data-robustness='binary-resnet v1 \(int8\)'>(.*?)</tr>", page, re.S).group(1)
    assert re.findall(r"<td class='num'>([0-9.]+)</td>", row) == ["12", "0.9000", "0.6000", "0.6000"]
    row = re.search(r"<tr class='peer' data-robustness='fer 0.0-test'>(.*?)</tr>", page, re.S).group(1)
    assert re.findall(r"<td class='num'>([0-9.]+)</td>", row) == ["12", "0.5500", "0.6000", "0.1250"]
    assert "Robustez ante efectos de cámara" in page and "<th>blur</th>" in page


def test_each_model_says_whether_exposure_is_normalised(report, tmp_path):
    """The model's section shows its exposure normalisation (on with its bounds, or off) and what val measured."""
    models = tmp_path / "models"
    shutil.copytree(report[0], models, ignore=shutil.ignore_patterns("detectors", "assets", "*.tflite"))
    data = json.loads((models / "manifest.json").read_text())
    e = data["models"]["binary-resnet"]
    e["preprocess"]["exposure"] = [120.25, 140.5, 66.75]
    e["exposure_selection"] = {"chosen": "on", "int8": {"off": {"clean_score": 1.5, "mean_corrupted_accuracy": 0.7}}}
    data["models"]["binary-scratch"]["preprocess"].pop("exposure", None)
    (models / "manifest.json").write_text(json.dumps(data))
    page = build(models, production=False)
    on = re.search(r'<section class="model" data-model="binary-resnet".*?</section>', page, re.S).group(0)
    assert "120.2–140.5 <span" in on and "</span> 66.8 <span" in on and "off: 1.5000 / 0.7000" in on
    off = re.search(r'<section class="model" data-model="binary-scratch".*?</section>', page, re.S).group(0)
    assert "Exposure normalisation" in off and "Normalización de exposición" in off and ">off<" in off


@pytest.mark.skipif(not CHROMIUM, reason="Debian chromium not installed (tests/run.sh installs it)")
def test_page_in_headless_chromium(report):
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright (test extra) not installed")
    models, out = report
    names = Manifest(models).names
    shots = Path(os.environ.get("EMOTION_EDGE_ARTIFACTS", out.parent))
    shots.mkdir(parents=True, exist_ok=True)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = browser.new_page(viewport={"width": 1200, "height": 1000})
        errors: list[str] = []
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(out.as_uri())
        assert page.locator("section[data-model='__all__']").is_visible()
        for name in names:
            page.select_option("#model", name)
            assert page.locator(f"section[data-model='{name}']").is_visible()
            assert not page.locator("section[data-model='__all__']").is_visible()
        # the drawn architecture of the production model, on screen
        default = Manifest(models).default_model
        page.select_option("#model", default)
        arch = page.locator(f"section[data-model='{default}'] svg.arch").first  # an ensemble draws one per member
        assert arch.is_visible() and arch.bounding_box()["width"] > 400
        arch.screenshot(path=str(shots / "report-architecture.png"))
        # filters by class set and family hide the other rows and models
        page.select_option("#model", "__all__")
        page.select_option("#f-classes", "2")
        visible = [r.get_attribute("data-row") for r in page.locator("tr[data-row]").all() if r.is_visible()]
        assert visible and all(n.startswith("binary") for n in visible)
        page.select_option("#f-family", "resnet")
        visible = [r.get_attribute("data-row") for r in page.locator("tr[data-row]").all() if r.is_visible()]
        assert visible == ["binary-resnet"]
        page.select_option("#f-classes", "")
        page.select_option("#f-family", "")
        assert page.locator("section.production img").count() >= 3
        page.click("#lang-es")
        assert "Matriz de confusión" in page.locator(f"section[data-model='{names[-1]}']").inner_text()
        page.screenshot(path=str(shots / "report.png"), full_page=True)
        browser.close()
    assert errors == []
    assert (shots / "report.png").stat().st_size > 10_000
    assert (shots / "report-architecture.png").stat().st_size > 5_000


def test_architecture_diagram_draws_every_shaping_layer(report):
    """Every conv, pooling, residual addition, dropout and dense layer of each model is a block, in order."""
    from trainer.figures import blocks

    models, out = report
    page = out.read_text()
    for name in Manifest(models).names:
        arch = Manifest(models).entry(name).data["architecture"]
        total = 0
        for net in arch.get("members") or [arch]:  # an ensemble: one diagram per member network
            drawn = blocks(net["layers"])
            skip = ("BatchNormalization", "ReLU", "InputLayer", "Rescaling")
            assert len(drawn) == len([x for x in net["layers"] if x["type"] not in skip]) + 1  # + the input block
            assert drawn[-1][0] == "softmax" and drawn[-1][1] == f"dense {len(Manifest(models).entry(name).labels)}"
            total += len(drawn)
        section = re.search(rf'<section class="model" data-model="{re.escape(name)}".*?</section>', page, re.S)
        assert section and section.group(0).count('<g class="block"') == total
        assert '<g class="legend">' in section.group(0)
    if "resnet" in " ".join(Manifest(models).names):
        arch = Manifest(models).entry("multiclass4-resnet").data["architecture"]
        assert all(any(k == "add" for k, _, _ in blocks(net["layers"])) for net in arch.get("members") or [arch])


def test_production_section_shows_the_demo_never_a_dataset_image(report):
    models, out = report
    page = out.read_text()
    section = re.search(r"<section class='production'>(.*?)</section>", page, re.S)
    assert section, "no production section"
    assert Manifest(models).default_model in section.group(1)
    assert section.group(1).count("data:image/jpeg;base64,") >= 3
    assert "alt='demo frame 0'" in section.group(1)  # frames of the built-in demo clip (public domain)
