"""deploy/install.sh and uninstall.sh for real, in a throwaway root; the units verified by systemd-analyze."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT


def _shell_scripts() -> list[Path]:
    """Every shell script of the tree (so a new one cannot escape shellcheck) and the CI entry point; hidden folders
    (the virtual environments) and runs/ are not the tree."""
    found = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if not d.startswith(".") and not (folder == str(ROOT) and d == "runs")]
        found += [Path(folder) / f for f in files if f.endswith(".sh")]
    return [*sorted(found), ROOT / ".ci" / "run"]


SCRIPTS = _shell_scripts()
UNITS = ["emotion-edge.service", "emotion-edge@.service"]
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="useradd --root and chown need root")


def test_shellcheck_clean():
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck not installed (tests/run.sh installs it)")
    assert {
        ROOT / "tests" / "run.sh",
        ROOT / "deploy" / "install.sh",
        ROOT / "tests" / "homeassistant" / "ha-env.sh",
    } <= {*SCRIPTS}
    proc = subprocess.run(["shellcheck", *map(str, SCRIPTS)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def _install(root: Path, models: Path, *extra: str, env: dict | None = None):
    return subprocess.run(
        [
            "bash",
            str(ROOT / "deploy" / "install.sh"),
            "--root",
            str(root),
            "--platform",
            "generic",
            "--models",
            str(models),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )


def _snapshot(root: Path) -> dict[str, tuple]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            st = p.stat()
            out[str(p.relative_to(root))] = (st.st_size, stat.S_IMODE(st.st_mode), st.st_mtime_ns, st.st_uid)
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory, edge_models):
    root = tmp_path_factory.mktemp("root")
    (root / "etc").mkdir()
    for f in ("passwd", "group", "shadow", "gshadow"):
        if Path("/etc", f).exists():
            shutil.copy2(Path("/etc", f), root / "etc" / f)
    models = edge_models[0]
    proc = _install(root, models, "--with-broker")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return root, models, proc.stdout


@needs_root
def test_install_leaves_expected_files(installed):
    root, _, out = installed
    prefix = root / "opt" / "emotion-edge"
    assert (prefix / "venv" / "bin" / "emotion-edge").is_file()
    assert (prefix / "models" / "manifest.json").is_file()
    assert (prefix / "models" / "detectors" / "face_detection_short_range.tflite").is_file()
    cfg = root / "etc" / "emotion-edge" / "config.toml"
    assert stat.S_IMODE(cfg.stat().st_mode) & 0o022 == 0  # 0644 or tighter
    cred = root / "etc" / "emotion-edge" / "credentials" / "mqtt-password"
    assert stat.S_IMODE(cred.stat().st_mode) == 0o600 and cred.stat().st_uid == 0 and len(cred.read_text()) >= 16
    assert cred.read_text() not in cfg.read_text()  # the secret is never in the world-readable config
    passwd = (root / "etc" / "passwd").read_text()
    assert any(line.startswith("emotion-edge:") and line.endswith("/usr/sbin/nologin") for line in passwd.splitlines())
    video = next(line for line in (root / "etc" / "group").read_text().splitlines() if line.startswith("video:"))
    assert "emotion-edge" in video.split(":")[3].split(",")
    conf = (root / "etc" / "mosquitto" / "conf.d" / "emotion-edge.conf").read_text()
    assert "allow_anonymous false" in conf and "password_file" in conf
    assert (root / "etc" / "mosquitto" / "emotion-edge.passwd").read_text().startswith("emotion-edge:")
    for unit in UNITS:
        assert (root / "etc" / "systemd" / "system" / unit).is_file()
    assert "journalctl -u emotion-edge" in out and "mosquitto_sub" in out


@needs_root
def test_units_verify_and_security(installed, tmp_path):
    """The installed units, with their /opt paths pointed into the throwaway root, pass the host's systemd checks."""
    root, _, _ = installed
    units = tmp_path / "units"
    units.mkdir()
    for unit in UNITS:
        text = (root / "etc" / "systemd" / "system" / unit).read_text()
        (units / unit).write_text(text.replace("/opt/emotion-edge", str(root / "opt" / "emotion-edge")))
    for unit in ("emotion-edge.service", "emotion-edge@cam1.service"):
        proc = subprocess.run(["systemd-analyze", "verify", str(units / unit)], capture_output=True, text=True)
        assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr
    proc = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(units / "emotion-edge.service")],
        capture_output=True,
        text=True,
    )
    score = float(proc.stdout.strip().splitlines()[-1].split("level for emotion-edge.service:")[1].split()[0])
    assert score <= 2.5, proc.stdout[-500:]


@needs_root
def test_second_run_changes_nothing(installed):
    root, models, _ = installed
    before = _snapshot(root)
    proc = _install(root, models, "--with-broker")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _snapshot(root) == before


@needs_root
def test_user_config_is_never_overwritten(installed):
    root, models, _ = installed
    cfg = root / "etc" / "emotion-edge" / "config.toml"
    original = cfg.read_text()
    cfg.write_text(original.replace("stats_interval_s = 10.0", "stats_interval_s = 30.0"))
    proc = _install(root, models, "--with-broker")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "stats_interval_s = 30.0" in cfg.read_text()


def test_dry_run_changes_nothing(tmp_path, edge_models):
    root = tmp_path / "r"
    root.mkdir()
    proc = _install(root, edge_models[0], "--dry-run", "--with-broker")
    assert proc.returncode == 0, proc.stderr
    assert "would run:" in proc.stdout and "would write:" in proc.stdout
    assert list(root.iterdir()) == []


def test_refuses_32bit_arm(tmp_path, edge_models):
    proc = _install(tmp_path, edge_models[0], env={"INSTALL_ARCH": "armv7l"})
    assert proc.returncode == 2 and "32-bit" in proc.stderr and "64-bit Raspberry Pi OS" in proc.stderr


def test_help():
    for script in ("install.sh", "uninstall.sh"):
        proc = subprocess.run(["bash", str(ROOT / "deploy" / script), "--help"], capture_output=True, text=True)
        assert proc.returncode == 0 and "Usage:" in proc.stdout


@needs_root
def test_uninstall_keeps_config_unless_purge(installed):
    root, _, _ = installed
    state = root / "var" / "lib" / "emotion-edge"
    state.mkdir(parents=True, exist_ok=True)
    (state / "outbox.sqlite").write_bytes(b"queued")

    def run(*a: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", str(ROOT / "deploy" / "uninstall.sh"), "--root", str(root), *a], capture_output=True, text=True
        )

    proc = run()
    assert proc.returncode == 0, proc.stderr
    assert not (root / "opt" / "emotion-edge").exists()
    assert not (root / "etc" / "systemd" / "system" / "emotion-edge.service").exists()
    assert "emotion-edge:" not in (root / "etc" / "passwd").read_text()
    assert (root / "etc" / "emotion-edge" / "config.toml").is_file() and (state / "outbox.sqlite").is_file()
    proc = run("--purge")
    assert proc.returncode == 0, proc.stderr
    assert not (root / "etc" / "emotion-edge").exists() and not state.exists()


@needs_root
def test_broker_lan_is_tls_only(tmp_path, edge_models):
    """--broker-lan: the plain listener stays on loopback; the LAN listener is TLS with a certificate for this host."""
    if not shutil.which("openssl"):
        pytest.skip("openssl not installed (tests/run.sh installs it)")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    for f in ("passwd", "group", "shadow", "gshadow"):
        if Path("/etc", f).exists():
            shutil.copy2(Path("/etc", f), root / "etc" / f)
    proc = _install(root, edge_models[0], "--broker-lan")
    assert proc.returncode == 0, proc.stderr[-3000:]
    conf = (root / "etc" / "mosquitto" / "conf.d" / "emotion-edge.conf").read_text().splitlines()
    assert "listener 1883 127.0.0.1" in conf and "listener 8883" in conf and "allow_anonymous false" in conf
    tls = root / "etc" / "mosquitto" / "emotion-edge"
    assert stat.S_IMODE((tls / "ca.key").stat().st_mode) == 0o600
    verify = subprocess.run(
        ["openssl", "verify", "-CAfile", str(tls / "ca.crt"), str(tls / "server.crt")], capture_output=True, text=True
    )
    assert verify.returncode == 0, verify.stderr
    text = subprocess.run(
        ["openssl", "x509", "-in", str(tls / "server.crt"), "-noout", "-ext", "subjectAltName"],
        capture_output=True,
        text=True,
    ).stdout
    assert "IP Address:127.0.0.1" in text and "DNS:localhost" in text
    assert "-p 8883 --cafile" in proc.stdout
    before = _snapshot(root)
    assert _install(root, edge_models[0], "--broker-lan").returncode == 0
    assert _snapshot(root) == before  # certificates are made once
