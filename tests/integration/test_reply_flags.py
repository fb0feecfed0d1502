"""Every combination of the query's flags, checked in every kind of reply, on a fresh cache and on a filled one.

RD, CD, Z and AD in the header, and no EDNS0, EDNS0, or EDNS0 with DO: 48
combinations, over UDP and TCP, for a local name, a negative answer, a
forwarded name and a forwarded name answered from the cache. Each is asked
on a fresh name, and on a name whose reply was just cached for the opposite
combination, so that nothing of one query may leak into the reply to the
next. What each reply must say (RFC 1035 §4.1.1, RFC 4035 §3.1.6 and §3.2,
RFC 6840 §5.7-5.9, RFC 3225 §3, RFC 6891 §7):

* QR set, opcode 0, RD and CD as the query's, Z clear, TC clear;
* local replies: AA set, RA set, AD clear (dnscock validates nothing);
* forwarded replies: the upstream's AA, RA and AD, where the upstream sets
  AD only for a query with AD or DO, as a validating resolver does;
* an OPT record exactly when the query had one, version 0, DO as the
  query's, no other EDNS flag.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import NamedTuple

import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest

from tests.support.dnscock_process import DnscockProcess
from tests.support.fake_engine import FakeEngine
from tests.support.fake_upstream import FakeUpstream

Z = 0x0040
HEADER_BITS = {"RD": dns.flags.RD, "CD": dns.flags.CD, "Z": Z, "AD": dns.flags.AD}
EDNS_KINDS = ("none", "edns", "edns+do")


class Combination(NamedTuple):
    flags: int
    edns: str

    def __str__(self) -> str:
        names = [name for name, bit in HEADER_BITS.items() if self.flags & bit] or ["-"]
        return "+".join(names) + "/" + self.edns

    def opposite(self) -> Combination:
        return Combination(self.flags ^ (dns.flags.RD | dns.flags.CD | Z | dns.flags.AD),
                           EDNS_KINDS[(EDNS_KINDS.index(self.edns) + 1) % len(EDNS_KINDS)])

    def query(self, name: str) -> dns.message.Message:
        if self.edns == "none":
            query = dns.message.make_query(name, "A", use_edns=False)
        else:
            query = dns.message.make_query(name, "A", use_edns=0, payload=1232,
                                           ednsflags=dns.flags.DO if self.edns == "edns+do" else 0)
        query.flags = self.flags
        return query


COMBINATIONS = [Combination(sum(bits), edns)
                for bits in itertools.product(*((0, bit) for bit in HEADER_BITS.values())) for edns in EDNS_KINDS]


class ResolverLikeUpstream(FakeUpstream):
    """Sets its flags as a validating recursive resolver does for signed data, and echoes Z and DO (a sloppy one)."""

    def reply_to(self, query: dns.message.Message, tcp: bool) -> dns.message.Message | None:
        reply = super().reply_to(query, tcp)
        reply.flags |= dns.flags.RA | query.flags & (dns.flags.CD | Z)
        if query.flags & dns.flags.AD or query.ednsflags & dns.flags.DO:
            reply.flags |= dns.flags.AD
        if query.edns >= 0:
            reply.use_edns(0, query.ednsflags & dns.flags.DO, 1232)
        return reply


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DnscockProcess]:
    with FakeEngine(tmp_path_factory.mktemp("engine") / "docker.sock") as engine:
        engine.add_container("redis1", image="redis")
        upstream = ResolverLikeUpstream()
        process = DnscockProcess("-dns=127.0.0.1:0", f"-docker={engine.url}", f"-nameserver={upstream.address}")
        process.wait_for_log("connected to the Docker engine")
        yield process
        process.stop()
        upstream.close()


NAME_KINDS = {  # kind -> (name under a unique label, rcode, local?)
    "local": ("redis1.redis.docker", dns.rcode.NOERROR, True),  # <anything>.redis1.redis.docker matches
    "negative": ("nobody.docker", dns.rcode.NXDOMAIN, True),
    "forwarded": ("fwd.test", dns.rcode.NOERROR, False),
    "cached": ("fwd.test", dns.rcode.NOERROR, False),
}
_counter = itertools.count()


def ask(server: DnscockProcess, query: dns.message.Message, tcp: bool) -> dns.message.Message:
    send = dns.query.tcp if tcp else dns.query.udp
    return send(query, server.host, port=server.port, timeout=5)


def problems_with(reply: dns.message.Message, combination: Combination, kind: str) -> list[str]:
    _, expected_rcode, local = NAME_KINDS[kind]
    wanted = {
        "QR": True, "RD": bool(combination.flags & dns.flags.RD), "CD": bool(combination.flags & dns.flags.CD),
        "Z": False, "TC": False, "RA": True,
        "AA": local,
        "AD": not local and bool(combination.flags & dns.flags.AD or combination.edns == "edns+do"),
    }
    bits = {"QR": dns.flags.QR, "RD": dns.flags.RD, "CD": dns.flags.CD, "Z": Z, "TC": dns.flags.TC,
            "RA": dns.flags.RA, "AA": dns.flags.AA, "AD": dns.flags.AD}
    problems = [f"{flag} {'missing' if want else 'set'}" for flag, want in wanted.items()
                if bool(reply.flags & bits[flag]) != want]
    if reply.opcode() != 0:
        problems.append(f"opcode {reply.opcode()}")
    if reply.rcode() != expected_rcode:
        problems.append(f"rcode {dns.rcode.to_text(reply.rcode())}")
    if (reply.edns >= 0) != (combination.edns != "none"):
        problems.append("OPT present" if reply.edns >= 0 else "OPT missing")
    elif reply.edns >= 0:
        if reply.edns != 0:
            problems.append(f"EDNS version {reply.edns}")
        if bool(reply.ednsflags & dns.flags.DO) != (combination.edns == "edns+do"):
            problems.append("DO not echoed" if combination.edns == "edns+do" else "DO set")
        if reply.ednsflags & ~dns.flags.DO & 0xFFFF:
            problems.append(f"EDNS flags {reply.ednsflags:#06x}")
    if expected_rcode == dns.rcode.NOERROR and not reply.answer:
        problems.append("no answer")
    return problems


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
@pytest.mark.parametrize("kind", list(NAME_KINDS))
@pytest.mark.parametrize("state", ["fresh", "after-the-opposite"])
def test_reply_flags_for_every_combination(server, kind, state, tcp):
    failures = []
    base = NAME_KINDS[kind][0]
    for combination in COMBINATIONS:
        name = f"q{next(_counter)}.{base}"
        if state == "after-the-opposite":
            ask(server, combination.opposite().query(name), tcp)  # fills the reply caches
        if kind == "cached":
            ask(server, combination.query(name), tcp)
        reply = ask(server, combination.query(name), tcp)
        problems = problems_with(reply, combination, kind)
        if problems:
            failures.append(f"{combination}: {', '.join(problems)}")
    assert not failures, f"{len(failures)} of {len(COMBINATIONS)} combinations:\n" + "\n".join(failures)
