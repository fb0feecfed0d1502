"""The repo's Procfile under honcho: ``honcho start -p PORT`` in the repo root.

dnscock is configured by env vars (DNSCOCK_DOCKER: the private engine,
DNSCOCK_NAMESERVER: a fake upstream); the Procfile gives the address, with
honcho's $PORT. SIGTERM to honcho must leave no process of it behind.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.deploy.conftest import unavailable
from tests.deploy.helpers import ANSWER_IP, FORWARDED_NAME, alive, descendants, query, start_time, wait_for_addresses
from tests.support.dnscock_process import ROOT
from tests.support.ports import free_port, is_free
from tests.support.processes import LogLines

pytestmark = pytest.mark.timeout(120)


def honcho_command() -> str:
    beside = Path(sys.executable).parent / "honcho"
    found = str(beside) if beside.exists() else shutil.which("honcho")
    if found is None:
        unavailable("honcho is not installed (pip install -r requirements-dev.txt)")
    return found


def test_honcho_start_serves_and_stops(docker_env, upstream):
    honcho = honcho_command()
    port = free_port()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("DNSCOCK_") and key not in ("DOCKER_HOST", "PORT")}
    env.update(
        # The Procfile's `python` is the one with dnscock's dependencies.
        PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}",
        DNSCOCK_DOCKER=docker_env.url,
        DNSCOCK_NAMESERVER=upstream.address,
        PYTHONUNBUFFERED="1",
    )
    redis = docker_env.run("redis:latest", name="x1")
    redis.reload()
    ip = redis.attrs["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]

    process = subprocess.Popen([honcho, "start", "-p", str(port)], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    output = LogLines(process.stdout)
    children: list[tuple[int, str | None]] = []
    try:
        output.wait_for(re.escape(f"listening on udp 127.0.0.1:{port}"), timeout=20)
        output.wait_for("connected to the Docker engine", timeout=20)
        children = [(pid, start_time(pid)) for pid in descendants(process.pid)]
        assert any("dnscock" in Path(f"/proc/{pid}/cmdline").read_text() for pid, _ in children
                   if alive(pid)), children

        wait_for_addresses(port, "x1.redis.docker", [ip], log=output.text)
        wait_for_addresses(port, "x1.redis.docker", [ip], tcp=True, log=output.text)
        assert query(port, FORWARDED_NAME).answer[0][0].address == ANSWER_IP

        process.send_signal(signal.SIGTERM)
        returncode = process.wait(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for pid, started in children:
            if alive(pid, started):
                os.kill(pid, signal.SIGKILL)
    # honcho exits with 128 + SIGTERM after terminating its processes.
    assert returncode in (0, 128 + signal.SIGTERM), output.text()
    deadline = time.monotonic() + 5
    while any(alive(pid, started) for pid, started in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = [pid for pid, started in children if alive(pid, started)]
    assert not left, f"still running after honcho stopped: {left}\n{output.text()}"
    assert "stopping" in output.text() and "Traceback" not in output.text(), output.text()
    assert is_free(port)
