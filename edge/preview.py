"""The opt-in local live view: what the camera sees, annotated, with live stats, over HTTP.

Off by default (`[preview] enabled = false`); on, it listens on loopback (`127.0.0.1:8080`) unless the user
binds elsewhere, and `check-config` refuses a non-loopback address without a password (HTTP basic auth).
Nothing is encoded while nobody watches: the frame loop hands frames over only while a stream client is
connected, one encoder thread draws and JPEG-encodes the newest of them (at most `max_fps`), and each client
is sent the newest JPEG when it is ready for one, so a slow client skips frames instead of slowing anyone.

  GET /             an HTML page: the stream, fps, per-stage latency, faces, the last events
  GET /stream.mjpg  multipart/x-mixed-replace JPEG stream of annotated frames
  GET /stats.json   the latest stats payload (as published on the stats topic)
  GET /events.json  the last 20 events (type, track, emotion, confidence, time)
"""

from __future__ import annotations

import base64
import hmac
import ipaddress
import json
import logging
import socket
import threading
import time
from collections import deque
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import cv2
import numpy as np

from edge.core.errors import UserError
from edge.draw import FaceMark, annotate

log = logging.getLogger(__name__)
BOUNDARY = "emotion-edge-frame"


def parse_listen(listen: str) -> tuple[str, int]:
    """'host:port' or '[v6]:port' -> (host, port); a one-line UserError otherwise."""
    host, sep, port = listen.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:  # 0: any free port
        raise UserError(f'preview.listen = {listen!r} is not HOST:PORT; fix: e.g. "127.0.0.1:8080"')
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Preview:
    def __init__(
        self, listen: str, username: str = "", password: str | None = None, max_fps: float = 10, quality: int = 75
    ):
        self.host, self.port = parse_listen(listen)
        self.auth = (
            "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode() if password is not None else None
        )
        self.min_interval_s = 1.0 / max_fps
        self.quality = quality
        self.clients = 0  # open stream connections
        self.frames_encoded = 0
        self.frames_offered = 0
        self._cond = threading.Condition()
        self._pending: tuple[np.ndarray, list[FaceMark]] | None = None
        self._jpeg: bytes | None = None
        self._seq = 0
        self._last_offer = 0.0
        self._stats: dict[str, Any] = {}
        self._events: deque[dict[str, Any]] = deque(maxlen=20)
        self._stop = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    # -- the frame loop's side --------------------------------------------------------------------------------
    @property
    def watching(self) -> bool:
        return self.clients > 0

    def offer(self, image: np.ndarray, faces: list[FaceMark], now: float) -> None:
        """The newest processed frame and its faces; kept (not copied: frames are never written to) only while
        someone watches and at most max_fps times a second. The encoder thread does the work."""
        if not self.clients or now - self._last_offer < self.min_interval_s:
            return
        self._last_offer = now
        self.frames_offered += 1
        with self._cond:
            self._pending = (image, faces)
            self._cond.notify_all()

    def stats(self, payload: dict[str, Any]) -> None:
        self._stats = payload

    def event(self, item: dict[str, Any]) -> None:
        self._events.append(item)

    # -- threads ----------------------------------------------------------------------------------------------
    def start(self) -> Preview:
        """Bind (a UserError before READY when the address cannot be bound) and serve in daemon threads."""
        preview = self

        class Handler(_Handler):
            owner = preview

        server_cls = _Server6 if ":" in self.host else ThreadingHTTPServer  # an IPv6 address such as ::1
        try:
            self._server = server_cls((self.host, self.port), Handler)
        except OSError as exc:
            raise UserError(
                f"preview cannot listen on {self.host}:{self.port} ({exc.strerror}); fix: choose a free port in "
                "preview.listen, or set preview.enabled = false"
            ) from None
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name="preview-http", daemon=True).start()
        threading.Thread(target=self._encode_loop, name="preview-encoder", daemon=True).start()
        log.warning(
            "live preview on http://%s:%d/ (%s): annotated camera frames are viewable there",
            self.host,
            self.port,
            "password protected" if self.auth else "loopback only, no password",
        )
        return self

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _encode_loop(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                while self._pending is None and not self._stop.is_set():
                    self._cond.wait(1.0)
                pending, self._pending = self._pending, None
            if pending is None:
                continue
            try:
                ok, buf = cv2.imencode(".jpg", annotate(*pending), [cv2.IMWRITE_JPEG_QUALITY, self.quality])
            except cv2.error as exc:  # never the frame loop's problem
                log.warning("preview: cannot encode a frame (%s)", exc)
                continue
            if ok:
                with self._cond:
                    self._jpeg, self._seq = buf.tobytes(), self._seq + 1
                    self.frames_encoded += 1
                    self._cond.notify_all()

    def next_jpeg(self, after: int, timeout: float = 5.0) -> tuple[int, bytes | None]:
        """The newest JPEG with a sequence number above `after` (waiting up to timeout)."""
        with self._cond:
            if self._seq <= after:
                self._cond.wait(timeout)
            return self._seq, self._jpeg if self._seq > after else None


class _Server6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    owner: Preview
    server_version = "emotion-edge-preview"

    def log_message(self, format: str, *args: Any) -> None:  # http.server's signature
        log.debug("preview: " + format, *args)

    def _authorised(self) -> bool:
        want = self.owner.auth
        if want is None or hmac.compare_digest(self.headers.get("Authorization", ""), want):
            return True
        self.send_response(HTTPStatus.UNAUTHORIZED)
        self.send_header("WWW-Authenticate", 'Basic realm="emotion-edge preview"')
        self.send_header("Content-Length", "0")
        self.end_headers()
        return False

    def _send(self, body: bytes, ctype: str) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # http.server's method name
        if not self._authorised():
            return
        path = self.path.split("?", 1)[0]
        if path == "/":
            self._send(PAGE.encode(), "text/html; charset=utf-8")
        elif path == "/stats.json":
            self._send(json.dumps(self.owner._stats).encode(), "application/json")
        elif path == "/events.json":
            self._send(json.dumps(list(self.owner._events)).encode(), "application/json")
        elif path == "/stream.mjpg":
            self._stream()
        else:
            self.send_error(HTTPStatus.NOT_FOUND)

    def _stream(self) -> None:
        owner = self.owner
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        with owner._cond:
            owner.clients += 1
        seq = 0
        try:
            while not owner._stop.is_set():
                seq, jpeg = owner.next_jpeg(seq)
                if jpeg is None:
                    continue
                self.wfile.write(
                    f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
                    + jpeg
                    + b"\r\n"
                )
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the viewer left
        finally:
            with owner._cond:
                owner.clients -= 1


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>emotion-edge live view</title>
<style>
body{font-family:system-ui,sans-serif;margin:1em;background:#111;color:#eee}
main{display:flex;gap:1.5em;flex-wrap:wrap} img{max-width:100%;border:1px solid #444;background:#000}
table{border-collapse:collapse;font-size:14px} td,th{padding:2px 8px;text-align:left;border-bottom:1px solid #333}
.num{text-align:right;font-variant-numeric:tabular-nums} h2{font-size:16px;margin:.8em 0 .3em}
</style></head><body>
<h1>emotion-edge <span id="camera"></span></h1>
<main><div><img id="stream" src="/stream.mjpg" alt="annotated camera stream"></div>
<div><h2>Live</h2><table id="live"></table><h2>Latency p50 (ms)</h2><table id="latency"></table>
<h2>Last events</h2><table id="events"><tr><th>time</th><th>type</th><th>track</th><th>emotion</th></tr></table>
</div></main>
<script>
function rows(el, pairs){el.innerHTML=pairs.map(([k,v])=>`<tr><td>${k}</td><td class="num">${v}</td></tr>`).join('')}
async function tick(){
  try{
    const s=await (await fetch('/stats.json',{cache:'no-store'})).json();
    if(s.camera){document.getElementById('camera').textContent='· '+s.device_id+' / '+s.camera}
    rows(document.getElementById('live'),[['processed fps',s.processed_fps??'–'],['capture fps',s.capture_fps??'–'],
      ['faces',s.tracks??'–'],['detector runs',s.detector_runs??'–'],['classifications',s.classifications??'–'],
      ['events',s.events??'–']]);
    rows(document.getElementById('latency'),Object.entries(s.latency_ms||{}).map(([k,v])=>[k,v.p50]));
    const ev=await (await fetch('/events.json',{cache:'no-store'})).json();
    const t=document.getElementById('events');
    t.innerHTML='<tr><th>time</th><th>type</th><th>track</th><th>emotion</th></tr>'+ev.slice().reverse().map(e=>
      `<tr><td>${e.time}</td><td>${e.type}</td><td class="num">${e.track_id}</td><td>${e.emotion}</td></tr>`).join('');
  }catch(e){}
}
tick(); setInterval(tick, 1000);
</script></body></html>
"""


def marks(tracks: list[Any], labels: tuple[str, ...]) -> list[FaceMark]:
    """FaceMarks of the tracker's faces in view: the reported emotion (or the leading one before it is)."""
    out = []
    for t in tracks:
        top = int(np.argmax(t.probs))
        label = t.emotion or labels[top]
        conf = float(t.probs[labels.index(label)])
        probs = {lab: float(p) for lab, p in zip(labels, t.probs, strict=True)}
        out.append(FaceMark(t.box, label, conf, probs, t.id))
    return out


def event_item(ev: Any) -> dict[str, Any]:
    return {
        "time": time.strftime("%H:%M:%S"),
        "type": ev.type,
        "track_id": ev.track_id,
        "emotion": ev.emotion,
        "confidence": round(ev.confidence, 3),
    }
