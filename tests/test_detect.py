"""BlazeFace on the real TFLite interpreter, with a known face and a score floor."""

import numpy as np
import pytest

from edge.core.errors import UserError
from edge.detect import make_detector
from edge.detect.blazeface import ssd_anchors
from tests.conftest import tight_crop


def test_anchor_counts_match_mediapipe():
    assert len(ssd_anchors(128, (8, 16, 16, 16), 2)) == 896
    assert len(ssd_anchors(192, (4,), 1)) == 2304


@pytest.mark.parametrize("kind", ["blazeface-short", "blazeface-full"])
def test_astronaut_face_found(kind, astronaut):
    faces = make_detector(kind).detect(astronaut)
    assert len(faces) == 1
    f = faces[0]
    assert f.score > 0.8
    # Eileen Collins' face in skimage's astronaut.png spans roughly x 175-275, y 65-175.
    assert 150 < (f.x0 + f.x1) / 2 < 250 and 90 < (f.y0 + f.y1) / 2 < 160
    assert 80 < f.width < 130


def test_blank_frame_has_no_face():
    assert make_detector("blazeface-short").detect(np.full((480, 640, 3), 127, np.uint8)) == []


def test_max_faces_and_min_size(astronaut):
    assert make_detector("blazeface-short", min_size_px=200).detect(astronaut) == []
    assert make_detector("blazeface-short", max_faces=0).detect(astronaut) == []


def test_unknown_detector():
    with pytest.raises(UserError, match="unknown detector"):
        make_detector("haar")


@pytest.mark.parametrize("cut", [0.1, 0.15])
def test_pad_finds_a_face_cut_by_the_frame(astronaut, cut):
    """BlazeFace alone misses a face that fills the frame and is cut by its edges (a tight photo crop, a close-up);
    the padded pass finds it, and its box covers most of the frame."""
    face = make_detector("blazeface-short").detect(astronaut)[0]
    crop = tight_crop(astronaut, face, cut)
    assert make_detector("blazeface-short").detect(crop) == []
    found = make_detector("blazeface-short", pad=0.25).detect(crop)
    assert len(found) == 1 and found[0].score > 0.5
    assert found[0].width > 0.8 * crop.shape[1] and found[0].height > 0.8 * crop.shape[0]


def test_pad_keeps_the_faces_of_a_camera_frame(astronaut):
    """A face both passes find is kept once, as the pass that scored it higher saw it: on a frame whose face is
    whole, the padded detector answers exactly as the plain one."""
    plain = make_detector("blazeface-short").detect(astronaut)
    assert make_detector("blazeface-short", pad=0.25).detect(astronaut) == plain
    assert make_detector("blazeface-short", pad=0.25, max_faces=0).detect(astronaut) == []


@pytest.mark.parametrize("pad", [-0.1, 1.5])
def test_pad_out_of_range_is_a_user_error(pad):
    with pytest.raises(UserError, match="pad"):
        make_detector("blazeface-short", pad=pad)
    with pytest.raises(UserError, match="no options"):
        make_detector("full-frame", pad=0.25)


@pytest.mark.parametrize("frame_size", [(480, 640), (640, 480), (512, 512)])
def test_the_padded_pass_maps_boxes_back_to_the_frame(astronaut, frame_size):
    """A frame larger than the detector's input is shrunk before it is placed in the border (not bordered at full
    size, then shrunk): the face is boxed where the plain pass boxes it in the full-size bordered frame, in frames of
    either orientation, the face off-centre (a large one: the padded pass sees every face smaller, which is why the
    plain pass always runs too)."""
    import cv2

    from edge.detect.blazeface import _iou, _xyxy

    frame = np.full((*frame_size, 3), 90, np.uint8)
    side = min(frame_size) - 60
    frame[30 : 30 + side, frame_size[1] - side - 10 : frame_size[1] - 10] = cv2.resize(
        astronaut[20:260, 110:350], (side, side)
    )
    border = int(round(0.25 * max(frame_size)))
    bordered = cv2.copyMakeBorder(frame, border, border, border, border, cv2.BORDER_CONSTANT, value=0)
    det = make_detector("blazeface-short", pad=0.25)
    padded, reference = det._pass(frame, 0.25), det._pass(bordered, 0.0)
    assert len(padded) == 1 and len(reference) == 1
    assert _iou(_xyxy(padded[0]), _xyxy(reference[0])[None] - border)[0] > 0.9
