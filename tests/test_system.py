"""The product as delivered: tests/system/run.sh boots a Debian root under a real systemd (systemd-nspawn),
installs with deploy/install.sh --with-broker and checks the installed service (see that script's header)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.conftest import ROOT

SCRIPT = ROOT / "tests" / "system" / "run.sh"


@pytest.mark.system
def test_installed_service_under_real_systemd():
    missing = [t for t in ("systemd-nspawn", "debootstrap", "nsenter") if not shutil.which(t)]
    if os.geteuid() != 0 or missing:
        pytest.skip(f"needs root and {', '.join(missing) or 'nothing else'} (tests/run.sh installs them)")
    proc = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=1500)
    out = proc.stdout + proc.stderr
    artifacts = os.environ.get("EMOTION_EDGE_ARTIFACTS")
    if artifacts:
        os.makedirs(artifacts, exist_ok=True)
        with open(os.path.join(artifacts, "system-test-amd64.log"), "w") as f:
            f.write(out)
    print(out)
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    assert proc.returncode == 0 and last.endswith(" 0 failed"), out[-6000:]
