"""The forward cases: names dnscock does not own, answered by the upstream dnsmasq (on LOAD_CPU, cache off).

``forward-uncached``: unique names (``q<i>.r<round>.fwd.test``, new ones
every round, so no cache can answer), through dnscock with its forward cache
off (``-cache-size=0``) against dnsmasq doing the same job
(``dnsmasq-forwarding``: cache off, forwarding to the same upstream; the
ratio and the bar), against ``bench.ceiling forward`` (the least a Python
forwarder can do) and against the upstream queried directly
(``dnsmasq-direct``: one receive and one send a query instead of two each);
and dnscock with its cache on, as users run it, against dnsmasq-forwarding.

``forward-cached``: 1000 names, warmed in dnscock's forward cache, against
the upstream queried directly and against ``bench.ceiling answer`` answering
the same names from a hosts file (a reply kept per query: a cache hit).

The upstream moves to SERVER_CPU while it is measured directly, and back.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from bench import compare
from bench.contenders import Ceiling, Dnscock, Dnsmasq
from bench.dnsclient import addresses, ask
from bench.errors import BenchError
from bench.processes import LOAD_CPU, SERVER_CPU
from bench.session import FWD_ADDRESS, FWD_ZONE, Session
from tests.support.dnscock_process import rcode

log = logging.getLogger(__name__)

# The contenders' names in the table and the JSON.
DNSCOCK = "dnscock"  # with its default forward cache
CACHE_OFF = "dnscock -cache-size=0"
FORWARDING = "dnsmasq-forwarding"  # dnsmasq with its cache off, forwarding to the upstream: the same job as dnscock
DIRECT = "dnsmasq-direct"  # the upstream dnsmasq itself, queried directly (moved to the server CPU meanwhile)
UNCACHED_NAMES_PER_SECOND = 80_000
CACHED_NAMES = 1000


def check_forwarded(name: str, servers: Sequence[tuple[str, int]]) -> None:
    """Every server (label, port) answers ``name`` with FWD_ADDRESS."""
    replies = [(label, ask(port, name)) for label, port in servers]
    if any(addresses(reply) != [FWD_ADDRESS] for _, reply in replies):
        raise BenchError(f"{name}: " + ", ".join(f"{label} answers {rcode(reply)} {addresses(reply)}"
                                                  for label, reply in replies) + f" (expected {FWD_ADDRESS})")


def on_server_cpu(upstream: Dnsmasq, run: compare.Run) -> compare.Run:
    """``run``, with the upstream moved to SERVER_CPU meanwhile (it is the server under test then)."""
    def moved(round_index: int) -> dict[str, Any]:
        upstream.pin(SERVER_CPU)
        try:
            return run(round_index)
        finally:
            upstream.pin(LOAD_CPU)

    return moved


def run_uncached(session: Session) -> None:
    """Every round: each contender with that round's unique names, which none of them has seen before.

    Neither forwarder nor the upstream keeps an answer (dnsmasq-forwarding
    and the upstream with --cache-size=0, dnscock with -cache-size=0 or
    never asked a name twice).
    """
    main, upstream, engine = session.require_main(), session.require_upstream(), session.require_engine()
    options, probe = session.options, f"probe.{FWD_ZONE}"
    started: list[Dnscock | Dnsmasq | Ceiling] = []
    try:
        cache_off = session.start_dnscock("cache-off", engine.url, ["-cache-size=0"])
        started.append(cache_off)
        forwarder = Dnsmasq(session.processes, session.tmp, "forwarding", SERVER_CPU,
                            ["--cache-size=0", "--no-resolv", f"--server=127.0.0.1#{upstream.port}"], probe=probe,
                            name=FORWARDING)
        started.append(forwarder)
        ceiling = Ceiling(session.processes, session.tmp, "forward", upstream.port, probe=probe)
        started.append(ceiling)
        for server in (forwarder, ceiling):
            log.info("forward-uncached: %s on 127.0.0.1:%s (PID %s, CPU %s), forwarding to the upstream on "
                     "127.0.0.1:%s", server.name, server.port, server.pid, SERVER_CPU, upstream.port)
        check_forwarded(f"check.{FWD_ZONE}", [(DNSCOCK, main.port), (CACHE_OFF, cache_off.port),
                                               (DIRECT, upstream.port), (FORWARDING, forwarder.port),
                                               (ceiling.name, ceiling.port)])
        count = UNCACHED_NAMES_PER_SECOND * options.seconds
        log.info("forward-uncached: writing %s files of %s unique names", options.rounds, f"{count:,}")
        files = [session.write(f"uncached-{r}.queries", (f"q{i}.r{r}.{FWD_ZONE} A" for i in range(count)))
                 for r in range(options.rounds)]
        forwarders = [(CACHE_OFF, cache_off.port, cache_off.pid), (FORWARDING, forwarder.port, forwarder.pid),
                      (ceiling.name, ceiling.port, ceiling.pid), (DNSCOCK, main.port, main.pid)]
        contenders = [(name, compare.dnsperf_run(session, f"forward-uncached: {name}", port, pid, files,
                                                 upstream_pid=upstream.pid))
                      for name, port, pid in forwarders]
        contenders.insert(3, (DIRECT, on_server_cpu(upstream, compare.dnsperf_run(
            session, f"forward-uncached: {DIRECT}", upstream.port, upstream.pid, files))))
        runs = compare.alternate(options.rounds, contenders)
        result = compare.compared(session, "forward-uncached", runs, CACHE_OFF, [FORWARDING, ceiling.name, DIRECT])
        result["dnscock_args"] = ["-cache-size=0"]
        result["cache_on"] = compare.compared(session, "forward-uncached", runs, DNSCOCK, [FORWARDING])
        session.results["forward-uncached"] = result
        for file in files:
            file.unlink()
    finally:
        for server in reversed(started):
            server.stop()


def run_cached(session: Session) -> None:
    main, upstream = session.require_main(), session.require_upstream()
    names = [f"c{i}.{FWD_ZONE}" for i in range(CACHED_NAMES)]
    query_file = session.write("cached.queries", (f"{name} A" for name in names))
    hosts_file = session.write("cached.hosts", (f"{FWD_ADDRESS} {name}" for name in names))
    ceiling = Ceiling(session.processes, session.tmp, "answer", hosts_file, probe=names[0])
    try:
        for name, port, pid in ((DNSCOCK, main.port, main.pid), (ceiling.name, ceiling.port, ceiling.pid)):
            session.dnsperf(port, query_file, pid, seconds=1, what=f"forward-cached: warming {name}")
        check_forwarded(names[0], [(DNSCOCK, main.port), (DIRECT, upstream.port), (ceiling.name, ceiling.port)])
        runs = compare.alternate(session.options.rounds, [
            (DNSCOCK, compare.dnsperf_run(session, f"forward-cached: {DNSCOCK}", main.port, main.pid, [query_file])),
            (DIRECT, on_server_cpu(upstream, compare.dnsperf_run(
                session, f"forward-cached: {DIRECT}", upstream.port, upstream.pid, [query_file]))),
            (ceiling.name, compare.dnsperf_run(session, f"forward-cached: {ceiling.name}", ceiling.port, ceiling.pid,
                                               [query_file])),
        ])
        session.results["forward-cached"] = compare.compared(session, "forward-cached", runs, DNSCOCK,
                                                             [DIRECT, ceiling.name])
    finally:
        ceiling.stop()
