"""A prober: a thread that keeps asking a running dnscock for names whose answers are known.

The fault tests start one before they break something (the engine, an upstream) and
stop it after: every query becomes a ``Sample`` (when it was sent, how long the answer
took, the rcode and addresses, or the error), labelled with the prober's ``phase`` at
the time, so that a test can check each phase's answers and print their latencies.

    with Prober(dnscock, {"known.redis.docker": ["172.17.0.2"]}, timeout=2.0) as prober:
        prober.wait_rounds("before", 20)
        prober.phase = "fault"
        ...
    prober.check("before")
    prober.check("fault")
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Self

import dns.exception
import dns.rcode

from tests.support.dnscock_process import DnscockProcess


@dataclass(frozen=True)
class Sample:
    """One query of the prober and what came of it."""

    phase: str
    name: str
    sent: float  # time.time()
    latency: float | None  # seconds; None: no answer within the prober's timeout
    rcode: str | None
    addresses: tuple[str, ...]
    error: str = ""  # why there was no answer: "Timeout after 2.003s", say

    def __str__(self) -> str:
        if self.latency is None:
            return f"{self.name}: {self.error or 'no answer'} ({self.phase})"
        return f"{self.name}: {self.rcode} {list(self.addresses)} after {self.latency:.3f}s ({self.phase})"


class Prober:
    """Asks ``dnscock`` for each name of ``expected`` in turn, pausing ``pause`` seconds after each query
    (by default, two names twenty times a second).

    ``expected`` maps each name to the addresses of its right answer (NOERROR); a query
    gets ``timeout`` seconds. A test sets ``phase`` to label the samples that follow.
    """

    def __init__(self, dnscock: DnscockProcess, expected: dict[str, list[str]], *, timeout: float,
                 pause: float = 0.025, phase: str = "before") -> None:
        self.dnscock = dnscock
        self.expected = {name: sorted(addresses) for name, addresses in expected.items()}
        self.timeout = timeout
        self.pause = pause
        self.phase = phase
        self.samples: list[Sample] = []
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prober", daemon=True)

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2 * self.timeout + 1)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            for name in self.expected:
                sample = self._ask(name)
                with self._changed:
                    self.samples.append(sample)
                    self._changed.notify_all()
                if self._stop.wait(self.pause):  # pacing the load, not waiting for a server
                    return

    def _ask(self, name: str) -> Sample:
        phase, sent, started = self.phase, time.time(), time.perf_counter()
        try:
            reply = self.dnscock.query(name, timeout=self.timeout)
        except (dns.exception.DNSException, OSError) as error:
            return Sample(phase, name, sent, None, None, (), error=f"{type(error).__name__} after "
                                                                  f"{time.perf_counter() - started:.3f}s")
        addresses = tuple(sorted(rr.address for rrset in reply.answer for rr in rrset if hasattr(rr, "address")))
        return Sample(phase, name, sent, time.perf_counter() - started, dns.rcode.to_text(reply.rcode()), addresses)

    # -- what it saw --

    def wait_for(self, condition: Callable[[list[Sample]], bool], what: str, timeout: float = 30.0) -> None:
        """Blocks until ``condition(samples)`` holds; AssertionError, saying ``what`` did not happen, on timeout."""
        with self._changed:
            if not self._changed.wait_for(lambda: condition(self.samples), timeout):
                raise AssertionError(f"{what} within {timeout}s; last probes: "
                                     f"{[str(sample) for sample in self.samples[-5:]]}")

    def wait_rounds(self, phase: str, rounds: int, timeout: float = 30.0) -> None:
        """Waits until every name has been asked ``rounds`` times in ``phase``."""
        def enough(samples: list[Sample]) -> bool:
            asked = [sample.name for sample in samples if sample.phase == phase]
            return min(asked.count(name) for name in self.expected) >= rounds

        self.wait_for(enough, f"the prober made fewer than {rounds} rounds in phase {phase!r}", timeout)

    def taken(self, phase: str | None = None, names: list[str] | None = None) -> list[Sample]:
        """The samples so far, of ``phase`` and ``names`` (default: any)."""
        with self._changed:
            return [sample for sample in self.samples
                    if (phase is None or sample.phase == phase) and (names is None or sample.name in names)]

    def latencies(self, phase: str | None = None, names: list[str] | None = None) -> list[float]:
        """The seconds each answer took (of ``phase`` and ``names``), shortest first."""
        return sorted(sample.latency for sample in self.taken(phase, names) if sample.latency is not None)

    def is_right(self, sample: Sample) -> bool:
        """Was ``sample`` answered, NOERROR, with the addresses expected?"""
        return (sample.latency is not None and sample.rcode == "NOERROR"
                and list(sample.addresses) == self.expected[sample.name])

    def check(self, phase: str, names: list[str] | None = None, *, within: float | None = None) -> None:
        """Every probe of ``names`` (default: all) in ``phase`` got its right answer in time (``within`` seconds
        if given, else the prober's timeout)."""
        samples = self.taken(phase, names)
        assert samples, f"no probes in phase {phase!r}"
        wrong = [sample for sample in samples if not self.is_right(sample)]
        assert not wrong, (f"{len(wrong)} of {len(samples)} probes in phase {phase!r} went wrong, "
                           f"first: {[f'{sample}, expected {self.expected[sample.name]}' for sample in wrong[:5]]}")
        slowest = max(sample.latency for sample in samples if sample.latency is not None)
        assert within is None or slowest < within, f"an answer in phase {phase!r} took {slowest:.3f}s"

    def report(self, title: str) -> None:
        """Prints the latencies of the answers, by phase and name (median / p95 / max)."""
        samples = self.taken()
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
