"""What the fuzz tests and ``scripts/fuzz.py`` run cases against, and the invariants they check.

* ``InProcessTarget``: a ``Pipeline`` with a ``RecordStore`` holding a few
  dozen records (synced) and a real ``Forwarder`` pointed at ``FuzzUpstream``,
  a fake nameserver served by threads in the same process. ``run(cases)``
  calls ``Pipeline.handle(data, tcp, respond, client)`` for each case and
  waits for the replies that must come.
* ``LiveTarget``: the UDP and TCP servers of a ``python -m dnscock``
  subprocess (with ``FuzzEngine`` for its local names and a
  ``FuzzUpstream`` upstream);
  ``udp_batch``/``tcp_batch``/``tcp_raw`` send a batch of cases, and
  ``probe`` checks that a valid local and a valid forwarded query still get
  their answers.
* ``check_outcome``: the invariants, for every case:

  - no exception escapes ``handle`` (and nothing is logged at ERROR by a
    ``dnscock`` logger: ``ErrorLogCatcher``);
  - ``respond`` is called at most once, and exactly once for a message of
    at least a header (12 octets) with QR clear; never for a response (QR
    set) nor for fewer than 12 octets; ``handle`` returns whether a reply
    comes;
  - a reply parses with dnspython, carries the query's id and QR, and fits
    the client's limit: 512 octets over UDP without EDNS0, else
    min(client's EDNS0 payload (at least 512), 1232); 65535 over TCP, where
    it is never truncated (TC);
  - a well-formed query (``FuzzCase.valid``) is never answered FORMERR and
    gets its question back byte for byte (the name as asked, case and all);
    in-process, SERVFAIL only when the fake upstream was told to fail; but
    a well-formed message with an opcode other than QUERY gets NOTIMP as a
    bare header, with no flags but QR and the opcode (genreport's opcode
    and opcodeflg tests).

``$DNSCOCK_FUZZ_IGNORE`` (signature prefixes, separated by ``|``) leaves
known problems out, to look past a bug while its fix is pending:
``DNSCOCK_FUZZ_IGNORE="FORMERR to a well-formed|exception escaped"``.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import struct
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import gevent
import gevent.event
import pytest

from dnscock.app import build_pipeline
from dnscock.config import load_config
from dnscock.records import Record, RecordStore
from dnscock.pipeline import Pipeline
from dnscock.upstream import Forwarder
from tests.fuzz.strategies import FuzzCase
from tests.support.fake_engine import FakeEngineProcess
from tests.support.fake_upstream import ThreadedNameserver

log = logging.getLogger("tests.fuzz.harness")

HEADER_LENGTH = 12
CLASSIC_UDP_LIMIT = 512
SERVER_UDP_PAYLOAD = 1232  # dnscock's -udp-payload default
TCP_LIMIT = 65535
TYPE_OPT = 41
QR_BYTE = 0x80  # in the message's third octet
FORMERR, SERVFAIL, NOTIMP, REFUSED = 1, 2, 4, 5
OPCODE_BITS = 0x78  # in the third octet of a header
# First labels for which the fake upstream fails on purpose (so SERVFAIL is right).
FAILING_MODES = (b"drop", b"servfail", b"refused")

# The fake engine's containers (tests/support/fake_engine): c00001..c00040 over images img0001..img0005.
ENGINE_CONTAINERS = 40
ENGINE_IMAGES = 5


# -- reading messages, independently of dnscock --


def _skip_name(message: bytes, offset: int) -> int:
    """Offset past the name at ``offset``; a pointer ends it. As lenient as dnslib about label lengths."""
    while True:
        length = message[offset]
        if length == 0:
            return offset + 1
        if length & 0xC0 == 0xC0:
            if offset + 2 > len(message):
                raise IndexError("pointer cut short")
            return offset + 2
        offset += 1 + length


def opt_payload(message: bytes) -> int | None:
    """The UDP payload size of the first OPT record in the additional section; None without one.

    Generous on purpose: it reads past anything dnslib might, so that the
    limit it gives is never below the one dnscock may use.
    """
    try:
        qdcount, ancount, nscount, arcount = struct.unpack_from("!HHHH", message, 4)
        offset = HEADER_LENGTH
        for _ in range(qdcount):
            offset = _skip_name(message, offset) + 4
        for _ in range(ancount + nscount):
            offset = _skip_name(message, offset)
            offset += 10 + struct.unpack_from("!H", message, offset + 8)[0]
        for _ in range(arcount):
            offset = _skip_name(message, offset)
            rtype, rclass = struct.unpack_from("!HH", message, offset)
            if rtype == TYPE_OPT:
                return rclass
            offset += 10 + struct.unpack_from("!H", message, offset + 8)[0]
    except (struct.error, IndexError):
        return None
    return None


def reply_limit(query: bytes, tcp: bool, server_payload: int = SERVER_UDP_PAYLOAD) -> int:
    """The most octets a reply to ``query`` may have (RFC 1035 §4.2.1, RFC 6891 §6.2.5)."""
    if tcp:
        return TCP_LIMIT
    payload = opt_payload(query)
    if payload is None:
        return CLASSIC_UDP_LIMIT
    return max(CLASSIC_UDP_LIMIT, min(payload, server_payload))


def expects_reply(message: bytes) -> bool:
    """Does ``message`` call for exactly one reply? A whole header with QR clear does; nothing else."""
    return len(message) >= HEADER_LENGTH and not message[2] & QR_BYTE


def plain_question_end(message: bytes) -> int | None:
    """Offset past the first question when its name is plain labels (no pointer), else None."""
    if len(message) < HEADER_LENGTH or struct.unpack_from("!H", message, 4)[0] < 1:
        return None
    offset = HEADER_LENGTH
    while offset < len(message):
        length = message[offset]
        if length == 0:
            end = offset + 5
            return end if end <= len(message) else None
        if length > 63:
            return None
        offset += 1 + length
    return None


def first_label(message: bytes) -> bytes:
    """The question's first label, lower case (b"" for the root or anything unreadable)."""
    if len(message) <= HEADER_LENGTH:
        return b""
    length = message[HEADER_LENGTH]
    if length > 63:
        return b""
    return message[HEADER_LENGTH + 1:HEADER_LENGTH + 1 + length].lower()


def question_labels(message: bytes) -> list[bytes] | None:
    end = plain_question_end(message)
    if end is None:
        return None
    labels, offset = [], HEADER_LENGTH
    while message[offset]:
        labels.append(message[offset + 1:offset + 1 + message[offset]].lower())
        offset += 1 + message[offset]
    return labels


def parse_reply(reply: bytes) -> dns.message.Message:
    """``dns.message.from_wire``, tolerant of what dnspython reads differently from other replies.

    dnspython reads an UPDATE message (opcode 5) as zone/prerequisite/update
    sections and wants an SOA question; a NOTIMP reply to an UPDATE echoes
    whatever was asked, so it is read as if it were a plain query's reply.
    """
    try:
        return dns.message.from_wire(reply)
    except dns.exception.FormError:
        if len(reply) < HEADER_LENGTH or (reply[2] >> 3) & 0xF != 5:
            raise
        return dns.message.from_wire(reply[:2] + bytes([reply[2] & 0x87]) + reply[3:])


# -- outcomes and invariants --


class Problem(NamedTuple):
    """One broken invariant: a short signature (for counting) and the details."""

    signature: str
    detail: str


@dataclass(slots=True)
class Outcome:
    """What one case got."""

    case: FuzzCase
    replies: list[bytes] = field(default_factory=list)
    returned: bool | None = None  # what handle() returned (None: a live server, nothing returned)
    error: str = ""  # the traceback of an exception that escaped handle()
    error_where: str = ""
    done: gevent.event.Event | None = None

    def respond(self, data: bytes) -> None:
        self.replies.append(bytes(data))
        if self.done is not None:
            self.done.set()


def _where(error: BaseException) -> str:
    """``Type at file:line (function)`` of the innermost frame in dnscock (else the innermost)."""
    frames = traceback.extract_tb(error.__traceback__)
    ours = [frame for frame in frames if f"{os.sep}dnscock{os.sep}" in frame.filename] or frames
    frame = ours[-1] if ours else None
    place = f"{Path(frame.filename).name}:{frame.lineno} ({frame.name})" if frame else "?"
    return f"{type(error).__name__} at {place}"


def describe(case: FuzzCase) -> str:
    return f"{'tcp' if case.tcp else 'udp'} {case.kind} query {case.data.hex()}"


IGNORED = tuple(prefix for prefix in os.environ.get("DNSCOCK_FUZZ_IGNORE", "").split("|") if prefix)


def check_outcome(outcome: Outcome, *, strict_servfail: bool = False) -> list[Problem]:
    """Every invariant that ``outcome`` breaks (an empty list when it is fine)."""
    problems = _check_outcome(outcome, strict_servfail=strict_servfail)
    if IGNORED:
        problems = [problem for problem in problems if not problem.signature.startswith(IGNORED)]
    return problems


def assert_no_problems(problems: Sequence[Problem], when: str = "") -> None:
    """Fails the test, showing the first five problems, if there is any (``when``: "after a UDP batch", say)."""
    if problems:
        lines = [f"{len(problems)} broken invariant(s){f' {when}' if when else ''}:"]
        for problem in problems[:5]:
            lines += [f"- {problem.signature}", f"  {problem.detail[:3000]}"]
        pytest.fail("\n".join(lines), pytrace=False)


def _check_outcome(outcome: Outcome, *, strict_servfail: bool) -> list[Problem]:
    case = outcome.case
    problems: list[Problem] = []
    if outcome.error:
        problems.append(Problem(f"exception escaped handle: {outcome.error_where}",
                                f"{describe(case)}\n{outcome.error}"))
        return problems
    expected = expects_reply(case.data)
    count = len(outcome.replies)
    if count > 1:
        problems.append(Problem("respond called more than once", f"{describe(case)}: {count} replies"))
    if outcome.returned is not None and outcome.returned != expected:
        problems.append(Problem(f"handle returned {outcome.returned} for a message that "
                                f"{'needs' if expected else 'gets no'} reply", describe(case)))
    if expected and not count:
        problems.append(Problem("no reply to a query", describe(case)))
    if not expected and count:
        what = "a response (QR set)" if len(case.data) >= HEADER_LENGTH else "a message shorter than a header"
        problems.append(Problem(f"a reply to {what}", f"{describe(case)}: reply {outcome.replies[0].hex()}"))
        return problems
    for reply in outcome.replies:
        problems += check_reply(case, reply, strict_servfail=strict_servfail)
    return problems


def _rcode_text(reply: bytes) -> str:
    return dns.rcode.to_text(reply[3] & 0xF) if len(reply) >= 4 else "?"


def _utf8_labels(query: bytes) -> bool:
    try:
        for label in question_labels(query) or ():
            label.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def check_reply(case: FuzzCase, reply: bytes, *, strict_servfail: bool = False) -> list[Problem]:
    problems: list[Problem] = []
    query = case.data
    transport = "tcp" if case.tcp else "udp"

    def problem(signature: str) -> None:
        shown = reply.hex() if len(reply) <= 400 else f"{reply[:400].hex()}... ({len(reply)} bytes)"
        problems.append(Problem(signature, f"{describe(case)}: reply {shown}"))

    try:
        message: dns.message.Message | None = parse_reply(reply)
    except Exception as error:  # dnspython raises many kinds
        message = None
        problem(f"reply does not parse: {type(error).__name__} ({_rcode_text(reply)})")
    if len(reply) < HEADER_LENGTH:
        problem("reply shorter than a header")
        return problems
    if reply[:2] != query[:2]:
        problem("reply id differs from the query's")
    if not reply[2] & QR_BYTE:
        problem("reply without QR")
    limit = reply_limit(query, case.tcp)
    if len(reply) > limit:
        problem(f"reply over the client's limit ({transport}, {_rcode_text(reply)}, "
                f"{'query over the limit too' if len(query) > limit else 'query within it'})")
    if case.tcp and reply[2] & 0x02:  # the client came by TCP already: it has nowhere to go
        problem(f"TC set on a reply over TCP ({'TC' if query[2] & 0x02 else 'no TC'} in the query)")
    if case.valid and query[2] & OPCODE_BITS and reply[3] & 0xF != REFUSED:  # a stranger is refused first
        bare = reply[2:4] == bytes([QR_BYTE | query[2] & OPCODE_BITS, NOTIMP]) and reply[4:HEADER_LENGTH] == bytes(8)
        if not bare:
            problem("another opcode not answered by a bare NOTIMP header")
    elif case.valid:
        rcode = message.rcode() if message is not None else reply[3] & 0xF
        if rcode == FORMERR:
            problem(f"FORMERR to a well-formed query ({'UTF-8' if _utf8_labels(query) else 'non-UTF-8'} labels)")
        end = plain_question_end(query)
        assert end is not None, "a valid case has a plain question"
        echoed = struct.unpack_from("!H", reply, 4)[0] == 1 and reply[HEADER_LENGTH:end] == query[HEADER_LENGTH:end]
        if not echoed and rcode != FORMERR:  # a FORMERR is counted once, above
            problem("question not echoed as asked")
        if strict_servfail and rcode == SERVFAIL and not first_label(query).startswith(FAILING_MODES):
            problem("SERVFAIL to a query the upstream answers")
    return problems


class ErrorLogCatcher(logging.Handler):
    """Keeps what the ``dnscock`` loggers log at ERROR and above (log.exception included)."""

    def __init__(self, logger: str = "dnscock") -> None:
        super().__init__(logging.ERROR)
        self.logger = logging.getLogger(logger)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def __enter__(self) -> ErrorLogCatcher:
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.logger.removeHandler(self)

    def take(self) -> list[Problem]:
        records, self.records = self.records, []
        problems = []
        for record in records:
            text = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                signature = f"{record.levelname} logged by {record.name}: {_where(record.exc_info[1])}"
                text += "\n" + "".join(traceback.format_exception(*record.exc_info))
            else:
                signature = f"{record.levelname} logged by {record.name}: {record.msg}"
            problems.append(Problem(signature, text))
        return problems


# -- a fake upstream in the same process --


def _a_record(ttl: int, index: int) -> bytes:
    return b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, ttl, 4) + bytes((192, 0, 2 + index // 250, index % 250 + 1))


def _soa(minimum: int) -> bytes:
    rdata = b"\x02ns\xc0\x0c\x00" + struct.pack("!IIIII", 1, 3600, 600, 86400, minimum)
    return b"\xc0\x0c" + struct.pack("!HHIH", 6, 1, 300, len(rdata)) + rdata


def upstream_answers(query: bytes, tcp: bool) -> list[bytes]:
    """What the fake upstream sends back for ``query``: the reply last, maybe noise before it.

    The question's first label picks the behaviour: ``drop`` (nothing),
    ``servfail``, ``refused``, ``nx`` (NXDOMAIN with an SOA), ``nodata``,
    ``big`` (60 A records), ``huge`` (250), ``tc`` (TC over UDP, the answer
    over TCP), ``noise`` (junk, a reply under another id, one to another
    question and a copy without QR before the reply), ``cookie`` (an EDNS
    cookie in the reply), ``ttl0``, ``cname``; anything else gets one A (or
    AAAA) record with TTL 60, or an empty NOERROR.
    """
    if len(query) < HEADER_LENGTH or query[2] & QR_BYTE:
        return []
    flags, qdcount = struct.unpack_from("!HH", query, 2)
    end = plain_question_end(query)
    if end is None or qdcount != 1:
        return [_parsed_answer(query)]
    first = first_label(query)
    if first.startswith(b"drop"):
        return []
    qtype = struct.unpack_from("!H", query, end - 4)[0]
    edns = opt_payload(query) is not None
    rcode, answers, authority, truncated = 0, [], [], False
    if first.startswith(b"servfail"):
        rcode = 2
    elif first.startswith(b"refused"):
        rcode = 5
    elif first.startswith(b"nx"):
        rcode, authority = 3, [_soa(60)]
    elif first.startswith(b"nodata"):
        authority = [_soa(30)]
    elif first.startswith(b"tc") and not tcp:
        truncated = True
    elif first.startswith(b"big"):
        answers = [_a_record(60, i) for i in range(60)]
    elif first.startswith(b"huge"):
        answers = [_a_record(60, i) for i in range(250)]
    elif first.startswith(b"cname"):
        target = b"\x03www\x07example\x03com\x00"
        answers = [b"\xc0\x0c" + struct.pack("!HHIH", 5, 1, 30, len(target)) + target]
    elif qtype in (1, 255):
        answers = [_a_record(0 if first.startswith(b"ttl0") else 60, 0)]
    elif qtype == 28:
        answers = [b"\xc0\x0c" + struct.pack("!HHIH", 28, 1, 60, 16) + bytes.fromhex("20010db8" + "0" * 23 + "1")]
    opt = b""
    if edns:
        options = struct.pack("!HH", 10, 16) + b"\x11" * 16 if first.startswith(b"cookie") else b""
        opt = b"\x00" + struct.pack("!HHIH", TYPE_OPT, 1232, 0, len(options)) + options
    reply_flags = 0x8000 | flags & 0x7910 | 0x0080 | rcode | (0x0200 if truncated else 0)  # opcode, RD, CD kept
    head = struct.pack("!2sHHHHH", query[:2], reply_flags, 1, len(answers), len(authority), 1 if opt else 0)
    reply = head + query[HEADER_LENGTH:end] + b"".join(answers) + b"".join(authority) + opt
    if first.startswith(b"noise"):
        other_id = struct.pack("!H", struct.unpack_from("!H", query)[0] ^ 0x5A5A)
        other_question = head + b"\x05other\x00" + query[end - 4:end]
        return [b"\x00\x01junk", other_id + reply[2:], other_question, reply[:2] + bytes([reply[2] & 0x7F]) + reply[3:],
                reply]
    return [reply]


def _parsed_answer(query: bytes) -> bytes:
    """A reply made by dnspython for a query too odd to answer by hand; FORMERR when it cannot parse it."""
    try:
        message = dns.message.from_wire(query)
        return dns.message.make_response(message).to_wire()
    except Exception:
        return struct.pack("!2sHHHHH", query[:2], 0x8081, 0, 0, 0, 0)


class FuzzUpstream(ThreadedNameserver):
    """A nameserver on 127.0.0.1 (UDP and TCP, one port, in threads) answering by ``upstream_answers``.

    ``FakeUpstream`` answers through dnspython and drops what it cannot parse, so every
    odd forwarded query would cost dnscock a timeout; this one answers them all by hand.
    Over TCP only the reply goes back, without the noise before it.
    """

    connection_timeout = 10.0

    def answer(self, data: bytes, tcp: bool) -> list[bytes]:
        replies = upstream_answers(data, tcp)
        return replies[-1:] if tcp else replies


# -- the resolver in-process --


def fuzz_records() -> list[Record]:
    """A store's worth of records: the fake engine's names, plus a few odd ones made by hand."""
    records = [
        Record("1" * 64, "r1", ("r1", "redis"), aliases=("r1.example.com",), ipv4=("10.0.0.1",), ttl=5,
               ports=((80, "tcp"),), image="redis"),
        Record("2" * 64, "web", ("web",), ipv6=("fd00::1",), extra_names=(("web", "prod"),),
               metadata=(("compose_project", "prod"), ("compose_service", "web"))),
        Record("3" * 64, "gone", ("gone", "redis"), stopped=True, ttl=0),
        Record("4" * 64, "bare", ()),
        Record("5" * 64, "a", ("a",), ipv4=("10.0.0.5",), ipv6=("fd00::5",), ports=((53, "udp"), (53, "tcp"))),
    ]
    for index in range(1, ENGINE_CONTAINERS + 1):
        image = f"img{(index - 1) % ENGINE_IMAGES + 1:04d}"
        second, rest = divmod(index - 1, 256 * 253)
        third, fourth = divmod(rest, 253)
        records.append(Record(
            f"{index:064x}", f"c{index:05d}", (f"c{index:05d}", image),
            aliases=(f"alias{index}.example.test",) if index % 10 == 0 else (),
            ipv4=(f"10.{second}.{third}.{fourth + 2}",),
            ipv6=(f"fd00::{index:x}",) if index % 3 == 0 else (),
            ports=((6379, "tcp"),) if index % 5 == 0 else (),
            image=f"{image}:latest",
            metadata=(("compose_project", "fuzz"), ("compose_service", image)),
        ))
    return records


class InProcessTarget:
    """``Pipeline.handle`` with a synced store and a real forwarder to a ``FuzzUpstream``."""

    def __init__(self, *args: str, timeout: float = 1.0, hang_margin: float = 4.0) -> None:
        self.upstream = FuzzUpstream()
        # -max-fails=0: an upstream that was told to drop a query is not skipped afterwards.
        argv = [f"-nameserver={self.upstream.address}", f"-timeout={timeout}", "-max-fails=0", *args]
        self.config = load_config(argv, {})
        self.store = RecordStore()
        self.store.replace_all(fuzz_records())
        self.forwarder = Forwarder(self.config.nameservers, self.config.timeout, self.config.max_fails)
        self.hang_margin = hang_margin
        self.errors = ErrorLogCatcher().__enter__()
        self.resolver = self.new_resolver()

    def new_resolver(self) -> Pipeline:
        """A resolver with empty caches (sharing the store, forwarder and upstream)."""
        self.resolver = build_pipeline(self.config, self.store, self.forwarder)
        return self.resolver

    def submit(self, cases: Iterable[FuzzCase]) -> list[Outcome]:
        """Hands every case to ``handle``; the replies that must wait come later (see ``wait``)."""
        outcomes = []
        handle = self.resolver.handle
        for case in cases:
            outcome = Outcome(case)
            try:
                outcome.returned = handle(case.data, case.tcp, outcome.respond, case.client)
            except Exception as error:
                outcome.error = traceback.format_exc()
                outcome.error_where = _where(error)
            outcomes.append(outcome)
        return outcomes

    def run(self, cases: Iterable[FuzzCase]) -> list[Outcome]:
        """Hands every case to ``handle`` at once, then waits for the replies that must come."""
        outcomes = self.submit(cases)
        self.wait(outcomes)
        return outcomes

    def wait(self, outcomes: Sequence[Outcome]) -> None:
        """Waits until each outcome that ``handle`` promised a reply has one (a hang: the forward timeout and more)."""
        deadline = time.monotonic() + self.config.timeout + self.hang_margin
        for outcome in outcomes:
            if outcome.returned and not outcome.replies:
                outcome.done = gevent.event.Event()
                outcome.done.wait(max(0.0, deadline - time.monotonic()))
        gevent.sleep(0)  # let whatever else is due (a second reply, say) happen now,
        gevent.sleep(0)  # and what that in turn made due

    def run_one(self, case: FuzzCase) -> tuple[Outcome, list[Problem]]:
        """One case, checked; ERROR logs during it count as its problems."""
        outcome = self.run([case])[0]
        return outcome, check_outcome(outcome, strict_servfail=True) + self.errors.take()

    def close(self) -> None:
        self.errors.__exit__(None, None, None)
        self.forwarder.close()
        self.upstream.close()


# -- the live servers --


class FuzzEngine(FakeEngineProcess):
    """The fake engine in a subprocess, on a unix socket in a short folder of its own (paths are limited to 108
    bytes), which ``stop()`` removes."""

    def __init__(self, containers: int = ENGINE_CONTAINERS, images: int = ENGINE_IMAGES) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="dnscock-fuzz-"))
        try:
            super().__init__(self.directory / "docker.sock", containers, "--images", str(images))
        except BaseException:
            shutil.rmtree(self.directory, ignore_errors=True)
            raise

    def stop(self) -> int:
        try:
            return super().stop()
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)


LIVE_ARGS = ("-timeout=0.3", "-max-fails=0", "-tcp-idle-timeout=5")
LOCAL_PROBE = ("c00001.img0001.docker.", "10.0.0.2")
FORWARD_PROBE = ("probe.example.com.", "192.0.2.1")  # what upstream_answers says
_ERROR_LINE = (" ERROR ", " CRITICAL ", "Traceback (most recent call last)")


class LiveTarget:
    """A running dnscock: batches of cases over UDP and TCP, probes, its log."""

    def __init__(self, host: str, port: int, log_lines: Callable[[], list[str]] | None = None,
                 alive: Callable[[], bool] | None = None, reply_timeout: float = 5.0) -> None:
        self.host, self.port = host, port
        self.family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.log_lines = log_lines
        self.alive = alive
        self.reply_timeout = reply_timeout
        self._log_seen = 0

    @classmethod
    def of(cls, process) -> LiveTarget:
        """For a ``tests.support.dnscock_process.DnscockProcess``."""
        return cls(process.host, process.port, log_lines=lambda: process.lines,
                   alive=lambda: process.process.poll() is None)

    # -- batches --

    @staticmethod
    def _numbered(cases: Sequence[FuzzCase]) -> list[FuzzCase]:
        """The cases under ids 1..n, so that each reply names its query."""
        return [case.with_id(i + 1) for i, case in enumerate(cases)]

    def udp_batch(self, cases: Sequence[FuzzCase]) -> tuple[list[Outcome], list[Problem]]:
        """Sends every case as a datagram, then a probe; reads replies until every query has its own."""
        cases = self._numbered(cases)
        outcomes = [Outcome(case) for case in cases]
        by_id = {struct.unpack_from("!H", o.case.data)[0]: o for o in outcomes if len(o.case.data) >= 2}
        problems: list[Problem] = []
        probe = dns.message.make_query(LOCAL_PROBE[0], "A")
        probe.id = 0xFFF0
        with socket.socket(self.family, socket.SOCK_DGRAM) as sock:
            sock.connect((self.host, self.port))
            for outcome in outcomes:
                sock.send(outcome.case.data)
            sock.send(probe.to_wire())
            waiting = {i for i, o in by_id.items() if expects_reply(o.case.data)} | {probe.id}
            deadline = time.monotonic() + self.reply_timeout
            while waiting:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                sock.settimeout(remaining)
                try:
                    reply = sock.recv(65535)
                except TimeoutError:
                    break
                except ConnectionRefusedError:
                    problems.append(Problem("live UDP server gone (port unreachable)", ""))
                    break
                if len(reply) < 2:
                    problems.append(Problem("live UDP reply shorter than an id", reply.hex()))
                    continue
                message_id = struct.unpack_from("!H", reply)[0]
                waiting.discard(message_id)
                if message_id == probe.id:
                    problems += _check_probe(reply, probe, LOCAL_PROBE[1], "udp")
                elif message_id in by_id:
                    by_id[message_id].replies.append(reply)
                else:
                    problems.append(Problem("live UDP reply with an id no query had", reply.hex()))
        return outcomes, problems

    def tcp_batch(self, cases: Sequence[FuzzCase]) -> tuple[list[Outcome], list[Problem]]:
        """Sends the cases framed on one connection, half-closes, reads replies until the server closes.

        A message shorter than a header ends the stream (RFC 7766 leaves the
        server nothing to answer): cases after it are not sent.
        """
        cases = self._numbered(cases)
        outcomes: list[Outcome] = []
        for case in cases:
            outcomes.append(Outcome(case))
            if len(case.data) < HEADER_LENGTH:
                break
        stream = b"".join(len(o.case.data).to_bytes(2, "big") + o.case.data for o in outcomes)
        frames, problems = self._tcp_exchange(stream)
        by_id = {struct.unpack_from("!H", o.case.data)[0]: o for o in outcomes if len(o.case.data) >= 2}
        for frame in frames:
            outcome = by_id.get(struct.unpack_from("!H", frame)[0]) if len(frame) >= 2 else None
            if outcome is None:
                problems.append(Problem("live TCP reply with an id no query had", frame.hex()))
            else:
                outcome.replies.append(frame)
        return outcomes, problems

    def tcp_raw(self, stream: bytes) -> list[Problem]:
        """Sends raw bytes (framing and all garbage) on one connection; any reply must still be a reply."""
        frames, problems = self._tcp_exchange(stream)
        for frame in frames:
            try:
                parse_reply(frame)
            except Exception as error:
                problems.append(Problem(f"reply does not parse: {type(error).__name__}",
                                        f"tcp raw stream {stream.hex()}: reply {frame.hex()}"))
            if len(frame) >= 3 and not frame[2] & QR_BYTE:
                problems.append(Problem("reply without QR", f"tcp raw stream {stream.hex()}: reply {frame.hex()}"))
        return problems

    def _tcp_exchange(self, stream: bytes) -> tuple[list[bytes], list[Problem]]:
        problems: list[Problem] = []
        received = bytearray()
        try:
            with socket.create_connection((self.host, self.port), timeout=self.reply_timeout) as conn:
                conn.sendall(stream)
                conn.shutdown(socket.SHUT_WR)
                while True:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    received += chunk
        except TimeoutError:
            problems.append(Problem("live TCP server did not close a half-closed connection in time",
                                    f"stream {stream[:2000].hex()}"))
        except ConnectionResetError:
            pass  # the server may close with our unread bytes still queued
        except OSError as error:
            if error.errno != errno.ENOTCONN:  # ENOTCONN: it closed so before our shutdown(SHUT_WR)
                problems.append(Problem(f"live TCP connection failed: {type(error).__name__}", str(error)))
        frames, offset = [], 0
        while offset + 2 <= len(received):
            length = int.from_bytes(received[offset:offset + 2], "big")
            if offset + 2 + length > len(received):
                problems.append(Problem("live TCP reply cut short", bytes(received[offset:]).hex()))
                break
            frames.append(bytes(received[offset + 2:offset + 2 + length]))
            offset += 2 + length
        return frames, problems

    # -- health --

    def probe(self) -> list[Problem]:
        """A valid local and a valid forwarded query (UDP and TCP) must get their answers."""
        problems = []
        for name, address in (LOCAL_PROBE, FORWARD_PROBE):
            for tcp in (False, True):
                query = dns.message.make_query(name, "A")
                ask = dns.query.tcp if tcp else dns.query.udp
                try:
                    reply = ask(query, self.host, port=self.port, timeout=self.reply_timeout)
                except Exception as error:
                    transport = "tcp" if tcp else "udp"
                    problems.append(Problem("live server stopped answering a valid query",
                                            f"{name} A over {transport}: {type(error).__name__}: {error}"))
                    continue
                problems += _check_probe(reply.to_wire(), query, address, "tcp" if tcp else "udp")
        if self.alive is not None and not self.alive():
            problems.append(Problem("live server process exited", ""))
        return problems

    def new_log_errors(self) -> list[Problem]:
        """ERROR lines (and tracebacks) the server logged since the last call."""
        if self.log_lines is None:
            return []
        lines = list(self.log_lines())
        fresh, self._log_seen = lines[self._log_seen:], len(lines)
        problems = []
        for i, line in enumerate(fresh):
            if any(mark in line for mark in _ERROR_LINE):
                context = "\n".join(fresh[i:i + 30])
                message = line.split(": ", 1)[-1] if " ERROR " in line else line
                problems.append(Problem(f"live server logged: {message[:120]}", context))
        return problems


def _check_probe(reply: bytes, query: dns.message.Message, address: str, transport: str) -> list[Problem]:
    try:
        message = dns.message.from_wire(reply)
    except Exception as error:
        return [Problem("probe reply does not parse", f"{transport} {query.question[0]}: {error}")]
    addresses = sorted(rr.address for rrset in message.answer for rr in rrset if hasattr(rr, "address"))
    if message.id != query.id or message.rcode() != dns.rcode.NOERROR or address not in addresses:
        return [Problem("live server gave a wrong answer to a valid query",
                        f"{transport} {query.question[0]}: {dns.rcode.to_text(message.rcode())} {addresses}")]
    return []
