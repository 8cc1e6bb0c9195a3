"""emotion-edge: real-time facial-emotion recognition on camera boards (device side; never imports TensorFlow)."""

__version__ = "0.1.0"
