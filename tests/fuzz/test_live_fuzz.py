"""Fuzzing the live UDP and TCP servers of ``python -m dnscock``, which must keep answering.

dnscock runs as a subprocess (the ``start_dnscock`` fixture) on a loopback
port chosen by the kernel, forwarding to ``harness.FuzzUpstream`` (a fake
nameserver that answers every query, odd ones included, by hand), with the
containers of ``tests/support/fake_engine`` (a fake Engine API on a unix socket,
in a subprocess) as its local names. Each example is
a batch of generated cases sent over UDP or over one TCP connection (or a
raw byte stream over TCP); every reply is checked as in-process
(``tests/fuzz/harness.py``), and after every batch a valid local name
(``c00001.img0001.docker``) and a valid forwarded name must still get their
answers over UDP and TCP, the process must be alive, and its log must hold
no ERROR line nor traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from hypothesis import Phase, given
from hypothesis import strategies as st

from tests.fuzz.harness import (
    LIVE_ARGS,
    FuzzEngine,
    FuzzUpstream,
    LiveTarget,
    Problem,
    assert_no_problems,
    check_outcome,
)
from tests.fuzz.strategies import FuzzCase, cases, fuzz_settings

log = logging.getLogger("tests.fuzz.live")

# A live server's state carries over from one example to the next: shrinking would chase ghosts.
LIVE = {"phases": (Phase.explicit, Phase.generate)}


@pytest.fixture(scope="module")
def fake_engine() -> Iterator[FuzzEngine]:
    engine = FuzzEngine()
    yield engine
    engine.stop()


@pytest.fixture(scope="module")
def fuzz_upstream() -> Iterator[FuzzUpstream]:
    upstream = FuzzUpstream()
    yield upstream
    upstream.close()


@pytest.fixture
def live(start_dnscock, fuzz_upstream: FuzzUpstream, fake_engine: FuzzEngine) -> LiveTarget:
    process = start_dnscock(f"-nameserver={fuzz_upstream.address}", f"-docker={fake_engine.url}", *LIVE_ARGS)
    target = LiveTarget.of(process)
    assert_no_problems(target.probe(), "before any fuzzing")  # also waits for the first sync
    target.new_log_errors()
    return target


def check_batch(target: LiveTarget, outcomes, problems: list[Problem]) -> list[Problem]:
    for outcome in outcomes:
        problems += check_outcome(outcome)
    return problems + target.probe() + target.new_log_errors()


def test_udp_batches_of_garbage(live: LiveTarget) -> None:
    @fuzz_settings(100, **LIVE)
    @given(batch=st.lists(cases(), min_size=1, max_size=12))
    def udp_batch(batch: list[FuzzCase]) -> None:
        batch = [FuzzCase(case.data, False, case.kind, case.valid) for case in batch]
        outcomes, problems = live.udp_batch(batch)
        assert_no_problems(check_batch(live, outcomes, problems), "after a UDP batch")

    udp_batch()


def test_tcp_connections_of_garbage(live: LiveTarget) -> None:
    @fuzz_settings(100, **LIVE)
    @given(batch=st.lists(cases(), min_size=1, max_size=12))
    def tcp_batch(batch: list[FuzzCase]) -> None:
        batch = [FuzzCase(case.data, True, case.kind, case.valid) for case in batch]
        outcomes, problems = live.tcp_batch(batch)
        assert_no_problems(check_batch(live, outcomes, problems), "after a TCP connection")

    tcp_batch()


def test_raw_tcp_streams(live: LiveTarget) -> None:
    """Bytes with no framing to speak of: lengths that lie, frames cut short, half a length."""

    @fuzz_settings(100, **LIVE)
    @given(stream=st.binary(max_size=400) | st.builds(lambda n, rest: n.to_bytes(2, "big") + rest,
                                                       st.integers(0, 65535), st.binary(max_size=64)))
    def raw(stream: bytes) -> None:
        problems = live.tcp_raw(stream)
        assert_no_problems(problems + live.probe() + live.new_log_errors(), "after a raw TCP stream")

    raw()
