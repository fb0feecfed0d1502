"""The forwarder on its own: one ``Forwarder`` driven in-process under gevent against fake upstreams on loopback.

The fake upstreams (``tests.support.fake_upstream``) run in threads; the
forwarder runs on gevent's loop in the test's own thread, so the tests wait
for its ``done`` callback with ``AsyncResult.get`` (which runs the loop) and
never block the thread otherwise. Timeouts are small (0.3 to 0.6 s) and
timing is asserted loosely: which share of the timeout, not to the millisecond.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import gevent
import gevent.event
import pytest

from dnscock import upstream as upstream_module
from dnscock import wire
from dnscock.config import Address
from dnscock.query import Query
from dnscock.upstream import Forwarder
from tests.support.fake_upstream import FakeUpstream

TIMEOUT = 0.4
SLACK = 0.3  # for a busy machine: outcomes come within the timeout and this
NAME = "www.example.com."
FIRST_IP, SECOND_IP, THIRD_IP = "192.0.2.1", "192.0.2.2", "192.0.2.3"


class RcodeUpstream(FakeUpstream):
    """Answers every query with ``rcode`` and no records, over UDP and TCP."""

    def __init__(self, rcode: int, **kwargs) -> None:
        self.rcode = rcode  # before the serving threads start
        super().__init__("answer", **kwargs)

    def reply_to(self, query: dns.message.Message, tcp: bool) -> dns.message.Message | None:
        reply = dns.message.make_response(query)
        reply.set_rcode(self.rcode)
        return reply


class NoisyUpstream(FakeUpstream):
    """Sends before each UDP answer datagrams that are no answer to the query, then the answer, twice."""

    def datagrams_for(self, query: dns.message.Message, data: bytes, tcp: bool) -> list[bytes]:
        right = super().datagrams_for(query, data, tcp)
        if tcp or not right:
            return right
        question = query.question[0]
        answer = right[0]

        def reply_for(name: dns.name.Name, rdtype: int) -> bytes:
            other = dns.message.make_query(name, rdtype)
            other.id = query.id
            return self.reply_to_question(other, dns.message.make_response(other)).to_wire()

        noise = [
            b"\x12\x34\x81",  # shorter than a header
            data,  # the query itself: the right id, but no reply (QR clear)
            bytes([answer[0] ^ 0x5A, answer[1] ^ 0x5A]) + answer[2:],  # the answer under another id
            reply_for(dns.name.Name((b"other", *question.name.labels)), question.rdtype),  # another name
            reply_for(question.name, dns.rdatatype.AAAA),  # another type
            data[:2] + struct.pack("!HHHHH", 0x8180, 1, 1, 0, 0) + b"\xde\xad\xbe\xef" * 9,  # a lying header
        ]
        return noise + right + right  # a datagram may come twice


class Lab:
    """Fake upstreams and forwarders to them, all closed after the test (the forwarders first)."""

    def __init__(self) -> None:
        self.servers: list[FakeUpstream] = []
        self.forwarders: list[Forwarder] = []

    def upstream(self, mode: str = "answer", kind: Callable[..., FakeUpstream] = FakeUpstream,
                 **kwargs) -> FakeUpstream:
        self.servers.append(kind(mode, **kwargs))
        return self.servers[-1]

    def rcode(self, rcode: int) -> FakeUpstream:
        self.servers.append(RcodeUpstream(rcode))
        return self.servers[-1]

    def forwarder(self, *servers: FakeUpstream, timeout: float = TIMEOUT, max_fails: int = 3) -> Forwarder:
        self.forwarders.append(Forwarder([Address(server.host, server.port) for server in servers], timeout, max_fails))
        return self.forwarders[-1]

    def close(self) -> None:
        for forwarder in self.forwarders:
            forwarder.close()
        for server in self.servers:
            server.close()


@pytest.fixture
def lab():
    made = Lab()
    yield made
    made.close()


@pytest.fixture
def probe_first(monkeypatch):
    """Sets how long a probe waits before its first try (seconds)."""
    def set_to(seconds: float) -> None:
        monkeypatch.setattr(upstream_module, "PROBE_FIRST", seconds)
    return set_to


class Outcome:
    """What ``done`` was called with, and when."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, bytes | None, str]] = []
        self.result = gevent.event.AsyncResult()
        self.started = time.monotonic()

    def done(self, _query: Query, reply: bytes | None, problem: str) -> None:
        self.calls.append((time.monotonic(), reply, problem))
        if not self.result.ready():
            self.result.set()

    def wait(self, timeout: float) -> Outcome:
        self.result.get(timeout=timeout)
        return self

    @property
    def reply(self) -> bytes | None:
        return self.calls[0][1]

    @property
    def problem(self) -> str:
        return self.calls[0][2]

    @property
    def elapsed(self) -> float:
        return self.calls[0][0] - self.started

    def message(self) -> dns.message.Message:
        assert self.reply is not None, self.problem
        return dns.message.from_wire(self.reply)


def query(name: str = NAME, rdtype: str = "A", message_id: int = 0x4242) -> bytes:
    message = dns.message.make_query(name, rdtype)
    message.id = message_id
    return message.to_wire()


def forwarded(data: bytes, tcp: bool = False) -> Query:
    """``data`` as the pipeline hands it to the forwarder: read, from a client over UDP or TCP."""
    made = Query(data, None, ("127.0.0.1", 53000), 0.0, tcp)
    assert made.read()
    return made


def submit(forwarder: Forwarder, name: str = NAME, tcp: bool = False) -> Outcome:
    outcome = Outcome()
    forwarder.submit(forwarded(query(name), tcp), outcome.done)
    return outcome


def ask(forwarder: Forwarder, name: str = NAME, tcp: bool = False) -> Outcome:
    """Forwards one query and waits for its outcome; checks it came once and left nothing in flight."""
    outcome = submit(forwarder, name, tcp).wait(forwarder.timeout + 2)
    gevent.sleep(0.01)  # room for a second call, were there one
    assert len(outcome.calls) == 1
    assert forwarder.in_flight == 0
    return outcome


def addresses(outcome: Outcome) -> list[str]:
    return [rdata.address for rrset in outcome.message().answer for rdata in rrset]


def asked_name(outcome: Outcome) -> str:
    return outcome.message().question[0].name.to_text()


def counters(forwarder: Forwarder, index: int = 0) -> tuple[int, int, int]:
    upstream = forwarder.upstreams[index]
    return upstream.queries, upstream.timeouts, upstream.errors


def eventually(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    """Runs the loop until ``condition()`` holds (the fakes' ``wait_for`` would block it)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        gevent.sleep(0.01)


# -- answers --


def test_a_udp_answer_reaches_done_once_with_the_upstreams_reply_well_formed(lab):
    server = lab.upstream("answer", answer_ip=FIRST_IP, records=2)
    forwarder = lab.forwarder(server)
    outcome = ask(forwarder, "Www.Example.COM.")
    assert outcome.problem == ""
    assert asked_name(outcome) == "Www.Example.COM." and sorted(addresses(outcome)) == [FIRST_IP, SECOND_IP]
    assert wire.records(outcome.reply) is not None
    # Sent under an id of the forwarder's own: the reply comes as the upstream sent it.
    assert outcome.message().id == server.queries[0].id
    assert (len(server.queries), len(server.tcp_queries)) == (1, 0)
    assert counters(forwarder) == (1, 0, 0)


def test_an_answering_first_upstream_leaves_the_others_unasked(lab):
    first, second = lab.upstream(answer_ip=FIRST_IP), lab.upstream(answer_ip=SECOND_IP)
    forwarder = lab.forwarder(first, second)
    assert addresses(ask(forwarder)) == [FIRST_IP]
    assert addresses(ask(forwarder, "mail.example.com.")) == [FIRST_IP]
    assert not second.arrivals and counters(forwarder, 1) == (0, 0, 0)


def test_queries_in_flight_together_each_get_their_own_answer(lab):
    forwarder = lab.forwarder(lab.upstream())
    names = [f"host{i}.example.com." for i in range(30)]
    outcomes = [submit(forwarder, name) for name in names]
    assert forwarder.in_flight == len(names)
    for outcome in outcomes:
        outcome.wait(TIMEOUT + 2)
    gevent.sleep(0.01)  # room for a second call, were there one
    assert [asked_name(outcome) for outcome in outcomes] == names
    assert all(len(outcome.calls) == 1 for outcome in outcomes)
    assert forwarder.in_flight == 0 and counters(forwarder) == (30, 0, 0)


# -- failover --


def test_a_silent_first_upstream_is_given_up_after_its_share_of_the_timeout_and_the_second_answers(lab):
    silent, answering = lab.upstream("silent"), lab.upstream(answer_ip=SECOND_IP)
    forwarder = lab.forwarder(silent, answering, timeout=0.6)
    outcome = ask(forwarder)
    assert addresses(outcome) == [SECOND_IP] and outcome.problem == ""
    # Two upstreams, 0.6 s: the first has 0.3 s of it.
    waited = answering.arrivals[0].at - silent.arrivals[0].at
    assert 0.2 < waited < 0.55
    assert outcome.elapsed < 0.6 + SLACK
    assert counters(forwarder, 0) == (1, 1, 0) and counters(forwarder, 1) == (1, 0, 0)


def test_failover_asks_the_upstreams_in_their_order(lab):
    servers = [lab.upstream("silent"), lab.upstream("silent"), lab.upstream(answer_ip=THIRD_IP)]
    forwarder = lab.forwarder(*servers, timeout=0.6)
    outcome = ask(forwarder)
    assert addresses(outcome) == [THIRD_IP]
    first, second, third = (server.arrivals[0].at for server in servers)
    assert first < second < third
    assert outcome.elapsed < 0.6 + SLACK
    assert [upstream.timeouts for upstream in forwarder.upstreams] == [1, 1, 0]


def test_a_late_answer_from_an_upstream_given_up_is_not_delivered_again(lab):
    slow, answering = lab.upstream("slow", delay=0.35, answer_ip=FIRST_IP), lab.upstream(answer_ip=SECOND_IP)
    forwarder = lab.forwarder(slow, answering, timeout=TIMEOUT)
    outcome = ask(forwarder)
    assert addresses(outcome) == [SECOND_IP]
    gevent.sleep(0.35)  # the slow answer comes meanwhile, long after its share (0.2 s)
    assert len(outcome.calls) == 1 and forwarder.in_flight == 0


@pytest.mark.parametrize("rcode", [dns.rcode.FORMERR, dns.rcode.SERVFAIL, dns.rcode.NOTIMP, dns.rcode.REFUSED],
                         ids=dns.rcode.to_text)
def test_an_upstream_that_answers_with_a_failure_rcode_is_passed_over_at_once(lab, rcode):
    failing, answering = lab.rcode(rcode), lab.upstream(answer_ip=SECOND_IP)
    forwarder = lab.forwarder(failing, answering, timeout=0.6)
    outcome = ask(forwarder)
    assert addresses(outcome) == [SECOND_IP] and outcome.problem == ""
    assert answering.arrivals[0].at - failing.arrivals[0].at < 0.25  # not its whole share (0.3 s)
    failed = forwarder.upstreams[0]
    assert counters(forwarder, 0) == (1, 0, 1)
    assert failed.fails == 0 and not failed.down  # a refusal is a sign of life


@pytest.mark.parametrize("modes", [
    ("silent", "silent"),
    (dns.rcode.SERVFAIL, dns.rcode.FORMERR),
    ("silent", "malformed"),
    (dns.rcode.REFUSED, "silent"),
    ("wrong-id", dns.rcode.NOTIMP),
], ids=lambda modes: "-".join(dns.rcode.to_text(mode) if isinstance(mode, int) else mode for mode in modes))
def test_when_no_upstream_answers_done_gets_none_and_a_problem_naming_each(lab, modes):
    servers = [lab.rcode(mode) if isinstance(mode, int) else lab.upstream(mode) for mode in modes]
    forwarder = lab.forwarder(*servers)
    outcome = ask(forwarder)
    assert outcome.reply is None
    for server in servers:
        assert server.address in outcome.problem
    assert outcome.elapsed < TIMEOUT + SLACK
    assert [upstream.queries for upstream in forwarder.upstreams] == [1, 1]


# -- UDP and TCP --


def test_a_truncated_udp_answer_is_asked_again_over_tcp(lab):
    server = lab.upstream("truncate", answer_ip=FIRST_IP)
    forwarder = lab.forwarder(server)
    outcome = ask(forwarder)
    assert addresses(outcome) == [FIRST_IP] and outcome.problem == ""
    assert not outcome.message().flags & wire.TC
    assert (len(server.queries), len(server.tcp_queries)) == (1, 1)
    assert counters(forwarder) == (1, 0, 0)  # one attempt, in two steps


@pytest.mark.parametrize(("tcp", "booked"), [("silent", (1, 1, 0)), ("reset", (1, 0, 1))])
def test_a_truncated_answer_that_tcp_cannot_complete_moves_on_to_the_next_upstream(lab, tcp, booked):
    truncating, answering = lab.upstream("truncate", tcp=tcp), lab.upstream(answer_ip=SECOND_IP)
    forwarder = lab.forwarder(truncating, answering)
    outcome = ask(forwarder)
    assert addresses(outcome) == [SECOND_IP]
    assert counters(forwarder, 0) == booked and forwarder.upstreams[0].fails == 1
    assert outcome.elapsed < TIMEOUT + SLACK


def test_a_query_that_came_by_tcp_is_forwarded_over_tcp_only(lab):
    server = lab.upstream(answer_ip=FIRST_IP)
    forwarder = lab.forwarder(server)
    outcome = ask(forwarder, tcp=True)
    assert addresses(outcome) == [FIRST_IP]
    assert outcome.message().id == 0x4242  # over TCP the query goes as it came
    assert (len(server.queries), len(server.tcp_queries)) == (0, 1)
    assert [arrival.tcp for arrival in server.arrivals] == [True]
    assert counters(forwarder) == (1, 0, 0)


def test_tcp_queries_fail_over_too(lab):
    silent = lab.upstream("answer", tcp="silent")
    answering = lab.upstream(answer_ip=SECOND_IP)
    forwarder = lab.forwarder(silent, answering)
    outcome = ask(forwarder, tcp=True)
    assert addresses(outcome) == [SECOND_IP]
    assert [len(server.queries) for server in (silent, answering)] == [0, 0]
    assert [len(server.tcp_queries) for server in (silent, answering)] == [1, 1]
    assert counters(forwarder, 0) == (1, 1, 0)


# -- what is no answer --


def test_datagrams_that_answer_nothing_asked_are_passed_over_for_the_answer_and_a_repeat_of_it_too(lab):
    server = lab.upstream("answer", kind=NoisyUpstream, answer_ip=FIRST_IP)
    forwarder = lab.forwarder(server)
    outcome = ask(forwarder)  # done called once: the second copy of the answer finds nobody waiting
    assert addresses(outcome) == [FIRST_IP] and asked_name(outcome) == NAME
    assert counters(forwarder) == (1, 0, 0)


@pytest.mark.parametrize("mode", ["garbage", "wrong-id", "wrong-question"])
def test_an_upstream_that_sends_only_what_answers_nothing_times_out(lab, mode):
    server = lab.upstream(mode)
    forwarder = lab.forwarder(server, timeout=0.3)
    outcome = ask(forwarder)
    assert outcome.reply is None and "no answer in time" in outcome.problem
    assert len(server.queries) == 1
    assert 0.2 < outcome.elapsed < 0.3 + SLACK
    assert counters(forwarder) == (1, 1, 0)


def test_a_malformed_answer_is_a_failure(lab):
    malformed, answering = lab.upstream("malformed"), lab.upstream(answer_ip=SECOND_IP)
    forwarder = lab.forwarder(malformed, answering, timeout=0.6)
    outcome = ask(forwarder)
    assert addresses(outcome) == [SECOND_IP]
    assert answering.arrivals[0].at - malformed.arrivals[0].at < 0.25  # at once, not after its share
    assert counters(forwarder, 0) == (1, 0, 1)
    assert forwarder.upstreams[0].fails == 1  # as good as no answer, unlike a refusal


def test_a_malformed_answer_alone_is_no_answer(lab):
    forwarder = lab.forwarder(lab.upstream("malformed"))
    outcome = ask(forwarder)
    assert outcome.reply is None and "malformed" in outcome.problem


# -- health --


def test_an_upstream_that_leaves_max_fails_queries_unanswered_is_skipped_until_a_probe_gets_an_answer(
        lab, probe_first):
    probe_first(0.05)
    flaky, steady = lab.upstream("silent", answer_ip=FIRST_IP), lab.upstream(answer_ip=SECOND_IP)
    forwarder = lab.forwarder(flaky, steady, timeout=0.3, max_fails=2)
    first = forwarder.upstreams[0]
    assert addresses(ask(forwarder, "one.example.com.")) == [SECOND_IP]
    assert first.fails == 1 and not first.down
    assert addresses(ask(forwarder, "two.example.com.")) == [SECOND_IP]
    assert first.down
    # Skipped: the answer comes from the second at once, and the first is not asked.
    skipped = ask(forwarder, "three.example.com.")
    assert addresses(skipped) == [SECOND_IP] and skipped.elapsed < 0.15
    assert first.queries == 2
    assert [arrival.name for arrival in flaky.arrivals if arrival.name != "."] == [
        "one.example.com.", "two.example.com."]
    flaky.mode = "answer"
    eventually(lambda: not first.down)
    assert flaky.probes()
    assert first.fails == 0
    assert addresses(ask(forwarder, "four.example.com.")) == [FIRST_IP]
    assert first.queries == 3


def test_with_every_upstream_down_done_comes_at_once(lab, probe_first):
    probe_first(30)  # no probe in this test
    forwarder = lab.forwarder(lab.upstream("silent"), timeout=0.3, max_fails=1)
    ask(forwarder)
    assert forwarder.upstreams[0].down
    outcome = submit(forwarder)
    assert len(outcome.calls) == 1  # before submit returned
    assert outcome.reply is None and "down" in outcome.problem
    assert forwarder.in_flight == 0 and forwarder.upstreams[0].queries == 1


def test_max_fails_zero_never_takes_an_upstream_down(lab):
    forwarder = lab.forwarder(lab.upstream("silent"), timeout=0.15, max_fails=0)
    for _ in range(3):
        ask(forwarder)
    assert forwarder.upstreams[0].fails == 3 and not forwarder.upstreams[0].down
    assert forwarder.upstreams[0]._probe is None


# -- counters --


def test_each_outcome_is_booked_in_the_upstreams_counters(lab):
    server = lab.upstream("answer")
    forwarder = lab.forwarder(server, timeout=0.3, max_fails=0)
    upstream = forwarder.upstreams[0]
    steps = [  # mode, then (queries, timeouts, errors, fails in a row)
        ("answer", (1, 0, 0, 0)),
        ("silent", (2, 1, 0, 1)),
        ("malformed", (3, 1, 1, 2)),
        ("formerr", (4, 1, 2, 0)),
        ("garbage", (5, 2, 2, 1)),
        ("answer", (6, 2, 2, 0)),
    ]
    for mode, expected in steps:
        server.mode = mode
        ask(forwarder)  # and in_flight is back to 0
        assert (upstream.queries, upstream.timeouts, upstream.errors, upstream.fails) == expected, mode


def test_in_flight_counts_each_exchange_until_its_outcome(lab):
    forwarder = lab.forwarder(lab.upstream("silent"), lab.upstream("answer"), timeout=0.3)
    outcomes = [submit(forwarder, f"host{i}.example.com.") for i in range(5)]
    assert forwarder.in_flight == 5
    for outcome in outcomes:
        outcome.wait(2)
    assert forwarder.in_flight == 0


# -- robustness --


@pytest.mark.parametrize("mode", ["answer", "formerr"])
def test_a_done_callback_that_raises_is_logged_and_the_forwarder_goes_on(lab, caplog, mode):
    server = lab.upstream(mode)
    forwarder = lab.forwarder(server)
    called = gevent.event.AsyncResult()

    def done(_query, reply, problem):
        called.set((reply, problem))
        raise RuntimeError("a bug in the caller")

    with caplog.at_level(logging.ERROR, logger="dnscock.upstream"):
        forwarder.submit(forwarded(query()), done)
        called.get(timeout=TIMEOUT + 2)
        eventually(lambda: any(record.levelno == logging.ERROR for record in caplog.records))
    failures = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert [record.getMessage() for record in failures] == ["failed to deliver a forwarded answer"]
    assert failures[0].exc_info[0] is RuntimeError
    assert forwarder.in_flight == 0
    server.mode = "answer"
    assert ask(forwarder).problem == ""


def test_close_stops_the_sweeper_and_closes_the_sockets(lab):
    forwarder = lab.forwarder(lab.upstream("silent"), lab.upstream("silent"))
    submit(forwarder)
    sweeper, channel = forwarder._sweeper, forwarder.upstreams[0]._udp
    assert sweeper is not None and sweeper.active and channel is not None
    forwarder.close()
    assert forwarder._sweeper is None and not sweeper.active
    assert forwarder.upstreams[0]._udp is None and forwarder.upstreams[1]._udp is None
    assert channel._socket.fileno() == -1 and not channel._watcher.active
    gevent.sleep(0.05)  # a while for anything to start a sweeper again: nothing may
    assert forwarder._sweeper is None


def test_close_stops_a_waiting_probe(lab, probe_first):
    probe_first(30)
    forwarder = lab.forwarder(lab.upstream("silent"), timeout=0.2, max_fails=1)
    ask(forwarder)
    probe = forwarder.upstreams[0]._probe
    assert probe is not None and not probe.dead
    forwarder.close()
    eventually(lambda: probe.dead)  # killed without blocking: it dies when the loop runs
    assert forwarder.upstreams[0]._udp is None


def test_close_while_a_probe_waits_for_its_answer_leaves_no_socket_open(lab, probe_first):
    probe_first(0.01)
    server = lab.upstream("silent")
    forwarder = lab.forwarder(server, timeout=0.3, max_fails=1)
    ask(forwarder)
    eventually(lambda: bool(server.probes()))  # the probe now waits for its answer
    upstream = forwarder.upstreams[0]
    forwarder.close()
    eventually(lambda: upstream._probe.dead)  # killed without blocking: it dies when the loop runs
    assert upstream._udp is None  # the lab's teardown closes it again, should it be there


def test_close_while_a_tcp_retry_runs_leaves_no_socket_open(lab):
    truncating = lab.upstream("truncate", tcp="silent")
    forwarder = lab.forwarder(truncating, lab.upstream("answer"), timeout=0.3)
    submit(forwarder)
    eventually(lambda: bool(truncating.tcp_queries))  # the retry now waits for its TCP answer
    forwarder.close()
    gevent.sleep(0.3)  # its share (0.15 s) runs out meanwhile: nothing may open a socket again then
    assert [upstream._udp for upstream in forwarder.upstreams] == [None, None]
