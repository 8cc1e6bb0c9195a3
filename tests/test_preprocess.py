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
    for x, path in zip(split.x, split.paths, strict=True):
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
    """`--faces detect` crops come from the device's detector + preprocessing, byte for byte, the detector set as
    `emotion-edge analyze` sets it for still images."""
    from edge.detect import STILL_IMAGE_PAD, make_detector
    from trainer.dataset import load_split

    root = tmp_path / "photos"
    _photo_dataset(root, astronaut)
    spec = PreprocessSpec()
    labels = ("happy", "sad")
    detector = make_detector("blazeface-full", pad=STILL_IMAGE_PAD)  # full range: faces of surveillance size
    s = load_split(root, "train", labels, spec, faces="detect", detector_type="blazeface-full")
    assert s.counts() == {"happy": 2, "sad": 2} and s.skipped == {}
    for path, x in zip(s.paths, s.x, strict=True):
        frame = cv2.imread(path, cv2.IMREAD_COLOR)
        faces = detector.detect(frame)
        box = max(faces, key=lambda b: b.width * b.height)
        assert np.array_equal(x, preprocess_face(frame, box, spec))


def test_batches_keep_bytes(fer_root, tmp_path):
    """Evaluation batches feed the model exactly the preprocessed bytes (as floats), in order, through the
    backend's input pipeline as well."""
    keras = pytest.importorskip("keras")
    from trainer.dataset import load_split
    from trainer.train import FaceBatches, batches

    split = load_split(fer_root, "val", ("happy", "sad"), PreprocessSpec(), per_class_limit=5, cache_dir=tmp_path)
    faces = FaceBatches(split, 64, 2, training=False, seed=0, augment=False)
    xb, yb = faces.get(0, 0)
    assert np.array_equal(xb, split.x.astype(np.float32))
    assert np.array_equal(yb.argmax(1), split.y)
    fed = list(batches(keras, faces))
    assert len(fed) == 1 and np.array_equal(np.asarray(fed[0][0]), xb) and np.array_equal(np.asarray(fed[0][1]), yb)
    if keras.backend.backend() == "tensorflow":  # no autotuning thread for Keras to wait on at each epoch's end
        assert batches(keras, faces).options().autotune.enabled is False


@pytest.mark.parametrize("effects", [0.0, 1.0])
def test_grey_faces_are_augmented_as_one_channel_to_the_same_faces(fer_root, tmp_path, effects):
    """Training batches of grey faces are augmented on one channel and replicated; the faces are those the
    three-channel path makes, to float rounding (a grey level here and there after JPEG), and a colour face still
    takes the three-channel path."""
    from trainer.dataset import load_split
    from trainer.train import FaceBatches

    split = load_split(fer_root, "val", ("happy", "sad"), PreprocessSpec(), per_class_limit=40, cache_dir=tmp_path)
    fast = FaceBatches(split, 32, 2, training=True, seed=3, augment=True, erase=0.5, effects=effects)
    full = FaceBatches(split, 32, 2, training=True, seed=3, augment=True, erase=0.5, effects=effects, one_channel=False)
    assert fast.grey and not full.grey and not FaceBatches(split, 32, 2, training=False, seed=3, augment=True).grey
    for epoch, i in ((0, 0), (2, 1)):
        a, b = fast.get(i, epoch)[0], full.get(i, epoch)[0]
        assert a.shape == b.shape == (32, *split.x.shape[1:]) and (a == a[..., :1]).all()
        off = np.abs(a - b) > 1e-3  # float rounding: an exposure a hair apart can round to the next JPEG level
        assert off.mean() < 1e-3 and np.abs(a - b).max() <= 2.0, (off.mean(), np.abs(a - b).max())
        assert not np.allclose(a, split.x[np.random.default_rng((3, epoch)).permutation(80)[32 * i : 32 * (i + 1)]])
    split.x[0, 0, 0, 1] ^= 1  # one colour pixel: not grey any more
    assert not FaceBatches(split, 32, 2, training=True, seed=3, augment=True).grey


# --- golden bytes: a fixed input must give these exact model inputs, on each path separately --------------------
def _golden_frame() -> np.ndarray:
    """A deterministic 160x120 BGR frame (no RNG, no file): gradients and a bright square."""
    y, x = np.mgrid[0:120, 0:160]
    img = np.stack([(x * 7 + y * 3) % 256, (x * 2 + y * 11) % 256, (x * 5 + y * 5 + 60) % 256], axis=-1)
    img[40:80, 60:100] = (250, 240, 230)
    return img.astype(np.uint8)


# sha256 of the uint8 bytes each path produces today. A change here means every shipped model now sees different
# inputs than it was trained and calibrated on: retrain/re-export, or fix the regression.
GOLDEN_DEVICE = "a3d4d5d13dab47051eba02da2f07155fe709e7d84e3dc666897ff6153bb12dc0"
GOLDEN_TRAINER = "6aa555e25c098f7bb28f253efb20d920b427ad547e84b77753c39d053e096069"


def _sha(a: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def test_golden_bytes_device_path():
    """The device path: a detector box in a camera frame, the shipped spec."""
    out = preprocess_face(_golden_frame(), Box(50.0, 30.0, 110.0, 95.0), PreprocessSpec())
    assert out.shape == (100, 100, 3) and _sha(out) == GOLDEN_DEVICE


def test_golden_bytes_trainer_path(tmp_path):
    """The trainer path: an already-cropped face read from disk by the dataset loader (PNG is lossless)."""
    from trainer.dataset import DataOptions

    for label in ("happy", "sad"):
        (tmp_path / "train" / label).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "train" / label / "face.png"), _golden_frame()[:, :: 1 if label == "happy" else -1])
    split = DataOptions(tmp_path).load("train", ("happy", "sad"), PreprocessSpec())
    assert split.paths[0].endswith("happy/face.png") and _sha(split.x[0]) == GOLDEN_TRAINER


BOUNDS = (120.0, 140.0, 60.0)


def test_exposure_leaves_a_typical_face_alone_and_stretches_the_others(astronaut):
    from edge.core.preprocess import normalize_exposure

    grey = cv2.cvtColor(cv2.resize(astronaut[20:220, 130:330], (100, 100)), cv2.COLOR_BGR2GRAY)
    f = grey.astype(np.float32)
    typical = np.clip((f - f.mean()) / f.std() * 70 + 130, 0, 255).astype(np.uint8)
    assert normalize_exposure(typical, BOUNDS) is typical  # inside the range: the very same bytes
    for changed in (typical // 4, 255 - (255 - typical) // 4, (typical // 4 + 96)):  # dark, bright, flat
        out = normalize_exposure(changed, BOUNDS).astype(np.float32)
        assert BOUNDS[0] - 1 <= out.mean() <= BOUNDS[1] + 1 and out.std() >= BOUNDS[2] - 2, (out.mean(), out.std())
        # a linear map: the face's order of grey levels is kept
        assert np.corrcoef(out.ravel(), changed.ravel().astype(np.float32))[0, 1] > 0.99
    flat = np.full((10, 10, 3), 30, np.uint8)
    assert (normalize_exposure(flat, BOUNDS) == 120).all()  # nothing to stretch: only moved into range


def test_exposure_in_the_spec_the_preprocessing_and_the_manifest():
    from edge.core.manifest import model_version

    spec = PreprocessSpec.from_dict({**PreprocessSpec().to_dict(), "exposure": list(BOUNDS)})
    assert spec.exposure == BOUNDS and spec.to_dict()["exposure"] == list(BOUNDS)
    assert "exposure" not in PreprocessSpec().to_dict()  # off: the dict (manifests, cache keys) is as before it
    dark = np.full((48, 48), 20, np.uint8)
    dark[10:30, 10:30] = 40
    off, on = preprocess_face(dark, None, PreprocessSpec()), preprocess_face(dark, None, spec)
    assert off[:, :, 0].mean() < 40 and BOUNDS[0] - 1 <= on[:, :, 0].mean() <= BOUNDS[1] + 1
    assert (on[:, :, 0] == on[:, :, 2]).all()
    for bad in ([1, 2], [140, 120, 60], [120, 140, -1], [120, 140, True], "on"):
        with pytest.raises(UserError, match="exposure"):
            PreprocessSpec(exposure=bad)
    entry = {"variants": {"int8": {"sha256": "ab"}}, "tta": "none", "preprocess": PreprocessSpec().to_dict()}
    with_it = {**entry, "preprocess": spec.to_dict()}
    assert model_version(entry) == model_version({k: v for k, v in entry.items() if k != "preprocess"})
    assert model_version(with_it) != model_version(entry)  # it changes the answers, so the version
