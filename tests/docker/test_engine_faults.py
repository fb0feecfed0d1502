"""Engine faults: dnscock keeps answering from its last table, forwards as usual, and recovers.

Each test starts dnscock against a private engine and a fake upstream, then
a prober thread (``tests/support/prober.py``) queries it over and over (a
known container's name and a forwarded name), recording every answer and
its latency, before, during and after the fault:

* the engine is SIGKILLed while it streams the events of a container start,
  then started again;
* the engine's socket file is moved away while dockerd runs on (dnscock's
  open event stream does not notice; new connections fail), then the
  engine is restarted;
* the Engine API answers slowly (``tests/support/engine_proxy.py`` holds
  each response back), while events arrive and across a forced reconnect.

During a fault every probe must get the right answer within the DNS
timeout; no other timing is asserted. Latencies and recovery times (fault
end -> first correct answer for a container started after it) are printed
(``pytest -s`` shows them).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import docker
import pytest

from tests.docker.conftest import start_engine, stop_engine
from tests.support.dnscock_process import DnscockProcess, rcode
from tests.support.engine_proxy import EngineProxy
from tests.support.fake_upstream import ANSWER_IP, FakeUpstream
from tests.support.private_engine import BUSYBOX_IMAGE, PrivateEngine, container_ip
from tests.support.prober import Prober

DNS_TIMEOUT = 2.0  # a probe not answered within this is a failure (dnscock's own -timeout default)
FORWARDED = "www.example.com"
SLOW_DELAY = 2.0  # seconds the slow Engine API holds back each response
LOST = "lost the Docker engine|cannot reach the Docker engine"
CONNECTED = "connected to the Docker engine"


@pytest.fixture
def own_engine():
    """An engine of this test's own, since the test breaks it."""
    engine = start_engine("dck-flt-")
    yield engine
    stop_engine(engine)


def _answered(reply) -> bool:
    return bool(reply.answer)


def _log_time(dnscock: DnscockProcess, pattern: str, start: int, timeout: float = 60.0) -> float:
    """The time (time.time()) dnscock logged a line matching ``pattern`` from line ``start`` on."""
    match = dnscock.wait_for_log(pattern, timeout=timeout, start=start)
    return datetime.strptime(match.string[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()


def _restart_and_recover(engine: PrivateEngine, dnscock: DnscockProcess, mark: int, title: str) -> None:
    """Starts the engine again (the fault ends once it answers); a container started then is answered; prints
    the recovery times. ``mark``: dnscock's log line from which on to look for its reconnection."""
    engine.start()
    fault_end = engine.answering_since
    assert fault_end is not None
    newcomer = engine.run("redis:latest", name="newcomer")
    started = time.time()
    dnscock.wait_for_answer("newcomer.redis.docker", _answered, timeout=60)
    answered = time.time()
    assert dnscock.addresses("newcomer.redis.docker") == [container_ip(newcomer)]
    reconnected = _log_time(dnscock, CONNECTED, mark)
    print(f"\n{title}: fault end -> dnscock reconnected {reconnected - fault_end:.2f}s; "
          f"-> newcomer answered {answered - fault_end:.2f}s "
          f"(its start took {started - fault_end:.2f}s; start -> answered {answered - started:.2f}s)")


def _start_probed(engine: PrivateEngine, docker_url: str, start_dnscock: Callable[..., DnscockProcess],
                  upstream: FakeUpstream) -> tuple[DnscockProcess, Prober]:
    """dnscock on ``docker_url``, which knows the engine's container "known", and a prober (to start) that asks
    it for "known" and a forwarded name."""
    known = engine.run("redis:latest", name="known")
    dnscock = start_dnscock(f"-docker={docker_url}", f"-nameserver={upstream.address}")
    dnscock.wait_for_log(CONNECTED)
    expected = {"known.redis.docker": [container_ip(known)], FORWARDED: [ANSWER_IP]}
    return dnscock, Prober(dnscock, expected, timeout=DNS_TIMEOUT)


def test_engine_sigkilled_mid_stream(own_engine, start_dnscock, upstream):
    engine: PrivateEngine = own_engine
    dnscock, prober = _start_probed(engine, engine.url, start_dnscock, upstream)
    with prober:
        prober.wait_rounds("before", 20)

        # The kill lands while the engine streams the events of a container start.
        mark = len(dnscock.lines)
        prober.phase = "fault"
        engine.run("redis:latest", name="flash")
        engine.kill()
        dnscock.wait_for_log(LOST, start=mark)
        engine.wait_for_containerd()
        prober.wait_rounds("fault", 40)  # about 2 s of probes with no engine
        flash = dnscock.addresses("flash.redis.docker") or rcode(dnscock.query("flash.redis.docker"))

        prober.phase = "restart"
        mark = len(dnscock.lines)
        _restart_and_recover(engine, dnscock, mark, "SIGKILL")
        prober.wait_rounds("restart", 5)
    prober.report("SIGKILL")
    print(f"  (the container started as the engine died, in dnscock's last table: {flash})")
    prober.check("before")
    prober.check("fault")
    prober.check("restart", [FORWARDED])  # the restarted engine stops the orphaned "known"
    assert dnscock.process.poll() is None


def test_engine_socket_removed(own_engine, start_dnscock, upstream):
    engine: PrivateEngine = own_engine
    dnscock, prober = _start_probed(engine, engine.url, start_dnscock, upstream)
    moved = engine.socket_path.with_name("docker.sock.moved")
    with prober:
        prober.wait_rounds("before", 20)

        # The socket file goes; dockerd runs on, reachable only through the moved name.
        mark = len(dnscock.lines)
        prober.phase = "fault"
        os.rename(engine.socket_path, moved)
        # A container started meanwhile needs dnscock to inspect it: a new connection, unless
        # one of its pool is still open.
        side = docker.DockerClient(base_url=f"unix://{moved}", version="auto", timeout=30)
        try:
            during = side.containers.run(BUSYBOX_IMAGE, ["sleep", "3600"], name="during", detach=True, init=True)
            prober.wait_rounds("fault", 40)
            during_answered = bool(dnscock.query("during.busybox.docker").answer)
            fault_log = [line.split(": ", 1)[-1] for line in dnscock.lines[mark:] if "Docker engine" in line]
        finally:
            side.close()

        # Restored by restarting the engine: it makes its socket again.
        prober.phase = "restart"
        mark = len(dnscock.lines)
        engine.terminate()
        moved.unlink(missing_ok=True)
        engine.wait_for_containerd()
        _restart_and_recover(engine, dnscock, mark, "socket removed")
        prober.wait_rounds("restart", 5)
    prober.report("socket removed")
    print(f"  (during the fault the container started then was {'' if during_answered else 'not '}answered "
          f"({during.id[:12]}); dnscock logged: {fault_log})")
    prober.check("before")
    prober.check("fault")
    prober.check("restart", [FORWARDED])  # the engine's SIGTERM stopped "known"
    assert dnscock.process.poll() is None


@pytest.fixture
def slow_proxy(docker_env):
    directory = Path(tempfile.mkdtemp(prefix="dck-slow-", dir="/tmp"))
    proxy = EngineProxy(directory / "engine.sock", docker_env.socket_path).start()
    yield proxy
    proxy.stop()
    shutil.rmtree(directory, ignore_errors=True)


def test_slow_engine_api(docker_env, slow_proxy, start_dnscock, upstream):
    engine: PrivateEngine = docker_env
    proxy: EngineProxy = slow_proxy
    dnscock, prober = _start_probed(engine, proxy.url, start_dnscock, upstream)
    with prober:
        prober.wait_rounds("before", 20)

        prober.phase = "slow"
        proxy.delay = SLOW_DELAY
        slow_start = time.time()
        # A container started now is told by the (open) event stream; its inspect waits.
        slow = engine.run("redis:latest", name="slow")
        started = time.time()
        dnscock.wait_for_answer("slow.redis.docker", _answered, timeout=SLOW_DELAY * 3 + 10)
        slow_answered = time.time() - started
        # A reconnect while the API is slow: each call of the new session waits (version,
        # events, listing, inspect) while the old table keeps being served.
        mark = len(dnscock.lines)
        proxy.cut()
        lost_at = _log_time(dnscock, LOST, mark)
        reconnected_at = _log_time(dnscock, CONNECTED, mark, timeout=SLOW_DELAY * 8 + 20)
        prober.wait_rounds("slow", 20)

        prober.phase = "after"
        mark = len(dnscock.lines)
        proxy.delay = 0
        fault_end = time.time()
        after = engine.run("redis:latest", name="after")
        started_after = time.time()
        dnscock.wait_for_answer("after.redis.docker", _answered, timeout=30)
        answered_after = time.time()
        prober.wait_rounds("after", 5)
    assert dnscock.addresses("slow.redis.docker") == [container_ip(slow)]
    assert dnscock.addresses("after.redis.docker") == [container_ip(after)]
    prober.report(f"slow API ({SLOW_DELAY:g}s per response)")
    print(f"\nslow API: a container started under the delay answered {slow_answered:.2f}s after its start; "
          f"a forced reconnect under the delay took {reconnected_at - lost_at:.2f}s; "
          f"delay end -> new container answered {answered_after - fault_end:.2f}s "
          f"(start -> answered {answered_after - started_after:.2f}s); delay lasted {fault_end - slow_start:.1f}s")
    delayed = [request for request in proxy.requests if request.answered and request.answered - request.received
               >= SLOW_DELAY * 0.9]
    assert delayed, "the proxy held no response back"
    prober.check("before")
    prober.check("slow")
    prober.check("after")
    assert dnscock.process.poll() is None
