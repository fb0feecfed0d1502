"""Fuzzing ``Pipeline.handle`` in-process: random bytes and structure-aware messages, every invariant checked.

The resolver has a synced store of a few dozen records and a real forwarder
to a fake upstream in the same process (``tests/fuzz/harness.py``); each
example gets a resolver with empty caches. The invariants are those of
``harness.check_outcome``, plus: nothing logged at ERROR by a ``dnscock``
logger.

The examples per test are sized for CI (the whole folder in well under a
minute); ``DNSCOCK_FUZZ_SCALE=20`` runs twenty times as many, and
``scripts/fuzz.py`` runs a million. The tests at the end replay, byte for
byte, bugs these generators found.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import dns.flags
import dns.message
import dns.name
import pytest
from hypothesis import given

from tests.fuzz.harness import InProcessTarget, Problem, assert_no_problems
from tests.fuzz.strategies import FuzzCase, cases, fuzz_settings, random_bytes, sessions

log = logging.getLogger("tests.fuzz.resolver")


@pytest.fixture(scope="module")
def target() -> Iterator[InProcessTarget]:
    harness = InProcessTarget(timeout=0.3)  # a dropped query costs this much
    yield harness
    harness.close()


def run_all(target: InProcessTarget, session: list[FuzzCase]) -> list[Problem]:
    """The cases in order, on a resolver with empty caches; every problem of every case."""
    target.new_resolver()
    target.errors.take()  # nothing from an earlier example
    problems: list[Problem] = []
    for case in session:
        problems += target.run_one(case)[1]
    return problems


@fuzz_settings(2000)
@given(case=random_bytes())
def test_random_bytes(target: InProcessTarget, case: FuzzCase) -> None:
    assert_no_problems(run_all(target, [case]))


@fuzz_settings(1000)
@given(case=cases(kind="header"))
def test_a_query_header_then_random_bytes(target: InProcessTarget, case: FuzzCase) -> None:
    assert_no_problems(run_all(target, [case]))


@fuzz_settings(2000)
@given(case=cases(kind="malformed"))
def test_malformed_messages(target: InProcessTarget, case: FuzzCase) -> None:
    """Bad labels, pointer loops, lying counts, odd OPT records, every opcode and class..."""
    assert_no_problems(run_all(target, [case]))


@fuzz_settings(800)
@given(case=cases(kind="valid"))
def test_well_formed_queries(target: InProcessTarget, case: FuzzCase) -> None:
    """Local and forwarded names, every qtype and class: one proper reply, never FORMERR."""
    assert_no_problems(run_all(target, [case]))


@fuzz_settings(500)
@given(session=sessions())
def test_sessions_with_repeats(target: InProcessTarget, session: list[FuzzCase]) -> None:
    """Several cases on one resolver, valid queries repeated in other letter case or transport: the caches."""
    assert_no_problems(run_all(target, session))


# -- bugs the fuzzer found, replayed byte for byte (they fail until fixed) --


def _query(name: str | bytes, rdtype: str, *, message_id: int = 0x1234, flags: int = 0, **kwargs) -> bytes:
    if isinstance(name, bytes):
        name = dns.name.Name(name.split(b".") + [b""])
    message = dns.message.make_query(name, rdtype, **kwargs)
    message.id = message_id
    message.flags |= flags
    return message.to_wire()


KNOWN = [
    pytest.param([FuzzCase(_query(b"\xb2.0.0.10.in-addr.arpa", "PTR"), tcp=False, kind="known", valid=True)],
                 id="udp-ptr-latin1-superscript-digit-label"),
    pytest.param([FuzzCase(_query("*.docker", "TXT"), tcp=True, kind="known", valid=True),
                  FuzzCase(_query("*.docker", "TXT"), tcp=False, kind="known", valid=True)],
                 id="local-reply-cached-over-tcp-served-over-udp"),
    pytest.param([FuzzCase(_query("*.docker", "TXT"), tcp=False, kind="known", valid=True),
                  FuzzCase(_query("*.docker", "TXT"), tcp=True, kind="known", valid=True)],
                 id="truncated-udp-reply-served-over-tcp"),
    pytest.param([FuzzCase(_query("big.example.com", "A"), tcp=True, kind="known", valid=True),
                  FuzzCase(_query("big.example.com", "A"), tcp=False, kind="known", valid=True)],
                 id="forwarded-reply-cached-over-tcp-served-over-udp"),
    pytest.param([FuzzCase(_query("c00001.img0001.docker", "A", flags=dns.flags.TC), tcp=True, kind="known",
                           valid=True)],
                 id="tc-bit-of-the-query-copied-into-the-reply"),
    pytest.param([FuzzCase(_query(b"\xff.docker", "A"), tcp=False, kind="known", valid=True)],
                 id="binary-label-under-the-zone-gets-formerr"),
    pytest.param([FuzzCase(_query(b"\xff.example.com", "A"), tcp=True, kind="known", valid=True)],
                 id="binary-label-over-tcp-gets-formerr"),
    pytest.param([FuzzCase(bytes.fromhex("abcd01000001000000000000") + b"\x3f" + b"L" * 63 + b"\x3f" + b"L" * 63
                           + b"\x3f" + b"L" * 63 + b"\x3f" + b"L" * 63 + b"\x00\x00\x01\x00\x01",
                           tcp=False, kind="known", client="192.0.2.1")],
                 id="refused-reply-echoes-an-overlong-name"),
]


@pytest.mark.parametrize("session", KNOWN)
def test_known_bugs_stay_fixed(target: InProcessTarget, session: list[FuzzCase]) -> None:
    assert_no_problems(run_all(target, session))
