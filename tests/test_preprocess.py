"""The one preprocessing implementation, and train/device parity (byte-identical model inputs)."""

import cv2
import numpy as np
import pytest

from edge.core.errors import UserError
from edge.core.preprocess import PreprocessSpec, preprocess_face, square_box
from edge.core.types import Box


def test_whole_image_gray_replicated():
    img = np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    out = preprocess_face(img, None, PreprocessSpec())
    assert out.shape == (100, 100, 3) and out.dtype == np.uint8
    assert (out[:, :, 0] == out[:, :, 1]).all() and (out[:, :, 1] == out[:, :, 2]).all()
    gray = cv2.resize(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), (100, 100), interpolation=cv2.INTER_LINEAR)
    assert (out[:, :, 0] == gray).all()


def test_rgb_mode_keeps_colour_in_rgb_order():
    img = np.zeros((20, 20, 3), np.uint8)
    img[:, :, 0] = 200  # blue in BGR
    out = preprocess_face(img, None, PreprocessSpec(size=10, color="rgb"))
    assert out[5, 5].tolist() == [0, 0, 200]


def test_margin_and_offset_square():
    x0, y0, side = square_box(Box(100, 100, 200, 180), 640, 480, margin=0.1, offset_y=-0.1)
    assert side == 120  # longer side 100, +10% each side
    assert x0 == 150 - 60 and y0 == round(140 - 10 - 60)


def test_face_at_border_is_padded_not_stretched():
    img = np.full((100, 100), 255, np.uint8)
    img[:, :10] = 0
    out = preprocess_face(img, Box(-20, 0, 40, 60), PreprocessSpec(size=60, channels=1, margin=0.0, offset_y=0.0))
    assert out.shape == (60, 60, 1)
    assert out[:, :20].max() == 0  # left padding replicates the dark edge column
    assert out[:, 35:].min() == 255


def test_bad_inputs_are_user_errors():
    with pytest.raises(UserError, match="uint8"):
        preprocess_face(np.zeros((10, 10), np.float32), None, PreprocessSpec())
    with pytest.raises(UserError, match="color"):
        PreprocessSpec(color="bgr")
    with pytest.raises(UserError, match="outside"):
        preprocess_face(np.zeros((10, 10), np.uint8), Box(50, 50, 60, 60), PreprocessSpec(margin=0))
    with pytest.raises(UserError, match="unknown preprocess keys"):
        PreprocessSpec.from_dict({"size": 100, "colour": "gray"})


def test_cropped_dataset_parity(fer_root, tmp_path):
    """Trainer arrays == the device's preprocess_face on the same files read the same way."""
    from trainer.dataset import load_split

    spec = PreprocessSpec()
    split = load_split(fer_root, "test", ("happy", "sad"), spec, per_class_limit=10, cache_dir=tmp_path)
    for x, path in zip(split.x, split.paths):
        frame = cv2.imread(path, cv2.IMREAD_COLOR)
        assert np.array_equal(x, preprocess_face(frame, None, spec))
    cached = load_split(fer_root, "test", ("happy", "sad"), spec, per_class_limit=10, cache_dir=tmp_path)
    assert np.array_equal(cached.x, split.x) and cached.paths == split.paths


def _photo_dataset(root, astronaut):
    """Raw photos: the public-domain astronaut placed at different scales/positions in bigger frames."""
    for cls, scale in (("happy", 1.0), ("sad", 0.7)):
        (root / "train" / cls).mkdir(parents=True)
        for i in range(2):
            frame = np.full((480, 640, 3), 90, np.uint8)
            face = cv2.resize(astronaut, None, fx=scale * 0.8, fy=scale * 0.8)
            h, w = face.shape[:2]
            frame[40 * i : 40 * i + h, 60 * i : 60 * i + w] = face[: 480 - 40 * i, : 640 - 60 * i]
            cv2.imwrite(str(root / "train" / cls / f"{i}.png"), frame)


def test_raw_photo_parity_with_device_path(tmp_path, astronaut):
    """`--faces detect` crops come from the device's detector + preprocessing, byte for byte."""
    from edge.detect import make_detector
    from trainer.dataset import load_split

    root = tmp_path / "photos"
    _photo_dataset(root, astronaut)
    spec = PreprocessSpec()
    labels = ("happy", "sad")
    detector = make_detector("blazeface-full")  # full range: faces of surveillance size
    s = load_split(root, "train", labels, spec, faces="detect", detector_type="blazeface-full")
    assert s.counts() == {"happy": 2, "sad": 2} and s.skipped == {}
    for path, x in zip(s.paths, s.x):
        frame = cv2.imread(path, cv2.IMREAD_COLOR)
        faces = detector.detect(frame)
        box = max(faces, key=lambda b: b.width * b.height)
        assert np.array_equal(x, preprocess_face(frame, box, spec))


def test_tf_data_pipeline_keeps_bytes(fer_root, tmp_path):
    """The evaluation tf.data path feeds the model exactly the preprocessed bytes (as floats)."""
    tf = pytest.importorskip("tensorflow")
    from trainer.dataset import load_split
    from trainer.train import _dataset

    split = load_split(fer_root, "val", ("happy", "sad"), PreprocessSpec(), per_class_limit=5, cache_dir=tmp_path)
    xb, yb = next(iter(_dataset(tf, split, 64, 2, training=False, seed=0, augment=False)))
    assert np.array_equal(xb.numpy(), split.x.astype(np.float32))
    assert np.array_equal(yb.numpy().argmax(1), split.y)
