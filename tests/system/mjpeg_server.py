"""A tiny MJPEG-over-HTTP camera (stdlib only) for the system test: serves the JPEG files of a folder in a loop.

    python3 mjpeg_server.py --port 8090 --dir /srv/mjpeg     # GET /stream.mjpg

Stopping and starting it again is how the system test makes a network camera go away and come back.
"""

from __future__ import annotations

import argparse
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--dir", type=Path, required=True)
    p.add_argument("--fps", type=float, default=15.0)
    args = p.parse_args()
    frames = [f.read_bytes() for f in sorted(args.dir.glob("*.jpg"))]
    if not frames:
        raise SystemExit(f"no .jpg files in {args.dir}")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # http.server's method name
            if self.path != "/stream.mjpg":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            i = 0
            try:
                while True:
                    jpg = frames[i % len(frames)]
                    self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpg))
                    self.wfile.write(jpg + b"\r\n")
                    i += 1
                    time.sleep(1.0 / args.fps)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *a):
            pass

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
