"""Engine faults: dnscock keeps answering from its last table, forwards as usual, and recovers.

Each test starts dnscock against a private engine and a fake upstream, then
a prober thread queries it over and over (a known container's name and a
forwarded name), recording every answer and its latency, before, during
and after the fault:

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
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import docker
import pytest

from tests.docker.conftest import start_engine, stop_engine
from tests.support.dnscock_process import DnscockProcess, rcode
from tests.support.engine_proxy import EngineProxy
from tests.support.fake_upstream import ANSWER_IP
from tests.support.private_engine import BUSYBOX_IMAGE, PrivateEngine

DNS_TIMEOUT = 2.0  # a probe not answered within this is a failure (dnscock's own -timeout default)
FORWARDED = "www.example.com"
SLOW_DELAY = 2.0  # seconds the slow Engine API holds back each response
LOST = "lost the Docker engine|cannot reach the Docker engine"
CONNECTED = "connected to the Docker engine"


@dataclass(frozen=True)
class Sample:
    phase: str
    name: str
    sent: float  # time.time()
    latency: float | None  # seconds; None: no answer within DNS_TIMEOUT
    rcode: str | None
    addresses: tuple[str, ...]


class Prober:
    """Queries dnscock for ``expected``'s names in a loop, in a thread; ``phase`` labels what follows."""

    def __init__(self, dnscock: DnscockProcess, expected: dict[str, list[str]], interval: float = 0.05) -> None:
        self.dnscock = dnscock
        self.expected = {name: sorted(addresses) for name, addresses in expected.items()}
        self.interval = interval
        self.phase = "before"
        self.samples: list[Sample] = []
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prober", daemon=True)

    def start(self) -> Prober:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2 * DNS_TIMEOUT + 1)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name in self.expected:
                phase, sent, started = self.phase, time.time(), time.perf_counter()
                try:
                    reply = dns.query.udp(dns.message.make_query(name, "A"), self.dnscock.host,
                                          port=self.dnscock.port, timeout=DNS_TIMEOUT)
                except dns.exception.Timeout:
                    sample = Sample(phase, name, sent, None, None, ())
                else:
                    addresses = tuple(sorted(rr.address for rrset in reply.answer for rr in rrset))
                    sample = Sample(phase, name, sent, time.perf_counter() - started,
                                    dns.rcode.to_text(reply.rcode()), addresses)
                with self._changed:
                    self.samples.append(sample)
                    self._changed.notify_all()
            self._stop.wait(self.interval)

    def wait_rounds(self, phase: str, rounds: int, timeout: float = 30.0) -> None:
        """Waits until every name has been asked ``rounds`` times in ``phase``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while min(self._count(phase, name) for name in self.expected) < rounds:
                if time.monotonic() > deadline:
                    raise AssertionError(f"the prober made fewer than {rounds} rounds in phase {phase!r}")
                self._changed.wait(0.2)

    def _count(self, phase: str, name: str) -> int:
        return sum(1 for sample in self.samples if sample.phase == phase and sample.name == name)

    def check(self, phase: str, names: list[str] | None = None) -> None:
        """Every probe of ``names`` (default: all) in ``phase`` got its right answer in time."""
        with self._changed:
            samples = [sample for sample in self.samples
                       if sample.phase == phase and (names is None or sample.name in names)]
        assert samples, f"no probes in phase {phase!r}"
        wrong = [sample for sample in samples
                 if sample.latency is None or sample.rcode != "NOERROR"
                 or list(sample.addresses) != self.expected[sample.name]]
        assert not wrong, f"{len(wrong)} of {len(samples)} probes in phase {phase!r} went wrong, first: {wrong[:3]}"

    def report(self, title: str) -> None:
        with self._changed:
            samples = list(self.samples)
        print(f"\n{title}: latency of dnscock's answers, ms (median / p95 / max, probes)")
        for phase in dict.fromkeys(sample.phase for sample in samples):
            for name in self.expected:
                latencies = sorted(s.latency * 1000 for s in samples
                                   if s.phase == phase and s.name == name and s.latency is not None)
                lost = sum(1 for s in samples if s.phase == phase and s.name == name and s.latency is None)
                if latencies:
                    p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]
                    print(f"  {phase:>9} {name:<22} {statistics.median(latencies):6.2f} / {p95:6.2f} / "
                          f"{latencies[-1]:7.2f}  ({len(latencies)}{f', {lost} unanswered' if lost else ''})")


@pytest.fixture
def own_engine():
    """An engine of this test's own, since the test breaks it."""
    engine = start_engine("dck-flt-")
    yield engine
    stop_engine(engine)


def _ip(container) -> str:
    container.reload()
    return container.attrs["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]


def _answered(reply) -> bool:
    return bool(reply.answer)


def _log_time(dnscock: DnscockProcess, pattern: str, start: int, timeout: float = 60.0) -> float:
    """The time (time.time()) dnscock logged a line matching ``pattern`` from line ``start`` on."""
    match = dnscock.wait_for_log(pattern, timeout=timeout, start=start)
    return datetime.strptime(match.string[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()


def _recover(engine: PrivateEngine, dnscock: DnscockProcess, fault_end: float, mark: int, title: str) -> None:
    """A container started after the fault ends is answered; prints the recovery times.

    ``fault_end``: when the engine answered again (or the slow API turned fast).
    """
    newcomer = engine.run("redis:latest", name="newcomer")
    started = time.time()
    dnscock.wait_for_answer("newcomer.redis.docker", _answered, timeout=60)
    answered = time.time()
    assert dnscock.addresses("newcomer.redis.docker") == [_ip(newcomer)]
    reconnected = _log_time(dnscock, CONNECTED, mark)
    print(f"\n{title}: fault end -> dnscock reconnected {reconnected - fault_end:.2f}s; "
          f"-> newcomer answered {answered - fault_end:.2f}s "
          f"(its start took {started - fault_end:.2f}s; start -> answered {answered - started:.2f}s)")


def test_engine_sigkilled_mid_stream(own_engine, start_dnscock, upstream):
    engine: PrivateEngine = own_engine
    known = engine.run("redis:latest", name="known")
    dnscock = start_dnscock(f"-docker={engine.url}", f"-nameserver={upstream.address}")
    dnscock.wait_for_log(CONNECTED)
    prober = Prober(dnscock, {"known.redis.docker": [_ip(known)], FORWARDED: [ANSWER_IP]}).start()
    try:
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
        engine.start()
        fault_end = engine.answering_since
        assert fault_end is not None
        _recover(engine, dnscock, fault_end, mark, "SIGKILL")
        prober.wait_rounds("restart", 5)
    finally:
        prober.stop()
    prober.report("SIGKILL")
    print(f"  (the container started as the engine died, in dnscock's last table: {flash})")
    prober.check("before")
    prober.check("fault")
    prober.check("restart", [FORWARDED])  # the restarted engine stops the orphaned "known"
    assert dnscock.process.poll() is None


def test_engine_socket_removed(own_engine, start_dnscock, upstream):
    engine: PrivateEngine = own_engine
    known = engine.run("redis:latest", name="known")
    dnscock = start_dnscock(f"-docker={engine.url}", f"-nameserver={upstream.address}")
    dnscock.wait_for_log(CONNECTED)
    prober = Prober(dnscock, {"known.redis.docker": [_ip(known)], FORWARDED: [ANSWER_IP]}).start()
    moved = engine.socket_path.with_name("docker.sock.moved")
    side = None
    try:
        prober.wait_rounds("before", 20)

        # The socket file goes; dockerd runs on, reachable only through the moved name.
        mark = len(dnscock.lines)
        prober.phase = "fault"
        os.rename(engine.socket_path, moved)
        # A container started meanwhile needs dnscock to inspect it: a new connection, unless
        # one of its pool is still open.
        side = docker.DockerClient(base_url=f"unix://{moved}", version="auto", timeout=30)
        during = side.containers.run(BUSYBOX_IMAGE, ["sleep", "3600"], name="during", detach=True, init=True)
        prober.wait_rounds("fault", 40)
        during_answered = bool(dnscock.query("during.busybox.docker").answer)
        fault_log = [line.split(": ", 1)[-1] for line in dnscock.lines[mark:] if "Docker engine" in line]

        # Restored by restarting the engine: it makes its socket again.
        prober.phase = "restart"
        side.close()
        side = None
        mark = len(dnscock.lines)
        engine.terminate()
        moved.unlink(missing_ok=True)
        engine.wait_for_containerd()
        engine.start()
        fault_end = engine.answering_since
        assert fault_end is not None
        _recover(engine, dnscock, fault_end, mark, "socket removed")
        prober.wait_rounds("restart", 5)
    finally:
        if side is not None:
            side.close()
        prober.stop()
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
    known = engine.run("redis:latest", name="known")
    dnscock = start_dnscock(f"-docker={proxy.url}", f"-nameserver={upstream.address}")
    dnscock.wait_for_log(CONNECTED)
    prober = Prober(dnscock, {"known.redis.docker": [_ip(known)], FORWARDED: [ANSWER_IP]}).start()
    try:
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
    finally:
        prober.stop()
    assert dnscock.addresses("slow.redis.docker") == [_ip(slow)]
    assert dnscock.addresses("after.redis.docker") == [_ip(after)]
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
