#!/usr/bin/env python3
"""Coverage-guided fuzzing (atheris, libFuzzer) of ``Query.read`` (the hand reader) and ``Pipeline.handle``.

atheris is not a project dependency: run it from a venv of its own, for example::

    python3 -m venv /tmp/atheris-venv
    /tmp/atheris-venv/bin/pip install atheris -r requirements-dev.txt
    /tmp/atheris-venv/bin/python scripts/fuzz_atheris.py --summary /tmp/atheris.json \\
        -max_total_time=300 /tmp/atheris-corpus

(atheris 3.0 ships wheels for CPython 3.11 on x86-64 Linux.) Anything after
the script's own options goes to libFuzzer (``-max_total_time``, ``-runs``,
``-jobs``, a corpus folder...). An empty corpus folder is seeded with
queries from ``tests/fuzz/strategies.py`` first.

Each input's first byte picks the transport (bit 0: TCP) and the client
address (bits 1-3); the rest is the message. For every input:

* ``Query.read`` must not raise, and what it reads must agree with the
  bytes (the labels of the name, where the question ends);
* ``Pipeline.handle`` (a synced store of ``tests/fuzz/harness.py``'s records,
  a forwarder stub answering at once like the harness's fake upstream) must
  meet every invariant of ``harness.check_outcome`` and log no ERROR.

A broken invariant does not stop the run: each new kind is written to the
artifacts folder (libFuzzer's ``-artifact_prefix``, default the current
folder) as ``dnscock-<kind hash>-<input hash>``, and to the ``--summary``
JSON (kept up to date, since libFuzzer ends the process without Python's
shutdown), so one known bug does not hide the next.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import time
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

with atheris.instrument_imports(include=["dnscock", "dnslib"]):
    # Instrumented: dnslib's parser and dnscock's query path.
    import dnslib  # noqa: F401

    from dnscock import answers, authority, cache, packing, pipeline, queries, query, wire  # noqa: F401
    from dnscock.app import build_pipeline
    from dnscock.query import Query
    from dnscock.config import load_config
    from dnscock.records import RecordStore

import gevent  # noqa: E402

from tests.fuzz.harness import (  # noqa: E402
    ErrorLogCatcher,
    Outcome,
    Problem,
    check_outcome,
    fuzz_records,
    upstream_answers,
)
from tests.fuzz.strategies import CLIENTS, FuzzCase, RandomChooser, fuzz_case  # noqa: E402

log = logging.getLogger("scripts.fuzz_atheris")


class StubForwarder:
    """The forwarder's interface, answering at once as the harness's fake upstream would."""

    def __init__(self) -> None:
        self.in_flight = 0

    def submit(self, query: Query, done) -> None:
        replies = upstream_answers(query.data, query.tcp)
        if replies:
            done(query, query.data[:2] + replies[-1][2:], "")
        else:
            done(query, None, "dropped")


class Fuzzer:
    def __init__(self, summary: Path | None, artifacts: str) -> None:
        self.summary = summary
        self.artifacts = artifacts
        self.config = load_config(["-nameserver=127.0.0.1:9"], {})
        self.store = RecordStore()
        self.store.replace_all(fuzz_records())
        self.forwarder = StubForwarder()
        self.resolver = build_pipeline(self.config, self.store, self.forwarder)
        self.errors = ErrorLogCatcher().__enter__()
        self.counts: dict[str, int] = {}
        self.examples: dict[str, str] = {}
        self.inputs = 0
        self.started = time.monotonic()

    def one_input(self, data: bytes) -> None:
        if not data:
            return
        self.inputs += 1
        if self.inputs % 200_000 == 0:
            self.resolver = build_pipeline(self.config, self.store, self.forwarder)  # bounded caches, but fresh now and then
        control, message = data[0], data[1:]
        problems = self.parse_question(message)
        case = FuzzCase(message, tcp=bool(control & 1), kind="atheris", client=CLIENTS[(control >> 1) % len(CLIENTS)])
        outcome = Outcome(case)
        try:
            outcome.returned = self.resolver.handle(message, case.tcp, outcome.respond, case.client)
        except Exception as error:
            outcome.error = f"{type(error).__name__}: {error}"
            tb = error.__traceback__
            while tb is not None and tb.tb_next is not None:
                tb = tb.tb_next
            where = f"{Path(tb.tb_frame.f_code.co_filename).name}:{tb.tb_lineno}" if tb else "?"
            outcome.error_where = f"{type(error).__name__} at {where}"
        if outcome.returned and not outcome.replies:
            gevent.sleep(0)  # the pool greenlet (the stub answers at once)
            gevent.sleep(0)
        problems += check_outcome(outcome, strict_servfail=True) + self.errors.take()
        for problem in problems:
            self.record(problem, data)
        if self.inputs % 50_000 == 0:
            self.write_summary()

    def parse_question(self, message: bytes) -> list[Problem]:
        query = Query(message, None, None, 0.0)
        try:
            plain = query.read()
        except Exception as error:
            return [Problem(f"Query.read raised {type(error).__name__}", message.hex())]
        if not plain:
            return []
        name = message[wire.HEADER_LENGTH:query.end - 4]
        read = b"".join(bytes([len(label)]) + label.encode("latin-1") for label in query.labels) + b"\0"
        if read != name.lower() or not name.endswith(b"\0"):
            return [Problem("Query.read disagrees with the bytes", message.hex())]
        if len(name) > 255:
            return [Problem("Query.read took a name over 255 octets", message.hex())]
        return []

    def record(self, problem: Problem, data: bytes) -> None:
        first = problem.signature not in self.counts
        self.counts[problem.signature] = self.counts.get(problem.signature, 0) + 1
        if first:
            self.examples[problem.signature] = problem.detail[:4000]
            kind = hashlib.sha1(problem.signature.encode()).hexdigest()[:8]
            path = f"{self.artifacts}dnscock-{kind}-{hashlib.sha1(data).hexdigest()[:12]}"
            Path(path).write_bytes(data)
            print(f"\n== new problem: {problem.signature}\n   input saved as {path}\n   {problem.detail[:500]}",
                  file=sys.stderr, flush=True)
            self.write_summary()

    def write_summary(self) -> None:
        if self.summary is None:
            return
        document = {
            "inputs": self.inputs,
            "seconds": round(time.monotonic() - self.started, 1),
            "problems": {key: {"count": self.counts[key], "example": self.examples[key]} for key in self.counts},
        }
        temporary = self.summary.with_suffix(".tmp")
        temporary.write_text(json.dumps(document, indent=2) + "\n")
        temporary.replace(self.summary)


def seed_corpus(folder: Path, count: int = 500) -> None:
    """Writes ``count`` generated cases into an empty corpus folder."""
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.iterdir()):
        return
    chooser = RandomChooser(1)
    history: list[bytes] = []
    for i in range(count):
        case = fuzz_case(chooser, history)
        if case.valid:
            history.append(case.data)
        control = (1 if case.tcp else 0) | (CLIENTS.index(case.client) << 1)
        (folder / f"seed-{i:04d}").write_bytes(bytes([control]) + case.data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], add_help=False)
    parser.add_argument("--summary", type=Path, help="keep a JSON summary of the problems found here")
    ours, libfuzzer = parser.parse_known_args()
    logging.basicConfig(level=logging.CRITICAL + 1)  # ErrorLogCatcher sees dnscock's ERRORs itself
    for argument in libfuzzer:
        if not argument.startswith("-"):
            seed_corpus(Path(argument))
    artifacts = next((a.split("=", 1)[1] for a in libfuzzer if a.startswith("-artifact_prefix=")), "")
    fuzzer = Fuzzer(ours.summary, artifacts or os.getcwd() + "/")
    atheris.Setup([sys.argv[0], *libfuzzer], fuzzer.one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
