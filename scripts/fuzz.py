#!/usr/bin/env python3
"""A long fuzz run of dnscock: a million generated queries, good and bad, and what they broke.

From a clean clone, one command (it makes ``.venv`` with ``make .venv/.dev``
when the running Python lacks the project's dependencies, then runs itself
again with ``.venv/bin/python``)::

    python3 scripts/fuzz.py --cases 1000000 --json fuzz-summary.json

Add ``nice -n 10 taskset -c 1`` in front to leave the other core alone.

What it does:

* ``--cases`` cases (random bytes, structure-aware malformed messages, valid
  queries and repeats of them in other letter case; ``tests/fuzz/strategies.py``)
  go to ``Resolver.handle`` in-process, with a synced store and a forwarder
  to a fake upstream in the same process (``tests/fuzz/harness.py``),
  in batches, pipelined so that forwarded replies overlap; now and then a
  record is added or removed (the caches' generation changes);
* a share of that (``--live-share``, default 1%) goes, on top, to the UDP
  and TCP servers of a real ``python -m dnscock`` subprocess that knows the
  containers of ``tests/support/fake_engine`` and forwards to the harness's
  ``FuzzUpstream``; after each batch a valid local and a valid
  forwarded query must still get their answers;
* every case is checked against the invariants of ``tests/fuzz/harness.py``
  (no exception out of ``handle``, no ERROR log, one reply or none as due,
  replies that parse with the query's id, QR and within the client's size
  limit, well-formed queries never FORMERR and their question echoed).

It prints the number of cases, the time, the problems found (grouped by
signature, with the first examples as hex) and the largest UDP reply/query
size ratio seen, for local names and overall; ``--json PATH`` writes the
same as JSON. The exit code is 1 when a problem was found.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
NEEDED = ("gevent", "dnslib", "dns", "hypothesis", "configargparse", "docker")


def _bootstrap() -> None:
    """Runs this script again with the project's venv when this Python lacks what it needs."""
    if all(importlib.util.find_spec(name) for name in NEEDED):
        return
    if os.environ.get("DNSCOCK_FUZZ_BOOTSTRAPPED"):
        missing = [name for name in NEEDED if not importlib.util.find_spec(name)]
        sys.exit(f"fuzz.py: still missing {', '.join(missing)} in {sys.executable}")
    print("fuzz.py: setting up .venv (make .venv/.dev) ...", file=sys.stderr, flush=True)
    subprocess.run(["make", "-C", str(ROOT), ".venv/.dev"], check=True)
    os.environ["DNSCOCK_FUZZ_BOOTSTRAPPED"] = "1"
    os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), __file__, *sys.argv[1:]])


if __name__ == "__main__":
    _bootstrap()

sys.path.insert(0, str(ROOT))

import json  # noqa: E402
import logging  # noqa: E402
import random  # noqa: E402
import signal  # noqa: E402
import time  # noqa: E402
from collections import deque  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

import gevent  # noqa: E402
import gevent.event  # noqa: E402

from dnscock.records import Record  # noqa: E402
from tests.fuzz.harness import (  # noqa: E402
    LIVE_ARGS,
    FuzzEngine,
    FuzzUpstream,
    InProcessTarget,
    LiveTarget,
    Outcome,
    Problem,
    check_outcome,
    question_labels,
)
from tests.fuzz.strategies import FuzzCase, RandomChooser, fuzz_case  # noqa: E402
from tests.support.dnscock_process import DnscockProcess  # noqa: E402

log = logging.getLogger("scripts.fuzz")

HISTORY = 64  # valid queries kept for repeats
CHURN_EVERY = 10  # batches between two changes of the record store
PENDING_ROUNDS = 2  # batches a batch stays open for late (second) replies before it is checked
MAX_PENDING = 50  # batches still owed a reply; past that, the oldest is waited for


@dataclass
class Ratio:
    """The largest reply/query size ratio seen, and the case that made it."""

    value: float = 0.0
    query: str = ""
    reply_size: int = 0

    def see(self, query: bytes, reply: bytes) -> None:
        ratio = len(reply) / max(1, len(query))
        if ratio > self.value:
            self.value, self.query, self.reply_size = ratio, query.hex(), len(reply)


@dataclass
class Findings:
    """Problems by signature (count and first examples) and the UDP amplification seen."""

    examples_per_signature: int = 3
    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    ratio_local: Ratio = field(default_factory=Ratio)
    ratio_all: Ratio = field(default_factory=Ratio)
    # The same among replies that broke no invariant (what a fixed dnscock would give).
    ratio_local_clean: Ratio = field(default_factory=Ratio)
    ratio_all_clean: Ratio = field(default_factory=Ratio)
    cases_with_problems: int = 0

    def add(self, problems: list[Problem]) -> None:
        for problem in problems:
            self.counts[problem.signature] = self.counts.get(problem.signature, 0) + 1
            kept = self.examples.setdefault(problem.signature, [])
            if len(kept) < self.examples_per_signature:
                kept.append(problem.detail[:6000])

    def outcome(self, outcome: Outcome) -> None:
        problems = check_outcome(outcome, strict_servfail=outcome.returned is not None)
        if problems:
            self.cases_with_problems += 1
            self.add(problems)
        case = outcome.case
        if not case.tcp and outcome.replies:
            reply = outcome.replies[0]
            labels = question_labels(case.data)
            local = bool(labels) and labels[-1] == b"docker"
            for ratio, local_ratio in ((self.ratio_all, self.ratio_local),
                                       (self.ratio_all_clean, self.ratio_local_clean))[:1 if problems else 2]:
                ratio.see(case.data, reply)
                if local:
                    local_ratio.see(case.data, reply)

    def summary(self) -> dict:
        return {
            "crashes": sum(self.counts.values()),
            "cases_with_problems": self.cases_with_problems,
            "signatures": {key: {"count": self.counts[key], "examples": self.examples[key]}
                           for key in sorted(self.counts, key=self.counts.get, reverse=True)},
            "max_udp_ratio_local": vars(self.ratio_local),
            "max_udp_ratio_overall": vars(self.ratio_all),
            "max_udp_ratio_local_without_problems": vars(self.ratio_local_clean),
            "max_udp_ratio_overall_without_problems": vars(self.ratio_all_clean),
        }


class CaseSource:
    """Fuzz cases from one seeded chooser, remembering valid queries to repeat them."""

    def __init__(self, seed: int) -> None:
        self.chooser = RandomChooser(seed)
        self.history: deque[bytes] = deque(maxlen=HISTORY)

    def take(self, count: int, tcp: bool | None = None) -> list[FuzzCase]:
        cases = []
        for _ in range(count):
            case = fuzz_case(self.chooser, self.history)
            if case.valid and case.kind == "valid":
                self.history.append(case.data)
            cases.append(case)
        return cases


# -- in-process --


def churn(target: InProcessTarget, step: int) -> None:
    """Adds or removes a record (and a forwarded name becomes an alias or stops being one)."""
    if step % 2:
        target.store.remove("f" * 64)
    else:
        target.store.put(Record("f" * 64, "churn", ("churn", "img0001"), aliases=("www.example.com",),
                                ipv4=("10.9.9.9",)))


def settle(target: InProcessTarget, findings: Findings, outcomes: list[Outcome], deadline: float) -> None:
    """Waits (until ``deadline``) for what the batch still owes, then checks every outcome."""
    for outcome in outcomes:
        if outcome.returned and not outcome.replies:
            remaining = deadline - time.monotonic()
            if remaining > 0:
                outcome.done = gevent.event.Event()
                outcome.done.wait(remaining)
    for outcome in outcomes:
        findings.outcome(outcome)


def attribute_errors(target: InProcessTarget, findings: Findings, problems: list[Problem],
                     suspects: list[list[Outcome]]) -> None:
    """ERROR logs came during these batches: replay their cases one by one to name the culprits."""
    replay = InProcessTarget(timeout=target.config.timeout)
    try:
        named = []
        for batch in suspects:
            for outcome in batch:
                _, found = replay.run_one(outcome.case)
                named += [problem for problem in found if problem.signature.startswith(("ERROR", "CRITICAL"))]
        findings.add(named or problems)
    finally:
        replay.close()


@dataclass
class Pending:
    """A batch handed over whose outcomes are not checked yet."""

    deadline: float  # by then every reply it is owed must be in (else: a hang)
    round: int
    outcomes: list[Outcome]

    def owed(self) -> bool:
        return any(outcome.returned and not outcome.replies for outcome in self.outcomes)


def run_in_process(args: argparse.Namespace, source: CaseSource, findings: Findings,
                   live: LiveRun | None) -> int:
    target = InProcessTarget(timeout=args.timeout)
    pending: deque[Pending] = deque()
    margin = args.timeout + target.hang_margin
    done = batches = 0
    started = last_report = time.monotonic()

    def check_ready(flush: bool = False) -> None:
        nonlocal pending
        now = time.monotonic()
        kept: deque[Pending] = deque()
        for batch in pending:
            if now >= batch.deadline or (batches - batch.round >= PENDING_ROUNDS and not batch.owed()):
                settle(target, findings, batch.outcomes, batch.deadline)
            else:
                kept.append(batch)
        pending = kept
        while pending and (flush or len(pending) > MAX_PENDING):
            batch = pending.popleft()
            settle(target, findings, batch.outcomes, batch.deadline)

    try:
        while done < args.cases:
            count = min(args.batch, args.cases - done)
            outcomes = target.submit(source.take(count))
            pending.append(Pending(time.monotonic() + margin, batches, outcomes))
            done += count
            batches += 1
            gevent.sleep(0)
            check_ready()
            errors = target.errors.take()
            if errors:
                attribute_errors(target, findings, errors, [batch.outcomes for batch in pending])
            if batches % CHURN_EVERY == 0:
                churn(target, batches // CHURN_EVERY)
            if live is not None and live.due(done):
                check_ready(flush=True)  # the live batch blocks this process's event loop for a while
                live.run_batch()
            now = time.monotonic()
            if now - last_report >= args.progress:
                last_report = now
                print(f"  {done:,} cases in {now - started:.0f}s ({done / (now - started):,.0f}/s), "
                      f"{sum(findings.counts.values())} problems", file=sys.stderr, flush=True)
        gevent.sleep(0)
        check_ready(flush=True)
        gevent.sleep(0.05)
        findings.add(target.errors.take())
    finally:
        target.close()
    return done


# -- live --


class LiveRun:
    """The live servers' share: a batch every so often, over UDP or TCP, then probes."""

    def __init__(self, args: argparse.Namespace, seed: int, findings: Findings) -> None:
        self.findings = findings
        self.source = CaseSource(seed ^ 0x5EED)
        self.batch = args.live_batch
        self.every = max(1, int(args.live_batch / args.live_share)) if args.live_share > 0 else 0
        self.cases = 0
        self.batches = 0
        self.next_at = self.every
        self.engine = FuzzEngine()
        self.upstream = FuzzUpstream()
        try:
            self.process = DnscockProcess("-dns=127.0.0.1:0", f"-nameserver={self.upstream.address}",
                                          f"-docker={self.engine.url}", *LIVE_ARGS)
        except BaseException:
            self.upstream.close()
            self.engine.stop()
            raise
        self.target = LiveTarget.of(self.process)
        findings.add(self.target.probe())  # waits for the first sync with the engine, too
        self.target.new_log_errors()  # start-up lines are not the fuzzer's doing

    def due(self, in_process_done: int) -> bool:
        if self.every and in_process_done >= self.next_at:
            self.next_at += self.every
            return True
        return False

    def run_batch(self) -> None:
        self.batches += 1
        kind = self.batches % 5
        problems: list[Problem] = []
        if kind == 4:
            stream = self.source.chooser.raw(400)
            problems += self.target.tcp_raw(stream)
            self.cases += 1
        else:
            cases = self.source.take(self.batch)
            tcp = kind in (1, 3)
            cases = [FuzzCase(case.data, tcp, case.kind, case.valid) for case in cases]
            outcomes, found = (self.target.tcp_batch if tcp else self.target.udp_batch)(cases)
            problems += found
            for outcome in outcomes:
                self.findings.outcome(outcome)
            self.cases += len(outcomes)
        problems += self.target.probe()
        problems += self.target.new_log_errors()
        self.findings.add(problems)

    def close(self) -> None:
        self.process.stop()
        self.findings.add(self.target.new_log_errors())
        self.upstream.close()
        self.engine.stop()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Fuzz dnscock's resolver in-process and its live servers.")
    parser.add_argument("--cases", type=int, default=1_000_000, help="in-process cases (default 1000000)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: a fresh one, printed)")
    parser.add_argument("--batch", type=int, default=100, help="in-process cases handed over at once")
    parser.add_argument("--timeout", type=float, default=1.0, help="-timeout of the in-process forwarder")
    parser.add_argument("--live-share", type=float, default=0.01,
                        help="live cases per in-process case (default 0.01; 0: no live servers)")
    parser.add_argument("--live-batch", type=int, default=40, help="cases per live batch")
    parser.add_argument("--progress", type=float, default=30.0, help="seconds between progress lines")
    parser.add_argument("--json", type=Path, help="write the summary here as JSON")
    return parser.parse_args(argv)


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # unwind, so that the subprocesses are stopped too


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)
    logging.basicConfig(level=logging.CRITICAL + 1)  # the harness catches dnscock's ERRORs itself
    seed = args.seed if args.seed is not None else random.SystemRandom().getrandbits(32)
    print(f"fuzz: {args.cases:,} in-process cases, live share {args.live_share:g}, seed {seed}",
          file=sys.stderr, flush=True)
    findings = Findings()
    started = time.monotonic()
    live = LiveRun(args, seed, findings) if args.live_share > 0 else None
    try:
        done = run_in_process(args, CaseSource(seed), findings, live)
    finally:
        if live is not None:
            live.close()
    elapsed = time.monotonic() - started
    summary = {
        "seed": seed,
        "cases_in_process": done,
        "cases_live": live.cases if live else 0,
        "live_batches": live.batches if live else 0,
        "seconds": round(elapsed, 1),
        **findings.summary(),
    }
    print(f"cases: {done:,} in-process + {summary['cases_live']:,} live ({summary['live_batches']} batches)")
    print(f"time: {elapsed:.1f}s ({done / elapsed:,.0f} cases/s in-process)")
    print(f"crashes: {summary['crashes']} problems in {findings.cases_with_problems} cases, "
          f"{len(findings.counts)} kinds")
    for signature, entry in summary["signatures"].items():
        print(f"  {entry['count']:>8}  {signature}")
        print(f"            e.g. {entry['examples'][0].splitlines()[0][:300]}")
    for label, ratio in (("local names", findings.ratio_local), ("overall", findings.ratio_all),
                         ("local names, replies without problems", findings.ratio_local_clean),
                         ("overall, replies without problems", findings.ratio_all_clean)):
        print(f"max UDP reply/query ratio, {label}: {ratio.value:.2f} "
              f"({ratio.reply_size} bytes for the {len(ratio.query) // 2}-byte query {ratio.query})")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
        print(f"summary: {args.json}")
    return 1 if findings.counts else 0


if __name__ == "__main__":
    sys.exit(main())
