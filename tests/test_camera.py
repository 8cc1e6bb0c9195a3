"""Frame sources: real video files and image folders through OpenCV; the Pi camera behind a fake picamera2."""

from __future__ import annotations

import sys
import time
import types

import cv2
import numpy as np
import pytest

from edge.camera import make_source
from edge.camera.base import CameraError
from edge.camera.capture import LatestFrameCapture
from edge.config import CameraConfig
from edge.core.errors import UserError


def test_file_source_reads_and_loops(blink_clip):
    src = make_source(CameraConfig(type="file", path=str(blink_clip), realtime=False, loop=True))
    src.open()
    frames = [src.read() for _ in range(250)]  # the clip has 240 frames: looping continues
    src.close()
    assert all(f is not None and f.shape == (480, 640, 3) for f in frames)


def test_file_source_ends_without_loop(blink_clip):
    src = make_source(CameraConfig(type="file", path=str(blink_clip), realtime=False, loop=False))
    src.open()
    n = 0
    while src.read() is not None:
        n += 1
    assert n == 240


def test_latest_frame_only_and_drops_counted(blink_clip):
    cap = LatestFrameCapture(make_source(CameraConfig(type="file", path=str(blink_clip), realtime=False, loop=False)))
    cap.start()
    time.sleep(0.5)  # the pipeline is "busy": the capture thread races ahead
    frame = cap.get()
    while not cap.finished:
        time.sleep(0.05)
    cap.stop()
    assert frame is not None
    assert cap.captured == 240 and cap.dropped >= 200  # stale frames were replaced, and counted


def test_image_folder(tmp_path):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((40, 50, 3), i * 50, np.uint8))
    src = make_source(CameraConfig(type="images", path=str(tmp_path), realtime=False, loop=False))
    src.open()
    frames = [src.read() for _ in range(4)]
    assert [int(f[0, 0, 0]) for f in frames[:3]] == [0, 50, 100] and frames[3] is None


class Flaky:
    """A camera that is unplugged after 5 frames and comes back on the second reopen."""

    name = "flaky"

    def __init__(self):
        self.opens = 0
        self.n = 0

    def open(self):
        self.opens += 1
        if self.opens == 2:
            raise CameraError("still unplugged")

    def read(self):
        self.n += 1
        if self.n == 6:
            raise CameraError("unplugged")
        if self.n > 12:
            return None
        return np.zeros((4, 4, 3), np.uint8)

    def close(self):
        pass


def test_lost_camera_is_retried_not_fatal():
    cap = LatestFrameCapture(Flaky(), reconnect_max_s=0.1)
    cap.start()
    deadline = time.monotonic() + 10
    while not cap.ended and time.monotonic() < deadline:
        time.sleep(0.02)
    cap.stop()
    assert cap.ended and cap.captured == 11
    # one outage (counted once), two failed attempts in it (the read, then the first reopen); recovered
    assert cap.reconnects == 1 and cap.health.total_failures == 2 and not cap.health.failing


def test_unreachable_stream_retries_in_background():
    cap = LatestFrameCapture(
        make_source(CameraConfig(type="stream", url="rtsp://127.0.0.1:9/none")), reconnect_max_s=0.2
    )
    cap.start()  # does not raise: a stream that is not up yet is retried
    time.sleep(1.0)
    assert not cap.finished and cap.reconnects >= 1
    cap.stop()


def test_missing_gstreamer_or_device_is_a_user_error():
    with pytest.raises(UserError):
        make_source(CameraConfig(type="opencv", path="/dev/video99")).open()


@pytest.fixture
def fake_picamera2(monkeypatch):
    """Stands in for the Pi camera module (hardware not present here), with picamera2's API shape."""
    calls = {}

    class Picamera2:
        def create_video_configuration(self, main, controls=None, colour_space=None):
            calls["config"] = {"main": main, "controls": controls, "colour_space": colour_space}
            return calls["config"]

        def configure(self, config):
            calls["configured"] = config

        def start(self):
            calls["started"] = True

        def capture_array(self, stream="main"):
            w, h = calls["config"]["main"]["size"]
            return np.full((h, w, 3), 7, np.uint8)

        def stop(self):
            calls["stopped"] = True

        def close(self):
            pass

    class ColorSpace:
        @staticmethod
        def Sycc():
            return "sYCC"

    monkeypatch.setitem(sys.modules, "picamera2", types.SimpleNamespace(Picamera2=Picamera2))
    monkeypatch.setitem(sys.modules, "libcamera", types.SimpleNamespace(ColorSpace=ColorSpace))
    return calls


def test_picamera2_source_full_range_bgr(fake_picamera2):
    src = make_source(CameraConfig(type="picamera2", width=320, height=240, fps=15))
    src.open()
    frame = src.read()
    src.close()
    assert frame.shape == (240, 320, 3) and frame.dtype == np.uint8
    cfg = fake_picamera2["config"]
    assert cfg["main"]["format"] == "RGB888" and cfg["colour_space"] == "sYCC"  # full range asked for explicitly
    assert fake_picamera2["stopped"]


def test_picamera2_missing_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)
    with pytest.raises(UserError, match="python3-picamera2"):
        make_source(CameraConfig(type="picamera2")).open()
