"""``Type=notify``: READY=1 only once dnscock listens and has synced with the engine, STOPPING=1 on SIGTERM."""

from __future__ import annotations

import socket
import subprocess
import sys

from tests.support.fake_engine import FakeEngine


def read_messages(sock: socket.socket, timeout: float) -> list[str]:
    sock.settimeout(timeout)
    messages = []
    try:
        while True:
            messages.append(sock.recv(4096).decode())
            sock.settimeout(0.2)
    except TimeoutError:
        return messages


def test_ready_after_the_first_sync_and_stopping_on_sigterm(start_dnscock, upstream, tmp_path):
    notify_path = tmp_path / "notify.sock"
    engine_path = tmp_path / "docker.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(notify_path))
        dnscock = start_dnscock(f"-docker=unix://{engine_path}", f"-nameserver={upstream.address}",
                                env={"NOTIFY_SOCKET": str(notify_path)})
        assert read_messages(sock, 1.5) == [], "listening, but no engine yet: not ready"
        with FakeEngine(engine_path, containers=2):
            dnscock.wait_for_log("connected to the Docker engine")
            ready = read_messages(sock, 5)
            assert ready and ready[0].splitlines()[0] == "READY=1"
            assert ready[0].splitlines()[1].startswith(f"STATUS=listening on {dnscock.host}:{dnscock.port}, 2 records")
            dnscock.process.terminate()
            dnscock.process.wait(10)
            assert read_messages(sock, 2)[-1].splitlines() == ["STOPPING=1", "STATUS=stopping"]


def test_the_unit_file_passes_systemd_analyze_verify(tmp_path):
    from tests.support.dnscock_process import ROOT

    # verify wants ExecStart's program to exist: this checkout's, where the unit says pip's.
    text = (ROOT / "conf" / "dnscock.service").read_text()
    assert "ExecStart=/usr/local/bin/dnscock " in text
    unit = tmp_path / "dnscock.service"
    unit.write_text(text.replace("ExecStart=/usr/local/bin/dnscock ", f"ExecStart={sys.executable} -m dnscock "))
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and not result.stderr.strip(), result.stdout + result.stderr
