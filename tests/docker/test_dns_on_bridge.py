"""``-dns=bridge``: dnscock listens on the default bridge's gateway, and follows it when it changes.

Containers started with ``--dns`` set to that address look names up the way
any program in them does (busybox's ``nslookup`` reading the resolv.conf
Docker wrote), for each other and for a name only the upstream knows. Then
the engine restarts with another bridge address, as after a change of
``bip`` in daemon.json: dnscock moves its listeners there, without a restart.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import requests

from tests.docker.conftest import start_engine, stop_engine
from tests.support.dnscock_process import ROOT
from tests.support.fake_upstream import ANSWER_IP
from tests.support.private_engine import PrivateEngine, container_ip

_ADDRESS = re.compile(r"^Address:\s*(\d+\.\d+\.\d+\.\d+)\s*$", re.MULTILINE)


@pytest.fixture
def bridge_engine():
    """An engine of this test's own: it is restarted with another bridge address."""
    engine = start_engine("dkb-")
    yield engine
    stop_engine(engine)


def bridge_gateway(engine: PrivateEngine) -> str:
    return engine.client.networks.get("bridge").attrs["IPAM"]["Config"][0]["Gateway"]


def lookup_from(container, name: str) -> list[str]:
    """The IPv4 addresses ``name`` gets inside ``container``, through the nameserver of its resolv.conf."""
    code, output = container.exec_run(["busybox", "nslookup", "-type=a", f"{name}."])
    text = output.decode(errors="replace")
    assert code == 0, f"nslookup {name} in {container.name} failed:\n{text}"
    # "Server: ... Address: SERVER:53", then a "Name:" and an "Address:" line per answer.
    _, _, answers = text.partition("Name:")
    return sorted(_ADDRESS.findall(answers))


def test_containers_with_dns_on_the_bridge_resolve_each_other_and_the_world(bridge_engine, start_dnscock, upstream):
    engine = bridge_engine
    dnscock = start_dnscock(f"-docker={engine.url}", f"-nameserver={upstream.address}", "-http=127.0.0.1:0",
                            listen="bridge")
    gateway = bridge_gateway(engine)
    assert (dnscock.host, dnscock.port) == (gateway, 53)
    alpha = engine.run(name="alpha", dns=[gateway])
    bravo = engine.run(name="bravo", dns=[gateway])
    dnscock.wait_for_answer("bravo.busybox.docker", lambda reply: bool(reply.answer))

    assert lookup_from(alpha, "bravo.busybox.docker") == [container_ip(bravo)]
    assert lookup_from(bravo, "alpha.busybox.docker") == [container_ip(alpha)]
    assert lookup_from(bravo, "busybox.docker") == sorted([container_ip(alpha), container_ip(bravo)])
    assert lookup_from(alpha, "www.example.test") == [ANSWER_IP]
    health = requests.get(f"{dnscock.http_url}/health", timeout=5).json()
    assert health["dns"] == {"udp": f"{gateway}:53", "tcp": f"{gateway}:53"}

    # The bridge gets another address (bip changed, the engine restarted): dnscock follows.
    engine.stop()
    # The engine keeps the default bridge's address in its network store, and writes it back over the
    # bridge's own at start; with the store gone it takes the bridge's new one (as it takes a new bip).
    (engine.root / "data" / "network" / "files" / "local-kv.db").unlink()
    engine.subnet_octet = 100 + (engine.subnet_octet - 100 + 75) % 150
    mark = len(dnscock.lines)
    engine.start()
    moved = bridge_gateway(engine)
    assert moved != gateway and moved.startswith(f"10.213.{engine.subnet_octet}.")
    dnscock.wait_for_log(re.compile(rf"listening on udp {re.escape(moved)}:53 and tcp .*default bridge"),
                         timeout=30, start=mark)
    charlie = engine.run(name="charlie", dns=[moved])
    delta = engine.run(name="delta", dns=[moved])
    dnscock.host = moved
    dnscock.wait_for_answer("delta.busybox.docker", lambda reply: bool(reply.answer))
    assert lookup_from(charlie, "delta.busybox.docker") == [container_ip(delta)]
    assert lookup_from(delta, "www.example.test") == [ANSWER_IP]
    # On a user-defined network, Docker's embedded DNS (127.0.0.11) answers the network's containers by name
    # and forwards every other name to the --dns servers: dnscock.
    network = engine.client.networks.create("userdefined", driver="bridge", ipam={
        "Config": [{"Subnet": f"10.217.{engine.subnet_octet}.0/24"}]})
    echo = engine.run(name="echo", network="userdefined", dns=[moved])
    assert "127.0.0.11" in echo.exec_run(["cat", "/etc/resolv.conf"]).output.decode()
    assert lookup_from(echo, "delta.busybox.docker") == [container_ip(delta)]
    assert lookup_from(echo, "www.example.test") == [ANSWER_IP]
    echo.remove(force=True)
    network.remove()
    health = requests.get(f"{dnscock.http_url}/health", timeout=5).json()
    assert health["dns"] == {"udp": f"{moved}:53", "tcp": f"{moved}:53"}
    # The image's health check finds it there too: it asks the engine where the bridge is now.
    check = subprocess.run([sys.executable, "-m", "dnscock.healthcheck", "-dns=bridge", f"-docker={engine.url}"],
                           cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr
    dnscock.stop()
    check = subprocess.run([sys.executable, "-m", "dnscock.healthcheck", "-dns=bridge", f"-docker={engine.url}"],
                           cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert (check.returncode, check.stderr.strip()) == (1, f"dnscock: no DNS answer from {moved}:53")
