"""The frame loop, written only against the interfaces: capture -> detect -> crop -> classify -> track -> publish."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

from edge.camera.base import Capture
from edge.classify.base import Classifier
from edge.config import Config
from edge.core.payload import event_payload, summary_payload, utc_now_iso
from edge.core.preprocess import preprocess_face
from edge.detect.base import Detector
from edge.faults import FaultState
from edge.health import Notifier, soc_health
from edge.motion import ClassifyBudget, MotionGate
from edge.preview import Preview, event_item, marks
from edge.publish.base import Publisher
from edge.stats import Stats
from edge.track import Tracker, TrackEvent

log = logging.getLogger(__name__)


class Pipeline:
    def __init__(
        self,
        cfg: Config,
        capture: Capture,
        detector: Detector,
        classifier: Classifier,
        publisher: Publisher,
        notifier: Notifier | None = None,
        preview: Preview | None = None,
    ):
        self.cfg = cfg
        self.capture = capture
        self.detector = detector
        self.classifier = classifier
        self.publisher = publisher
        self.notifier = notifier or Notifier()
        self.preview = preview  # the opt-in live view: fed only while someone watches
        t = cfg.tracking
        self.tracker = Tracker(
            classifier.labels, t.iou_threshold, t.max_missing_s, t.smoothing_s, t.min_confidence, t.min_duration_s
        )
        g = cfg.gating
        self.gate = MotionGate(
            g.enabled,
            g.motion_width,
            g.motion_threshold,
            g.motion_min_fraction,
            g.idle_detect_interval_s,
            g.detect_hz,
            g.max_detect_hz,
        )
        self.budget = ClassifyBudget(cfg.classifier.max_classify_hz)
        hz = cfg.classifier.classify_hz
        self.classify_interval_s = 1.0 / hz if hz > 0 else 0.0
        self.batch = cfg.classifier.batch
        self.stats = Stats()
        self.t_start = time.monotonic()
        self.frame_size = (0, 0)
        self.summary_counts: Counter = Counter()
        self.summary_tracks: dict[str, set] = {}
        self.summary_faces = 0
        self.state_key: tuple | None = None  # (dominant, faces, counts) last published; None: publish at start
        self.processing = FaultState("frame processing")  # detector/classifier/tracker/publisher raising after READY
        self.frames_failed = 0
        self.last_ok_mono = self.t_start  # last frame processed without a fault
        self.last_restart_mono = self.t_start
        self.hung_restarts = 0  # capture restarts since the last frame
        self.wedged = False  # watchdog pings withheld so systemd restarts the process

    # -- publishing ----------------------------------------------------------------------
    def _publish_events(self, events: list[TrackEvent]) -> None:
        for ev in events:
            if ev.emotion != "unknown":
                self.summary_tracks.setdefault(ev.emotion, set()).add(ev.track_id)
            self.stats.events += 1
            if self.preview is not None:
                self.preview.event(event_item(ev))
            if not self.cfg.aggregate_only:
                self.publisher.durable("events", self._event_builder(ev))

    def _event_builder(self, ev: TrackEvent) -> Callable[[int], dict[str, Any]]:
        """The payload of one event, built by the publisher once it has the event's sequence number."""
        w, h = self.frame_size

        def build(seq: int) -> dict[str, Any]:
            return event_payload(
                ev,
                device_id=self.cfg.device_id,
                camera=self.cfg.camera.name,
                seq=seq,
                model=self.classifier.name,
                model_version=self.classifier.version,
                frame_w=w,
                frame_h=h,
            )

        return build

    def _end_tracks(self, now: float) -> None:
        """Shutting down: every live track leaves."""
        self._publish_events(self.tracker.flush(now))
        self._publish_state()

    def _age_tracks(self, now: float) -> None:
        """No frame this time round: tracks that left still end (leave events, new state)."""
        self._publish_events(self.tracker.age(now))
        self._publish_state()

    def _publish_state(self, force: bool = False) -> None:
        """The retained state: at start-up, whenever the faces or their emotions change, and periodically (force)."""
        emotions = [t.emotion for t in self.tracker.tracks.values() if t.emotion]
        counts = Counter(emotions)
        dominant = counts.most_common(1)[0][0] if emotions else "none"
        key = (dominant, len(emotions), tuple(sorted(counts.items())))
        if key != self.state_key or force:
            self.state_key = key
            self.publisher.transient(
                "state",
                {
                    "schema_version": 1,
                    "timestamp": utc_now_iso(),
                    "device_id": self.cfg.device_id,
                    "camera": self.cfg.camera.name,
                    "dominant_emotion": dominant,
                    "faces": len(emotions),
                    "counts": dict(counts),
                },
                retain=True,
            )

    def _publish_stats(self, elapsed_s: float) -> None:
        rates = self.stats.interval(elapsed_s, self.capture.captured, self.capture.dropped)
        payload = {
            "schema_version": 1,
            "timestamp": utc_now_iso(),
            "device_id": self.cfg.device_id,
            "camera": self.cfg.camera.name,
            "uptime_s": round(time.monotonic() - self.t_start, 1),
            "interval_s": round(elapsed_s, 2),
            **rates,
            "frames_processed": self.stats.frames,
            "frames_captured": self.capture.captured,
            "frames_skipped_total": self.capture.dropped,
            "camera_reconnects": self.capture.reconnects,
            "camera_health": self._camera_health(),
            "frames_failed": self.frames_failed,
            "detector_runs": self.stats.detector_runs,
            "classifications": self.stats.classifications,
            "events": self.stats.events,
            "tracks": len(self.tracker.tracks),
            "latency_ms": self.stats.latency(),
            "model": {
                "name": self.classifier.name,
                "version": self.classifier.version,
                "variant": self.classifier.variant,
            },
            "detector": self.detector.name,
            **self.publisher.health(),
            **soc_health(),
        }
        self.publisher.transient("stats", payload)
        if self.preview is not None:
            self.preview.stats(payload)
        self._publish_state(force=True)  # a subscriber that missed a change is right again within one stats interval
        self.notifier.status(self._status_line(rates["processed_fps"]))
        log.info(
            "stats: %.1f processed fps (captured %.1f), %d skipped, outbox %s",
            rates["processed_fps"],
            rates["capture_fps"],
            rates["skipped_frames"],
            payload.get("outbox_depth"),
        )

    def _publish_summary(self, interval_s: float) -> None:
        counts = {label: int(self.summary_counts.get(label, 0)) for label in self.classifier.labels}
        tracks = {label: len(self.summary_tracks.get(label, ())) for label in self.classifier.labels}
        faces = self.summary_faces
        self.publisher.durable(
            "summary",
            lambda seq: summary_payload(
                device_id=self.cfg.device_id,
                camera=self.cfg.camera.name,
                seq=seq,
                interval_s=interval_s,
                counts=counts,
                tracks=tracks,
                faces_seen=faces,
            ),
        )
        self.summary_counts.clear()
        self.summary_tracks = {t.emotion: {t.id} for t in self.tracker.tracks.values() if t.emotion}
        self.summary_faces = 0

    def _camera_health(self) -> dict:
        h = self.capture.health
        return {
            "state": "lost" if h.failing else "ok",
            "outages": h.outages,
            "reconnect_attempts": h.total_failures,
            "restarts": self.capture.restarts,
        }

    def _status_line(self, fps: float) -> str:
        h = self.capture.health
        if self.wedged:
            return "camera reader blocked; waiting for the systemd watchdog to restart the service"
        if h.failing:
            return f"camera lost, reconnecting, attempt {h.attempts}: {h.last_error[:80]}"
        if self.processing.failing:
            return f"{fps:.1f} fps, frames failing: {self.processing.last_error[:80]}"
        return f"{fps:.1f} fps, {len(self.tracker.tracks)} faces"

    def _liveness(self, now: float) -> None:
        """Ping the systemd watchdog only while the service makes progress: frames are processed, or the camera
        reader is cycling through reconnect attempts. A reader blocked past frame_timeout_s is abandoned and
        replaced; after two replacements that block too, the pings stop and systemd restarts the process."""
        cap, timeout = self.capture, self.cfg.camera.frame_timeout_s
        last_frame = max(cap.last_frame_mono or self.t_start, self.last_restart_mono)
        if cap.last_frame_mono is not None and cap.last_frame_mono > self.last_restart_mono:
            self.hung_restarts = 0
            self.wedged = False
        blocked = now - last_frame > timeout and now - cap.heartbeat_mono > timeout
        if blocked and not cap.ended:
            if self.hung_restarts < 2 or self.notifier.watchdog_interval_s is None:
                cap.restart(f"no frame for {now - last_frame:.0f} s (camera.frame_timeout_s = {timeout:g})")
                self.hung_restarts += 1
                self.last_restart_mono = now
                self.notifier.status(self._status_line(0.0))
            elif not self.wedged:
                self.wedged = True
                log.error(
                    "camera %s: the reader blocked again after %d restarts; stopping watchdog pings so systemd "
                    "restarts the service",
                    cap.name,
                    self.hung_restarts,
                )
                self.notifier.status(self._status_line(0.0))
        processing_stuck = now - self.last_ok_mono > timeout and (cap.last_frame_mono or 0) > self.last_ok_mono
        if not self.wedged and not processing_stuck:
            self.notifier.watchdog(now)

    def _process_guarded(self, image: np.ndarray, t_capture: float) -> None:
        """After READY a failing stage drops the frame (counted, logged once per episode), never the daemon."""
        try:
            self.process(image, t_capture)
        except Exception as exc:  # noqa: BLE001 - the fatality boundary: nothing is fatal after READY
            self.frames_failed += 1
            self.processing.fail(f"{type(exc).__name__}: {exc}")
            return
        self.processing.ok()
        self.last_ok_mono = time.monotonic()

    def _guarded(self, what: str, fn: Callable[..., object], *args: object) -> None:
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001
            self.processing.fail(f"{what}: {type(exc).__name__}: {exc}")

    # -- the loop ------------------------------------------------------------------------
    def process(self, image: np.ndarray, t_capture: float) -> int:
        """One frame through every stage; returns the number of faces in view.

        The frame's capture time drives gating and tracking. Motion gating decides whether the detector runs
        (edge/motion.py); on the frames it runs, each face is classified when Tracker.due says so (a new face
        at once, a tracked one at most classifier.classify_hz times a second), the due faces in one batch.
        Between detections the tracks keep their boxes and smoothed emotions."""
        st = self.stats
        t0 = time.monotonic()
        st.add("capture_age", t0 - t_capture)
        now = t_capture
        self.frame_size = (image.shape[1], image.shape[0])
        tracked = [t.box for t in self.tracker.tracks.values()]
        detect = self.gate.should_detect(now, image, tracked)
        t1 = time.monotonic()
        st.add("motion", t1 - t0)
        if detect:
            boxes = self.detector.detect(image)
            t2 = time.monotonic()
            due = self.budget.select(now, self.tracker.due(now, boxes, self.classify_interval_s))
            crops = [preprocess_face(image, b, self.classifier.spec) for b, d in zip(boxes, due, strict=True) if d]
            t3 = time.monotonic()
            got = iter(self._classify(crops))
            probs = [next(got) if d else None for d in due]
            t4 = time.monotonic()
            events = self.tracker.update(now, boxes, probs)
            t5 = time.monotonic()
            st.add("detect", t2 - t1)
            st.detector_runs += 1
            if crops:
                st.add("preprocess", t3 - t2)
                st.add("classify", t4 - t3)
                st.classifications += len(crops)
        else:  # no detection: nothing was missed either (a track leaves only when a detection does not see it)
            t4 = t5 = time.monotonic()
            events = []
        self._publish_events(events)
        self._publish_state()
        t6 = time.monotonic()
        st.add("track", t5 - t4)
        st.add("publish", t6 - t5)
        st.add("total", t6 - t0)
        # Faces in view: the tracks seen by the latest detection (held between detections).
        present = [t for t in self.tracker.tracks.values() if t.last_seen >= self.gate.last_detect]
        st.frames += 1
        st.faces += len(present)
        for t in present:
            self.summary_counts[self.classifier.labels[int(np.argmax(t.probs))]] += 1
        self.summary_faces += len(present)
        if self.preview is not None and self.preview.watching:
            self.preview.offer(image, marks(present, self.classifier.labels), now)
        return len(present)

    def _classify(self, crops: list[np.ndarray]) -> list[np.ndarray]:
        if self.batch:
            return self.classifier.probabilities_batch(crops)
        return [self.classifier.probabilities(c) for c in crops]

    def run(self, stop: threading.Event, max_seconds: float | None = None) -> None:
        """Until stop is set, a finite source ends, or max_seconds pass. Never raises after the first frame (READY)."""
        next_stats = time.monotonic() + self.cfg.stats_interval_s
        last_stats = time.monotonic()
        interval = self.cfg.summary_interval_s
        next_summary = time.monotonic() + interval if interval else None
        ready = False
        deadline = time.monotonic() + max_seconds if max_seconds else None
        self._guarded("state", self._publish_state)  # at start-up: no stale state from a previous run survives
        while not stop.is_set():
            frame = self.capture.get(timeout=0.5)
            now = time.monotonic()
            if frame is not None:
                self._process_guarded(frame.image, frame.t_mono)
                if not ready:
                    self.notifier.ready(f"processing {self.cfg.camera.name}")
                    ready = True
            elif self.capture.finished:
                break
            else:  # no frame: still age out tracks that left
                self._guarded("tracking", self._age_tracks, now)
            self._liveness(now)
            if now >= next_stats:
                self._guarded("stats", self._publish_stats, now - last_stats)
                last_stats, next_stats = now, now + self.cfg.stats_interval_s
            if next_summary is not None and now >= next_summary:
                self._guarded("summary", self._publish_summary, interval)
                next_summary = now + interval
            if deadline is not None and now >= deadline:
                break
        now = time.monotonic()
        self._guarded("shutdown", self._end_tracks, now)
        self._guarded("stats", self._publish_stats, max(1e-3, now - last_stats))
        if next_summary is not None:
            self._guarded("summary", self._publish_summary, interval)
