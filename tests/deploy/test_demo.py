"""``make demo``'s script: live answers printed, then a clean stop on Ctrl-C (SIGINT) or SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.deploy.conftest import unavailable
from tests.deploy.helpers import alive, start_time
from tests.support.dnscock_process import ROOT

pytestmark = pytest.mark.timeout(180)


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_demo_answers_then_cleans_up(how):
    if os.geteuid() != 0:
        unavailable("the demo's private Docker engine needs root")
    process = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "demo.py")], cwd=ROOT,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)  # its own group, as a terminal's job
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(line.rstrip("\n") for line in process.stdout), daemon=True).start()
    output = lambda: "\n".join(lines)  # noqa: E731
    try:
        deadline = time.monotonic() + 120
        while "Ctrl-C" not in output():
            if process.poll() is not None and "no private Docker engine" in output():
                unavailable(output().strip().splitlines()[-1])
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the demo did not get to waiting:\n{output()}")
            time.sleep(0.1)
        text = output()
        engine_pid = int(re.search(r"^engine: pid (\d+), unix://(\S+)/docker.sock", text, re.M).group(1))
        engine_root = Path(re.search(r"^engine: pid \d+, unix://(\S+)/docker.sock", text, re.M).group(1))
        dnscock_pid = int(re.search(r"^dnscock: pid (\d+)", text, re.M).group(1))
        started = {pid: start_time(pid) for pid in (engine_pid, dnscock_pid)}
        assert all(alive(pid, started[pid]) for pid in started)

        # Live answers: two redis containers, the alias, the forwarded name.
        answers = text.split("Try these", 1)[1]
        redis = re.search(r"\+short redis\.docker\n((?:  .*\n)+)", answers).group(1).split()
        assert len(redis) == 2 and all(re.fullmatch(r"\d+\.\d+\.\d+\.\d+", ip) for ip in redis), answers
        assert re.search(r"\+short web\.example\.test\n  \d+\.\d+\.\d+\.\d+\n", answers), answers
        assert "+short example.org\n  192.0.2.53\n" in answers
        assert "redis1.redis.docker." in answers  # the PTR answer

        if how == "ctrl-c":  # the terminal signals the whole job: the demo and dnscock
            os.killpg(process.pid, signal.SIGINT)
        else:
            process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=90) == 0, output()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "containers removed, engine stopped" in output()
    assert not any(alive(pid, started[pid]) for pid in started), output()
    assert not engine_root.exists()
