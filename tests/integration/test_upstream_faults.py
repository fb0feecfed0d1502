"""Upstream faults: SERVFAIL within -timeout, no crash, local names unharmed, recovery by itself.

Each fault is a ``FakeUpstream`` mode (tests/support/fake_upstream.py): an
upstream that stays silent, answers after twice dnscock's ``-timeout``,
answers garbage, answers under another message id, answers another
question, sends a damaged reply, or truncates its UDP answers while its TCP
is silent or resets. dnscock runs with ``-docker`` pointing at the fake
engine of ``tests/support/fake_engine`` (a subprocess with a few containers), so
local names exist without Docker, and a thread keeps asking for them while
the fault lasts (``tests/support/prober.py``).

For every fault, with that upstream alone: each forwarded query gets
SERVFAIL before ``-timeout`` + ``SLACK`` (the only timing bound asserted:
it proves "no hang"; the actual latencies are printed), over UDP and TCP;
after ``-max-fails`` failures the upstream is skipped (SERVFAIL at once)
until a background ``. NS`` probe gets an answer; once the upstream is
switched to healthy, forwarded answers come back by themselves, and the
time that takes is measured. With a healthy second upstream behind the
faulty one, every answer comes from the second within ``-timeout``.
dnscock must stay up and log no traceback throughout.

The figures are printed at the end of the module (``pytest -s`` also shows
them per test).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import pytest

from tests.support.dnscock_process import DnscockProcess, rcode
from tests.support.fake_engine import FakeEngineProcess, container_ip, make_image
from tests.support.fake_upstream import ANSWER_IP, FakeUpstream
from tests.support.prober import Prober

TIMEOUT = 0.5  # dnscock's -timeout in these tests, seconds
SLACK = 1.5  # a reply must arrive before TIMEOUT + SLACK: "no hang", not a performance bar
BOUND = TIMEOUT + SLACK
CLIENT_TIMEOUT = BOUND + 2.0  # the test client waits longer than the bound, so a late reply is measured
MAX_FAILS = 3  # dnscock's default -max-fails, given explicitly
PROBE_FIRST = 0.5  # dnscock's first probe delay (dnscock.upstream.PROBE_FIRST)
LOCAL_BOUND = 1.0  # a local answer never waits for an upstream
GOOD_IP = "192.0.2.77"  # what the healthy second upstream answers
CONTAINERS, IMAGES = 4, 2


@dataclass(frozen=True)
class Fault:
    name: str
    mode: str
    tcp: str | None = None  # FakeUpstream's tcp override
    healthy_mode: str = "answer"  # what the upstream is switched to when the fault ends
    marks_down: bool = True  # do the failures count towards -max-fails?

    def kwargs(self) -> dict[str, Any]:
        return {"mode": self.mode, "tcp": self.tcp, "delay": 2 * TIMEOUT}


FAULTS = [
    Fault("silent", "silent"),
    Fault("slow", "slow"),
    Fault("garbage", "garbage"),
    Fault("wrong-id", "wrong-id"),
    Fault("wrong-question", "wrong-question"),
    Fault("malformed", "malformed"),
    # The UDP answer comes (so the upstream is not counted as failing); the TCP one does not.
    Fault("truncated-tcp-silent", "truncate", tcp="silent", healthy_mode="truncate", marks_down=False),
    Fault("truncated-tcp-reset", "truncate", tcp="reset", healthy_mode="truncate", marks_down=False),
]


# The recovery test takes about 6 s for each of these (three -timeout waits, then two backed-off probes):
# marked slow, `make check` leaves them to `make test`; malformed and the truncations keep a whole cycle there.
SLOW_TO_RECOVER = {"silent", "slow", "garbage", "wrong-id", "wrong-question"}


# -- figures --


@pytest.fixture(scope="module")
def figures(request: pytest.FixtureRequest) -> Iterator[dict[str, dict[str, Any]]]:
    """Latencies and recovery times by test; printed once the module is done."""
    collected: dict[str, dict[str, Any]] = {}
    yield collected
    lines = [f"upstream fault figures (-timeout={TIMEOUT}, -max-fails={MAX_FAILS}; seconds):"]
    for test, values in collected.items():
        lines.append(f"  {test}: " + ", ".join(f"{key} {_fmt(value)}" for key, value in values.items()))
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
        print("\n" + "\n".join(lines), flush=True)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, list):
        return "[" + " ".join(_fmt(item) for item in value) + "]"
    return str(value)


def record(figures: dict[str, dict[str, Any]], request: pytest.FixtureRequest, **values: Any) -> None:
    entry = figures.setdefault(request.node.name, {})
    entry.update(values)
    print(f"{request.node.name}: " + ", ".join(f"{key} {_fmt(value)}" for key, value in values.items()))


# -- the fake engine: local names without Docker --


@dataclass
class LocalEngine:
    url: str
    names: dict[str, list[str]] = field(default_factory=dict)  # local name -> its sorted addresses


@pytest.fixture(scope="module")
def fake_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEngine]:
    engine = FakeEngineProcess(tmp_path_factory.mktemp("engine") / "docker.sock", CONTAINERS, "--images", str(IMAGES))
    try:
        names: dict[str, list[str]] = {}
        for index in range(1, CONTAINERS + 1):  # container i runs image ((i - 1) % IMAGES) + 1
            image = make_image((index - 1) % IMAGES + 1).reference.split(":")[0].rsplit("/", 1)[-1]
            names[f"c{index:05d}.{image}.docker"] = [container_ip(index)]
            names.setdefault(f"{image}.docker", []).append(container_ip(index))
        yield LocalEngine(engine.url, {key: sorted(v) for key, v in names.items()})
    finally:
        engine.stop()


@contextlib.contextmanager
def local_traffic(dnscock: DnscockProcess, names: dict[str, list[str]]) -> Iterator[Prober]:
    """A prober asking dnscock for local names all along (its samples in phase "fault"), answered once first."""
    with Prober(dnscock, names, timeout=CLIENT_TIMEOUT, pause=0.01, phase="fault") as prober:
        prober.wait_for(lambda samples: any(sample.latency is not None for sample in samples),
                        "no local answer before the fault", timeout=CLIENT_TIMEOUT)
        yield prober


def check_local(prober: Prober) -> dict[str, Any]:
    """Every local answer was right and quicker than LOCAL_BOUND; the figures: their count, median and maximum."""
    prober.check("fault", within=LOCAL_BOUND)
    latencies = prober.latencies("fault")
    return {"local_answers": len(latencies), "local_p50": latencies[len(latencies) // 2], "local_max": latencies[-1]}


# -- helpers --


class BadReply(AssertionError):
    """dnscock sent no reply in time, or one that does not parse."""


def timed_query(dnscock: DnscockProcess, name: str, tcp: bool = False) -> tuple[dns.message.Message, float]:
    """The reply and how long it took; BadReply (rather than a hang) when none comes within CLIENT_TIMEOUT."""
    how = "TCP" if tcp else "UDP"
    started = time.perf_counter()
    try:
        reply = dnscock.query(name, tcp=tcp, timeout=CLIENT_TIMEOUT)
    except dns.exception.Timeout:
        raise BadReply(f"{name} ({how}): no reply within {CLIENT_TIMEOUT}s\n{dnscock.log()}") from None
    except dns.exception.FormError as error:
        raise BadReply(f"{name} ({how}): dnscock passed on a malformed reply ({error}) after "
                       f"{time.perf_counter() - started:.3f}s") from None
    return reply, time.perf_counter() - started


def addresses(reply: dns.message.Message) -> list[str]:
    return sorted(rr.address for rrset in reply.answer for rr in rrset if hasattr(rr, "address"))


def assert_servfail_in_time(dnscock: DnscockProcess, name: str, tcp: bool = False) -> float:
    reply, seconds = timed_query(dnscock, name, tcp=tcp)
    assert rcode(reply) == "SERVFAIL", f"{name}: {rcode(reply)} {addresses(reply)}, expected SERVFAIL"
    assert seconds < BOUND, f"{name}: SERVFAIL after {seconds:.3f}s"
    return seconds


def assert_healthy(dnscock: DnscockProcess) -> None:
    assert dnscock.process.poll() is None, f"dnscock exited with code {dnscock.process.returncode}:\n{dnscock.log()}"
    assert "Traceback" not in dnscock.log(), f"dnscock logged a traceback:\n{dnscock.log()}"


def start(start_dnscock, fake_engine: LocalEngine, *nameservers: FakeUpstream) -> DnscockProcess:
    dnscock = start_dnscock(f"-nameserver={','.join(server.address for server in nameservers)}",
                            f"-timeout={TIMEOUT}", f"-max-fails={MAX_FAILS}", f"-docker={fake_engine.url}")
    dnscock.wait_for_log("connected to the Docker engine")
    return dnscock


def wait_for_forwarded_answer(dnscock: DnscockProcess, bound: float, prefix: str) -> tuple[float, int]:
    """Asks a new forwarded name until the upstream's answer comes back; (seconds, queries asked)."""
    started = time.perf_counter()
    asked = 0
    while True:
        asked += 1
        reply, seconds = timed_query(dnscock, f"{prefix}{asked}.example.com")
        assert seconds < BOUND, f"a forwarded query took {seconds:.3f}s while recovering"
        if rcode(reply) == "NOERROR" and addresses(reply) == [ANSWER_IP]:
            return time.perf_counter() - started, asked
        assert rcode(reply) == "SERVFAIL", f"while recovering: {rcode(reply)} {addresses(reply)}"
        elapsed = time.perf_counter() - started
        assert elapsed < bound, f"forwarded answers did not come back within {bound:.1f}s:\n{dnscock.log()}"
        time.sleep(0.02)  # pacing the polling of dnscock's state, not waiting for a server


# -- the tests --


@pytest.mark.parametrize("fault", [pytest.param(fault, id=fault.name,
                                               marks=pytest.mark.slow if fault.name in SLOW_TO_RECOVER else ())
                                  for fault in FAULTS])
def test_a_faulty_upstream_gets_servfail_in_time_then_recovers(fault: Fault, make_upstream, start_dnscock,
                                                               fake_engine, figures, request) -> None:
    upstream = make_upstream(**fault.kwargs())
    dnscock = start(start_dnscock, fake_engine, upstream)
    with local_traffic(dnscock, fake_engine.names) as local:
        # MAX_FAILS failures, over UDP, then over TCP (forwarded over TCP).
        latencies = [assert_servfail_in_time(dnscock, f"udp{i}.{fault.name}.example.com")
                     for i in range(MAX_FAILS - 1)]
        latencies.append(assert_servfail_in_time(dnscock, f"tcp.{fault.name}.example.com", tcp=True))
        failed_at = time.perf_counter()
        skipped: list[float] = []
        if fault.marks_down:
            dnscock.wait_for_log(f"upstream {upstream.address} left {MAX_FAILS} queries in a row unanswered")
            # Skipped now: SERVFAIL without asking it.
            skipped = [assert_servfail_in_time(dnscock, f"skipped{i}.{fault.name}.example.com") for i in range(2)]
            asked = {arrival.name for arrival in upstream.arrivals}
            assert not any(name.startswith("skipped") for name in asked), "a skipped upstream was asked"
            # Let the fault outlast two probes, so that recovery waits for a backed-off probe.
            upstream.wait_for(lambda arrivals: len([a for a in arrivals if a.name == "."]) >= 2,
                              timeout=PROBE_FIRST * 4 + 2 * TIMEOUT + SLACK)
        else:
            latencies += [assert_servfail_in_time(dnscock, f"more{i}.{fault.name}.example.com") for i in range(3)]
        # The fault ends.
        switched = time.perf_counter()
        upstream.mode, upstream.tcp = fault.healthy_mode, None
        # The next probe comes at most (time since the upstream went down + PROBE_FIRST) later.
        bound = (switched - failed_at) + PROBE_FIRST + TIMEOUT + SLACK
        recovery, polls = wait_for_forwarded_answer(dnscock, bound, f"back.{fault.name}.")
        if fault.marks_down:
            dnscock.wait_for_log(f"upstream {upstream.address} answers again")
        reply, seconds = timed_query(dnscock, f"after.{fault.name}.example.com", tcp=True)
        assert addresses(reply) == [ANSWER_IP] and seconds < BOUND
    local_figures = check_local(local)
    assert_healthy(dnscock)
    probes = [round(arrival.at - upstream.arrivals[0].at, 2) for arrival in upstream.probes()]
    record(figures, request, servfail=latencies, skipped_servfail=skipped,
           fault_after_down=switched - failed_at, recovery=recovery, recovery_polls=polls,
           probes_at=probes, **local_figures)


def test_a_truncated_answer_is_fetched_over_tcp_in_time(make_upstream, start_dnscock, fake_engine, figures,
                                                        request) -> None:
    truncating = make_upstream("truncate", records=2)
    dnscock = start(start_dnscock, fake_engine, truncating)
    with local_traffic(dnscock, fake_engine.names) as local:
        latencies = []
        for i in range(MAX_FAILS + 2):
            reply, seconds = timed_query(dnscock, f"tc{i}.example.com")
            assert rcode(reply) == "NOERROR" and not reply.flags & dns.flags.TC
            assert addresses(reply) == [ANSWER_IP, "192.0.2.54"], "the answer dnscock fetched over TCP"
            assert seconds < BOUND
            latencies.append(seconds)
        assert {query.question[0].name.to_text() for query in truncating.tcp_queries} >= {
            f"tc{i}.example.com." for i in range(MAX_FAILS + 2)}
    local_figures = check_local(local)
    assert_healthy(dnscock)
    record(figures, request, answer=latencies, **local_figures)


@pytest.mark.parametrize("fault", FAULTS, ids=[fault.name for fault in FAULTS])
def test_a_healthy_second_upstream_answers_within_the_timeout(fault: Fault, make_upstream, start_dnscock,
                                                              fake_engine, figures, request) -> None:
    faulty = make_upstream(**fault.kwargs())
    good = make_upstream("answer", answer_ip=GOOD_IP)
    dnscock = start(start_dnscock, fake_engine, faulty, good)
    with local_traffic(dnscock, fake_engine.names) as local:
        latencies, problems = [], []
        for i in range(MAX_FAILS + 3):
            tcp = i == 0
            name = f"two{i}.{fault.name}.example.com"
            try:
                reply, seconds = timed_query(dnscock, name, tcp=tcp)
            except BadReply as error:
                problems.append(str(error))
                continue
            latencies.append(seconds)
            if rcode(reply) != "NOERROR" or addresses(reply) != [GOOD_IP] or seconds >= BOUND:
                problems.append(f"{name} ({'TCP' if tcp else 'UDP'}): {rcode(reply)} {addresses(reply)} "
                                f"after {seconds:.3f}s")
    record(figures, request, answer=latencies)
    assert not problems, "expected the second upstream's answer within the timeout:\n  " + "\n  ".join(problems)
    check_local(local)
    assert_healthy(dnscock)
