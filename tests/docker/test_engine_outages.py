"""The engine goes away and comes back: dnscock keeps answering and resyncs."""

from __future__ import annotations

import pytest

from tests.docker.conftest import start_engine, stop_engine
from tests.support.dnscock_process import rcode
from tests.support.private_engine import PrivateEngine


@pytest.fixture
def own_engine():
    """An engine of this test's own, since the test kills and restarts it."""
    engine = start_engine("dck-own-")
    yield engine
    stop_engine(engine)


def test_engine_down_at_start_then_up_then_killed_then_back(own_engine, start_dnscock, upstream):
    engine: PrivateEngine = own_engine
    engine.kill()
    engine.wait_for_containerd()

    # 1. Started with no engine: forwarding works, local names are SERVFAIL (not NXDOMAIN).
    dnscock = start_dnscock(f"-docker={engine.url}", f"-nameserver={upstream.address}")
    dnscock.wait_for_log("cannot reach the Docker engine")
    assert rcode(dnscock.query("www.example.com")) == "NOERROR"
    assert rcode(dnscock.query("redis1.redis.docker")) == "SERVFAIL"

    # 2. The engine comes up: dnscock connects by itself and serves its containers.
    engine.start()
    engine.run("redis:latest", name="survivor")
    dnscock.wait_for_answer("survivor.redis.docker", lambda reply: bool(reply.answer), timeout=60)

    # 3. The engine is SIGKILLed: the last known table keeps being served.
    mark = len(dnscock.lines)
    engine.kill()
    dnscock.wait_for_log("lost the Docker engine|cannot reach the Docker engine", start=mark)
    assert dnscock.addresses("survivor.redis.docker"), "the last known table is still served"
    assert rcode(dnscock.query("www.example.com")) == "NOERROR"

    # 4. The engine restarts (and stops the orphaned container): the resync drops the stale record.
    engine.wait_for_containerd()
    engine.start()
    newcomer = engine.run("redis:latest", name="newcomer")
    dnscock.wait_for_answer("newcomer.redis.docker", lambda reply: bool(reply.answer), timeout=60)
    dnscock.wait_for_answer("survivor.redis.docker", lambda reply: rcode(reply) == "NXDOMAIN", timeout=30)
    assert newcomer.name == "newcomer"


def test_engine_service_restart_while_containers_churn(own_engine, start_dnscock, upstream):
    engine: PrivateEngine = own_engine
    before = [engine.run("redis:latest", name=f"old{i}") for i in range(3)]
    dnscock = start_dnscock(f"-docker={engine.url}", f"-nameserver={upstream.address}", "-grace=0")
    dnscock.wait_for_log("connected to the Docker engine")
    assert len(dnscock.addresses("*.docker")) == 3

    mark = len(dnscock.lines)
    engine.terminate()  # stops its containers, then exits
    engine.wait_for_containerd()
    dnscock.wait_for_log("lost the Docker engine|cannot reach the Docker engine", start=mark)
    engine.start()
    after = [engine.run("redis:latest", name=f"new{i}") for i in range(2)]
    running = sorted(
        network["IPAddress"]
        for container in engine.client.containers.list()
        for network in container.attrs["NetworkSettings"]["Networks"].values()
    )
    assert len(running) == 2 and len(before) == 3
    dnscock.wait_for_answer("*.docker", lambda reply: sorted(
        rr.address for rrset in reply.answer for rr in rrset) == running, timeout=60)
    for container in after:
        assert dnscock.addresses(f"{container.name}.redis.docker")
