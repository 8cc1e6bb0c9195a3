"""BlazeFace on the real TFLite interpreter, with a known face and a score floor."""

import numpy as np
import pytest

from edge.core.errors import UserError
from edge.detect import make_detector
from edge.detect.blazeface import ssd_anchors


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
