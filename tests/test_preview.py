"""See what the camera sees: `analyze --annotate` and the opt-in live view, through the real daemon and a browser."""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.draw import COLOURS
from tests.support.broker import free_port
from tests.support.daemon import Daemon, write_config

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_annotated_image_differs_only_around_the_face(run, tmp_path, astronaut):
    src = tmp_path / "in" / "astronaut.png"
    src.parent.mkdir()
    cv2.imwrite(str(src), astronaut)
    proc = run("edge", "analyze", src, "--json", "--annotate", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    (rec,) = [json.loads(line) for line in proc.stdout.splitlines()]
    out = cv2.imread(str(tmp_path / "out" / "astronaut.png"))
    assert out.shape == astronaut.shape
    h, w = astronaut.shape[:2]
    x0, y0, x1, y1 = (int(round(v * s)) for v, s in zip(rec["box"], (w, h, w, h), strict=True))
    changed = np.abs(out.astype(int) - astronaut.astype(int)).max(axis=2) > 0
    # the box outline itself is drawn
    top, left = changed[y0 - 2 : y0 + 3, x0 + 5 : x1 - 5], changed[y0 + 5 : y1 - 5, x0 - 2 : x0 + 3]
    assert top.any(axis=0).mean() > 0.9 and left.any(axis=1).mean() > 0.9
    # label above and probability bars below the box; nothing else of note anywhere
    near = np.zeros_like(changed)
    near[max(0, y0 - 40) : min(h, y1 + 60), max(0, x0 - 5) : min(w, max(x1, x0 + 200) + 5)] = True
    assert changed[~near].sum() == 0
    assert changed[y0 + 5 : y1 - 5, x0 + 5 : x1 - 5].mean() < 0.01  # the face itself is left alone


def test_annotated_video_has_every_analysed_frame(run, tmp_path, blink_clip):
    proc = run("edge", "analyze", blink_clip, "--every", "2", "--annotate", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "out" / (blink_clip.stem + ".annotated.avi")
    src, dst = cv2.VideoCapture(str(blink_clip)), cv2.VideoCapture(str(out))
    n_src, n_dst = int(src.get(cv2.CAP_PROP_FRAME_COUNT)), int(dst.get(cv2.CAP_PROP_FRAME_COUNT))
    assert n_dst == (n_src + 1) // 2
    size = (int(src.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(src.get(cv2.CAP_PROP_FRAME_WIDTH)))
    happy, marked = np.array(COLOURS["happy"]), 0
    for _ in range(n_dst):
        ok, frame = dst.read()
        assert ok and frame.shape[:2] == size
        marked += (np.abs(frame.astype(int) - happy).max(axis=2) < 40).sum() > 200
    faces = {
        json.loads(line)["frame"]
        for line in run("edge", "analyze", blink_clip, "--every", "2", "--json").stdout.splitlines()
    }
    assert marked >= len(faces) * 0.8 and faces  # the frames with a face carry its box and label


def _preview_daemon(tmp_path, edge_models, **preview) -> tuple[Daemon, int]:
    port = free_port()
    cfg = write_config(
        tmp_path / "pv.toml",
        {"device_id": "pv", "publisher": "stdout", "stats_interval_s": 1.0},
        classifier={"model": edge_models[1]},
        preview={"enabled": True, "listen": f"127.0.0.1:{port}", **preview},
    )
    return Daemon(cfg, edge_models[0]).start(), port


def _get(url: str, auth: str | None = None, timeout: float = 5.0):
    req = urllib.request.Request(url, headers={"Authorization": auth} if auth else {})
    return urllib.request.urlopen(req, timeout=timeout)


def _wait_up(port: int, auth: str | None = None) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            with _get(f"http://127.0.0.1:{port}/stats.json", auth) as r:
                if json.loads(r.read()).get("processed_fps"):
                    return
        except (urllib.error.URLError, ConnectionError):
            pass
        assert time.monotonic() < deadline, "the live view did not come up with stats"
        time.sleep(0.3)


def _jpeg_parts(port: int, n: int, auth: str | None = None) -> list[np.ndarray | None]:
    frames: list[np.ndarray | None] = []
    with _get(f"http://127.0.0.1:{port}/stream.mjpg", auth, timeout=10) as r:
        assert r.headers["Content-Type"].startswith("multipart/x-mixed-replace")
        buf = b""
        while len(frames) < n:
            buf += r.read1(65536)
            start, end = buf.find(b"\xff\xd8"), buf.find(b"\xff\xd9")
            if start >= 0 and end > start:
                frames.append(cv2.imdecode(np.frombuffer(buf[start : end + 2], np.uint8), cv2.IMREAD_COLOR))
                buf = buf[end + 2 :]
    return frames


def test_live_view_serves_page_stream_and_stats(tmp_path, edge_models):
    daemon, port = _preview_daemon(tmp_path, edge_models)
    _wait_up(port)
    with _get(f"http://127.0.0.1:{port}/") as r:
        page = r.read().decode()
    assert "/stream.mjpg" in page and "/stats.json" in page
    frames = _jpeg_parts(port, 3)
    assert all(f is not None and f.shape == (480, 640, 3) for f in frames)
    with _get(f"http://127.0.0.1:{port}/stats.json") as r:
        stats = json.loads(r.read())
    assert stats["device_id"] == "pv" and stats["processed_fps"] > 0 and "latency_ms" in stats
    rc, _, err = daemon.terminate()
    assert rc == 0, err[-2000:]
    assert f"live preview on http://127.0.0.1:{port}/" in err


def test_public_bind_needs_a_password(run, tmp_path, edge_models):
    port = free_port()
    cfg = write_config(
        tmp_path / "pub.toml",
        {"device_id": "pv", "publisher": "stdout"},
        preview={"enabled": True, "listen": f"0.0.0.0:{port}"},
    )
    proc = run("edge", "check-config", "--config", cfg)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("emotion-edge: error:")]
    assert "preview.listen" in line and "password" in line and "fix:" in line
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    pw.chmod(0o600)
    cfg.write_text(cfg.read_text() + f'password_file = "{pw}"\n')
    proc = run("edge", "check-config", "--config", cfg)
    assert proc.returncode == 0, proc.stderr


def test_password_is_required_when_set(tmp_path, edge_models):
    import base64

    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    daemon, port = _preview_daemon(tmp_path, edge_models, password_file=str(pw))
    good = "Basic " + base64.b64encode(b"emotion-edge:s3cret").decode()
    _wait_up(port, good)
    for auth in (None, "Basic " + base64.b64encode(b"emotion-edge:wrong").decode()):
        with pytest.raises(urllib.error.HTTPError) as exc:
            _get(f"http://127.0.0.1:{port}/stream.mjpg", auth)
        assert exc.value.code == 401
    assert len(_jpeg_parts(port, 1, good)) == 1
    assert daemon.terminate()[0] == 0


@pytest.mark.skipif(not CHROMIUM, reason="Debian chromium not installed (tests/run.sh installs it)")
def test_live_page_in_headless_chromium_shows_a_box_and_a_label(tmp_path, edge_models):
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright (test extra) not installed")
    daemon, port = _preview_daemon(tmp_path, edge_models)
    _wait_up(port)
    shots = Path(os.environ.get("EMOTION_EDGE_ARTIFACTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1100, "height": 700})
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_function("document.getElementById('stream').naturalWidth > 0", timeout=20000)
        page.wait_for_function("document.querySelectorAll('#events td').length >= 4", timeout=20000)
        time.sleep(1.0)
        shot = shots / "live-view.png"
        page.locator("#stream").screenshot(path=str(shot))
        events_text = page.locator("#events").inner_text()
        live_text = page.locator("#live").inner_text()
        browser.close()
    assert daemon.terminate()[0] == 0
    img = cv2.imread(str(shot))
    happy = np.array(COLOURS["happy"])  # the demo face reads happy: its box and label are drawn in this colour
    close = (np.abs(img.astype(int) - happy).max(axis=2) < 40).sum()
    assert close > 400, f"no happy-coloured box/label in the screenshot ({close} px); see {shot}"
    assert "appear" in events_text and "happy" in events_text
    assert "processed fps" in live_text


def test_preview_binds_ipv6_loopback_and_encodes_nothing_without_a_viewer(astronaut):
    import socket

    from edge.core.types import Box
    from edge.draw import FaceMark
    from edge.preview import Preview, is_loopback

    try:
        socket.socket(socket.AF_INET6).bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    assert is_loopback("::1") and is_loopback("localhost") and not is_loopback("0.0.0.0")
    p = Preview("[::1]:0").start()
    try:
        with urllib.request.urlopen(f"http://[::1]:{p.port}/stats.json", timeout=5) as r:
            assert json.loads(r.read()) == {}
        p.offer(astronaut, [FaceMark(Box(150, 60, 330, 250), "happy", 0.9)], now=1.0)
        time.sleep(0.3)
        assert p.frames_offered == 0 and p.frames_encoded == 0  # nobody watches: nothing kept, nothing encoded
    finally:
        p.close()


def test_a_busy_port_is_one_line_before_ready(run, tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cfg = write_config(
            tmp_path / "busy.toml",
            {"device_id": "pv", "publisher": "stdout"},
            preview={"enabled": True, "listen": f"127.0.0.1:{port}"},
        )
        proc = run("edge", "run", "--config", cfg, "--duration", "5", timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("emotion-edge: error:")]
    assert "preview cannot listen" in line and "fix:" in line
