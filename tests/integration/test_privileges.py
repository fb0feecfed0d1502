"""-user: bind port 53 (and port 80 for HTTP) as root, then serve as an ordinary user."""

from __future__ import annotations

import os
import random
import subprocess
import sys

import pytest
import requests

from tests.conftest import NO_ENGINE
from tests.support.dnscock_process import ROOT, rcode

needs_root = pytest.mark.skipif(os.geteuid() != 0 and not os.environ.get("CI"), reason="binding port 53 needs root")


def ids(pid: int) -> tuple[list[str], list[str]]:
    status = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status").read().splitlines() if ":" in line)
    return status["Uid"].split(), status["Gid"].split()


@needs_root
def test_binds_privileged_ports_then_runs_as_nobody(start_dnscock, upstream):
    host = f"127.77.{random.randrange(1, 255)}.{random.randrange(1, 255)}"
    dnscock = start_dnscock(f"-docker={NO_ENGINE}", f"-nameserver={upstream.address}", "-user=nobody",
                            f"-http={host}:80", listen=f"{host}:53")
    assert dnscock.port == 53
    uids, gids = ids(dnscock.process.pid)
    assert set(uids) == {"65534"} and set(gids) == {"65534"}, "real, effective, saved and fs ids all switched"
    assert rcode(dnscock.query("www.example.com")) == "NOERROR"
    assert rcode(dnscock.query("www.example.com", tcp=True)) == "NOERROR"
    assert requests.get(f"{dnscock.http_url}/health", timeout=5).status_code == 503  # no engine, but serving
    dnscock.wait_for_log(r"running as uid 65534, gid 65534 \(nobody\)")


def test_an_unknown_user_is_a_one_line_error_before_anything_starts():
    result = subprocess.run([sys.executable, "-m", "dnscock", "-dns=127.0.0.1:0", "-user=no-such-user-here",
                             "-nameserver=127.0.0.1:9"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.splitlines() == ["dnscock: error: -user: no user 'no-such-user-here' on this system"]


def test_user_with_the_bridge_on_a_privileged_port_is_a_one_line_error():
    # The bridge's address can change after root is dropped: binding there again needs a port >= 1024.
    result = subprocess.run([sys.executable, "-m", "dnscock", "-dns=bridge", "-user=nobody",
                             "-nameserver=127.0.0.1:9"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "dnscock: error: argument -dns/--dns: bridge:53: with -user, -dns=bridge needs a port of 1024 or more "
        "(dnscock binds again, as that user, whenever the bridge's address changes)"]
