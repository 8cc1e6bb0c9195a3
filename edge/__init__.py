"""emotion-edge: real-time facial-emotion recognition on camera boards (device side; never imports TensorFlow)."""

import os

__version__ = "0.1.0"

# OpenCV and its FFmpeg print their own warnings for a missing camera or a corrupt video; our one-line error (or
# the fault log) already says it, with the fix. Users who want them back set these variables themselves.
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
