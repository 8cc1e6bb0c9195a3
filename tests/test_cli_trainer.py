"""emotion-trainer's help and its one-line errors for bad input (no tracebacks)."""

import cv2
import numpy as np
import pytest

SUBCOMMANDS = [
    "prepare",
    "crop-stats",
    "pretrain",
    "train",
    "refit",
    "export",
    "evaluate",
    "suite",
    "compare-fer",
    "robustness",
    "exposure",
    "report",
    "bench-batches",
    "ensemble",
    "combine",
    "record",
]


def test_help_lists_every_subcommand(run):
    proc = run("trainer", "--help")
    assert proc.returncode == 0
    for sub in SUBCOMMANDS:
        assert sub in proc.stdout
    assert "multiclass4-resnet" in run("trainer", "train", "--help").stdout


@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_subcommand_help(run, sub):
    proc = run("trainer", sub, "--help")
    assert proc.returncode == 0 and "usage: emotion-trainer " + sub in proc.stdout


def _one_line_error(proc, *needles):
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("emotion-trainer: error:")]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def _dataset(root, classes, n=3, size=48):
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            cv2.imwrite(str(root / c / f"{i}.png"), np.full((size, size), (40 * i) % 256, np.uint8))


def test_missing_folder(run, tmp_path):
    _one_line_error(run("trainer", "prepare", tmp_path / "nope", "--classes", "happy,sad"), "does not exist")


def test_class_with_no_images(run, tmp_path):
    _dataset(tmp_path / "d" / "train", ["happy"])
    (tmp_path / "d" / "train" / "sad").mkdir()
    proc = run("trainer", "train", "binary-scratch", tmp_path / "d", "--smoke")
    _one_line_error(proc, "class 'sad' has no images", "--map")


def test_unreadable_image(run, tmp_path):
    root = tmp_path / "d"
    for split in ("train", "val", "test"):
        _dataset(root / split, ["happy", "sad"])
    (root / "val" / "sad" / "broken.jpg").write_bytes(b"\x00garbage")
    _one_line_error(
        run("trainer", "prepare", root, "--classes", "happy,sad"), "cannot read image", "broken.jpg", "--skip-bad"
    )
    ok = run("trainer", "prepare", root, "--classes", "happy,sad", "--skip-bad")
    assert ok.returncode == 0, ok.stderr
    assert "unreadable" in ok.stdout


def test_unknown_spec(run, tmp_path):
    _one_line_error(run("trainer", "train", "ternary-vgg", tmp_path), "unknown model spec", "binary-scratch")


def test_label_mapping_and_unsplit_dataset(run, tmp_path):
    """A plain folder-per-class dataset (no split folders) with Spanish folder names mapped onto labels."""
    root = tmp_path / "fotos"
    _dataset(root, ["feliz", "triste", "otro"], n=40)
    proc = run("trainer", "prepare", root, "--classes", "happy,sad", "--map", "feliz=happy", "--map", "triste=sad")
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line.split()[1:] for line in proc.stdout.splitlines()[1:]}
    total = sum(int(rows[s][2]) for s in ("train", "val", "test"))
    assert total == 80  # 'otro' is ignored; all 80 mapped images land in exactly one split
    assert int(rows["train"][2]) > int(rows["test"][2])


def test_missing_backbone_is_explained(run, tmp_path):
    _dataset(tmp_path / "d" / "train", ["happy", "sad"])
    _one_line_error(
        run("trainer", "train", "binary-resnet", tmp_path / "d", "--runs", tmp_path / "runs"),
        "emotion-trainer pretrain",
    )


def test_compare_fer_without_fer_says_how_to_get_it(run, tmp_path):
    """CI has no `fer` (it lives in tests/bench/fer-env.sh's side environment): one line naming the fix."""
    import importlib.util

    if importlib.util.find_spec("fer") is not None:
        pytest.skip("fer is installed in this environment")
    _dataset(tmp_path / "d", ["happy", "sad", "surprise", "neutral"])
    _one_line_error(run("trainer", "compare-fer", str(tmp_path / "d")), "'fer' package is not installed", "fix:")


@pytest.mark.parametrize("classes", ["happy", "happy,happy"])
def test_classes_must_be_two_distinct(run, tmp_path, classes):
    _dataset(tmp_path / "d", ["happy", "sad"])
    _one_line_error(run("trainer", "prepare", tmp_path / "d", "--classes", classes), "two distinct")


def test_small_flat_dataset_names_the_empty_split(run, tmp_path):
    _dataset(tmp_path / "d", ["happy", "sad"], n=2)  # too few for a 10 % val share
    proc = run("trainer", "prepare", tmp_path / "d", "--classes", "happy,sad")
    _one_line_error(proc, "none falls into the", "split")


def test_read_only_cache_is_not_fatal(run, tmp_path):
    root = tmp_path / "d"
    for split in ("train", "val", "test"):
        _dataset(root / split, ["happy", "sad"])
    cache = tmp_path / "cache"
    cache.write_text("a file where the cache folder should be")  # unwritable even for root
    proc = run("trainer", "prepare", root, "--classes", "happy,sad", "--cache", cache)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "continuing without it" in proc.stderr


def test_crop_stats_runs_and_backs_the_shipped_crop(run, fer_root):
    """The command the preprocessing spec names as its source runs, and measures what the shipped models use."""
    import json

    from edge.core.paths import models_dir

    proc = run("trainer", "crop-stats", fer_root)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    got = {
        k.strip(): float(v)
        for k, v in (line.split(":", 1) for line in proc.stdout.splitlines() if ":" in line)
        if k.strip() in ("margin", "offset_y")
    }
    spec = json.loads((models_dir() / "manifest.json").read_text())["models"]["multiclass4-resnet"]["preprocess"]
    assert abs(got["margin"] - spec["margin"]) <= 0.01 and abs(got["offset_y"] - spec["offset_y"]) <= 0.01, (got, spec)


def test_bench_batches_times_the_training_input_pipeline(run, fer_root, tmp_path):
    """The command that measures the host side of training prints its numbers for both augmentation paths, and a
    bad count is one line."""
    import re

    for extra, path in (([], "one channel"), (["--three-channel"], "three channels")):
        proc = run(
            "trainer", "bench-batches", "binary-scratch", fer_root, "--smoke", "--cache", tmp_path, "--batches", "3",
            "--threads", "2", *extra,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        m = re.search(
            r"3 training batches of 64 \(.*grey faces as (.+)\), 2 thread\(s\): ([\d.]+) ms per batch", proc.stdout
        )
        assert m and m.group(1) == path and float(m.group(2)) > 0, proc.stdout
    proc = run("trainer", "bench-batches", "binary-scratch", fer_root, "--smoke", "--cache", tmp_path, "--threads", "0")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "--threads" in proc.stderr, proc.stderr
