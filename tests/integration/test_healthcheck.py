"""``python -m dnscock.healthcheck`` against a live server and against nothing."""

from __future__ import annotations

import socket
import subprocess
import sys

from tests.conftest import NO_ENGINE
from tests.support.dnscock_process import ROOT


def healthcheck(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dnscock.healthcheck", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=30)


def test_healthy_when_dnscock_answers_with_the_same_options(start_dnscock, upstream, tmp_path):
    dnscock = start_dnscock(f"-nameserver={upstream.address}", f"-docker={NO_ENGINE}")
    conf = tmp_path / "dnscock.conf"
    conf.write_text(f"dns = 127.0.0.1:{dnscock.port}\n")
    assert healthcheck("--config", str(conf)).returncode == 0
    assert healthcheck(f"-dns=127.0.0.1:{dnscock.port}").returncode == 0


def test_unhealthy_when_nothing_answers():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))  # bound but never read: the probe times out
        result = healthcheck(f"-dns=127.0.0.1:{silent.getsockname()[1]}")
    assert result.returncode == 1
    assert "no DNS answer" in result.stderr
