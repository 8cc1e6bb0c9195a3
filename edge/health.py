"""systemd notify protocol (READY, WATCHDOG, STATUS, STOPPING) and Pi SoC health readings."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

log = logging.getLogger(__name__)


class Notifier:
    """sd_notify without libsystemd: datagrams to $NOTIFY_SOCKET; a no-op when it is unset."""

    def __init__(self):
        addr = os.environ.get("NOTIFY_SOCKET")
        self.addr = ("\0" + addr[1:]) if addr and addr.startswith("@") else addr
        usec = os.environ.get("WATCHDOG_USEC")
        pid = os.environ.get("WATCHDOG_PID")
        enabled = usec is not None and usec.isdigit() and (not pid or pid == str(os.getpid()))
        # ping at half the timeout
        self.watchdog_interval_s = int(usec) / 1e6 / 2.0 if usec is not None and enabled else None
        self._last_ping = 0.0

    def send(self, message: str) -> None:
        if not self.addr:
            return
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            try:
                s.connect(self.addr)
                s.sendall(message.encode())
            except OSError as exc:
                log.warning("sd_notify to %s failed: %s", self.addr, exc)

    def ready(self, status: str = "") -> None:
        self.send("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def status(self, status: str) -> None:
        self.send(f"STATUS={status}")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def watchdog(self, now: float | None = None) -> None:
        """Called from the frame loop: a stalled loop stops pinging and systemd restarts the service."""
        if self.watchdog_interval_s is None:
            return
        now = time.monotonic() if now is None else now
        if now - self._last_ping >= self.watchdog_interval_s:
            self.send("WATCHDOG=1")
            self._last_ping = now


def soc_health() -> dict:
    """CPU temperature (any Linux with thermal zones) and, on a Raspberry Pi, the throttling flags."""
    out: dict = {}
    zone = Path("/sys/class/thermal/thermal_zone0/temp")
    try:
        out["cpu_temp_c"] = round(int(zone.read_text().strip()) / 1000.0, 1)
    except (OSError, ValueError):
        pass
    if shutil.which("vcgencmd"):
        try:
            res = subprocess.run(["vcgencmd", "get_throttled"], capture_output=True, text=True, timeout=2)
            value = int(res.stdout.strip().split("=")[-1], 16)
            # bit 0 under-voltage now, 1 frequency capped, 2 throttled, 3 soft temp limit; 16-19: has occurred
            out["throttled"] = {
                "raw": hex(value),
                "under_voltage": bool(value & 1),
                "freq_capped": bool(value & 2),
                "throttled": bool(value & 4),
                "soft_temp_limit": bool(value & 8),
                "has_occurred": bool(value & 0xF0000),
            }
        except (OSError, ValueError, subprocess.SubprocessError):
            pass
    return out
