"""Run `python -m edge run` as a real subprocess with a generated config."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from edge.config import toml_value

ROOT = Path(__file__).resolve().parents[2]


def write_config(path: Path, top: dict, **tables: dict) -> Path:
    lines = [f"{k} = {toml_value(v)}" for k, v in top.items()]
    for name, table in tables.items():
        lines.append(f"[{name.replace('__', '.')}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in table.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


RUNNING: list[Daemon] = []  # killed after each test by conftest's autouse fixture, pass or fail


class Daemon:
    def __init__(self, config: Path, models_dir: Path, env: dict | None = None, cwd: Path | None = None):
        self.cmd = [sys.executable, "-m", "edge", "run", "--config", str(config)]
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "EMOTION_EDGE_MODELS": str(models_dir), **(env or {})}
        self.cwd = cwd
        self._proc: subprocess.Popen | None = None

    @property
    def proc(self) -> subprocess.Popen:
        assert self._proc is not None, "Daemon.start() first"
        return self._proc

    def start(self) -> Daemon:
        self._proc = subprocess.Popen(
            self.cmd, env=self.env, cwd=self.cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        RUNNING.append(self)
        return self

    def wait(self, timeout: float = 30.0) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err

    def terminate(self, timeout: float = 30.0) -> tuple[int, str, str]:
        self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.communicate(timeout=10)

    def run_to_end(self, timeout: float = 60.0) -> tuple[int, str, str]:
        self.start()
        return self.wait(timeout)
