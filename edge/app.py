"""Wire the daemon from a Config: classifier, detector, camera, publisher; signals; clean shutdown."""

from __future__ import annotations

import logging
import signal
import threading

from edge.camera import FrameSource, make_source
from edge.camera.capture import LatestFrameCapture
from edge.classify.tflite import TFLiteClassifier
from edge.config import Config
from edge.detect import Detector, make_detector
from edge.health import Notifier
from edge.pipeline import Pipeline
from edge.preview import Preview
from edge.publish import make_publisher
from edge.publish.base import Publisher

log = logging.getLogger(__name__)


def configure_process() -> None:
    """Process-wide settings of the frame loop. OpenCV's worker threads are turned off: the loop's OpenCV
    work is small (a 160-px motion copy, a letterbox, a face crop), and the workers spin between jobs, costing
    more CPU than they save at camera rate (seen on the 2-core dev machine: the empty scene's CPU roughly halved)."""
    import cv2

    cv2.setNumThreads(1)


def build_parts(cfg: Config) -> tuple[TFLiteClassifier, Detector, FrameSource]:
    """Everything that can fail on a user mistake, in the order a user would fix it."""
    c = cfg.classifier
    classifier = TFLiteClassifier.from_manifest(c.model or None, c.variant, c.threads, c.models_dir or None)
    d = cfg.detector
    detector = make_detector(
        d.type,
        score_threshold=d.score_threshold,
        iou_threshold=d.iou_threshold,
        min_size_px=d.min_face_px,
        max_faces=d.max_faces,
        num_threads=d.threads,
        pad=d.pad,
    )
    source = make_source(cfg.camera)
    return classifier, detector, source


def _preview(cfg: Config) -> Preview:
    from edge.config import preview_password

    p = cfg.preview
    return Preview(p.listen, p.username, preview_password(p), p.max_fps, p.jpeg_quality).start()


def run(
    cfg: Config,
    max_seconds: float | None = None,
    stop: threading.Event | None = None,
    publisher: Publisher | None = None,
    on_pipeline=None,
) -> int:
    """The daemon until stop/SIGTERM/SIGINT or max_seconds. `publisher` replaces the configured one and
    `on_pipeline` receives the Pipeline once built (the soak benchmark samples it)."""
    notifier = Notifier()
    stop = stop or threading.Event()

    def on_signal(signum, frame):
        log.info("%s received: stopping", signal.Signals(signum).name)
        stop.set()

    if threading.current_thread() is threading.main_thread():  # a SIGTERM during start-up also stops cleanly
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    configure_process()
    classifier, detector, source = build_parts(cfg)
    # The publisher is built (credentials, TLS files, outbox) before the capture thread starts: a mistake found
    # there must not leave a reader thread inside OpenCV while the process exits.
    publisher = publisher or make_publisher(cfg, classifier.labels, classifier.name)
    preview = _preview(cfg) if cfg.preview.enabled else None  # a port that cannot be bound: one line, like the rest
    capture = LatestFrameCapture(source, cfg.camera.reconnect_max_s, make_source=lambda: make_source(cfg.camera))
    capture.start()
    try:
        publisher.start()
    except BaseException:
        capture.stop()
        if preview is not None:
            preview.close()
        raise
    log.info(
        "running: model %s (%s, test-time augmentation %s), detector %s, camera %s (%s), publisher %s",
        classifier.name,
        classifier.variant,
        classifier.tta,
        detector.name,
        cfg.camera.name,
        cfg.camera.type,
        publisher.health().get("publisher", cfg.publisher),
    )
    pipeline = Pipeline(cfg, capture, detector, classifier, publisher, notifier, preview)
    if on_pipeline is not None:
        on_pipeline(pipeline)
    try:
        pipeline.run(stop, max_seconds)
    finally:
        notifier.stopping()
        capture.stop()
        publisher.close()
        if preview is not None:
            preview.close()
    return 0
