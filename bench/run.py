"""Measure dnscock against dnsmasq: ``make bench`` (``python -m bench.run [--smoke] [--cases ...]``).

Cases (``--cases``, comma-separated; all by default; see bench/cases/):

- ``local``: names of real containers on a private Docker engine; dnscock
  against dnsmasq answering the same names from a hosts file, and against
  ``bench.ceiling answer`` (the least a Python/gevent server can do) reading
  that file.
- ``forward-uncached``: unique names, so every query goes upstream; dnscock
  with its forward cache off (``-cache-size=0``) against dnsmasq doing the
  same job (``dnsmasq-forwarding``: cache off, forwarding to the same
  upstream; the ratio and the bar), against ``bench.ceiling forward``, and
  against the upstream queried directly (``dnsmasq-direct``); and dnscock
  with its cache on against dnsmasq-forwarding.
- ``forward-cached``: 1000 names warmed through dnscock's forward cache;
  dnscock against the upstream dnsmasq queried directly (``dnsmasq-direct``)
  and against ``bench.ceiling answer`` answering them from a hosts file.
- ``scale``: local names from a fake engine (tests/support/fake_engine) with
  10 and with 10,000 containers; QPS at 10,000 against QPS at 10.
- ``events``: ``docker run`` / ``docker stop`` on the private engine: time
  from the engine's ``start`` / ``die`` event to the answer / to no address.
- ``startup``: time from launching dnscock to its first full sync, for real
  containers and for the 10,000-container fake engine, and dnscock's RSS.
- ``swarm``: on a private two-node swarm, how fast dnscock follows tasks
  starting and leaving; and its CPU following a fake manager's 1000 tasks.

Every server under test runs alone on CPU 1, dnsperf on CPU 0; the contenders
of a case alternate, ``--rounds`` times, and each ratio is the median of the
rounds' own ratios. The figures go to a table on stdout and to a JSON file
(``--json``); the bars are marked PASS/FAIL but never change the exit code:
1 only when a case could not run, 2 for a usage problem (not root).
Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench import progress, report
from bench.bars import bar_values, judge
from bench.cases import events, forward, local, scale, startup, swarm
from bench.contenders import Dnscock
from bench.errors import BenchError
from bench.machine import machine_info
from bench.packages import ensure_packages
from bench.processes import ROOT, Processes, clean_up, interrupt, temp_dir
from bench.session import Options, Session

log = logging.getLogger("bench.run")  # not __name__: "__main__" under python -m

CASES = ("local", "forward-uncached", "forward-cached", "scale", "events", "startup", "swarm")
MAIN_DNSCOCK_CASES = {"local", "forward-uncached", "forward-cached", "events"}  # on dnscock with the private engine
ENGINE_CASES = MAIN_DNSCOCK_CASES | {"startup"}  # on the private engine
FAKE_ENGINE_CASES = {"scale", "startup"}

DEFAULTS = dict(seconds=15, rounds=3, containers=200, proxy_names=1000, scale_containers=10_000, sync_containers=200, events=20,
                swarm_events=20, swarm_tasks=1000, swarm_services=50, swarm_seconds=20)
SMOKE = dict(seconds=1, rounds=1, containers=6, proxy_names=12, scale_containers=200, sync_containers=10, events=3,
             swarm_events=3, swarm_tasks=200, swarm_services=10, swarm_seconds=5)


def run_cases(session: Session) -> None:
    """Every selected case, each with the shared servers it needs, started once, in an order that lets them share.

    A shared server that cannot start is an error of every case that needs it; the others go on.
    """
    session.guarded(ENGINE_CASES, "private Docker engine", session.start_engine)
    session.guarded(MAIN_DNSCOCK_CASES | FAKE_ENGINE_CASES | {"swarm"}, "upstream dnsmasq", session.start_upstream)
    names = session.guarded(["local"], "local: setup", lambda: local.prepare(session))
    session.guarded(MAIN_DNSCOCK_CASES, "dnscock against the private engine", session.start_main)
    session.guarded(["local"], "local", lambda: local.run(session, names))
    session.guarded(["forward-uncached"], "forward-uncached", lambda: forward.run_uncached(session))
    session.guarded(["forward-cached"], "forward-cached", lambda: forward.run_cached(session))
    session.guarded(["events"], "events", lambda: events.run(session))
    session.stop_main()
    session.guarded(FAKE_ENGINE_CASES, "fake engines", session.start_fake_engines)
    session.guarded(["scale"], "scale", lambda: scale.run(session))
    session.guarded(["startup"], "startup", lambda: startup.run(session))
    if session.selected("swarm"):
        session.stop_engine()  # idle, but its dockerd and containers need not share the machine with the swarm
        session.guarded(["swarm"], "swarm", lambda: swarm.run(session))


def cleanup(session: Session) -> None:
    """Stops every server the run started: dnscock, the other children, the private swarm and engine."""
    try:
        session.stop_main()
    except Exception as error:
        log.warning("cleanup: stopping dnscock: %s", error)
    session.processes.stop_all()
    swarm.stop_swarm(session)
    session.stop_engine()


def parse_options(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, help="seconds per dnsperf run (default 15; smoke 1)")
    parser.add_argument("--rounds", type=int, help="alternating dnscock/reference rounds (default 3; smoke 1)")
    parser.add_argument("--containers", type=int, help="real containers of the local case (default 200; smoke 6)")
    parser.add_argument("--proxy-names", type=int,
                        help="names in Traefik rules on the local case's containers, served by a Traefik container "
                        "(default 1000; smoke 12; 0: none)")
    parser.add_argument("--scale-containers", type=int,
                        help="containers of the large fake engine (default 10000; smoke 200)")
    parser.add_argument("--sync-containers", type=int,
                        help="real containers for the startup case (default 200; smoke 10)")
    parser.add_argument("--events", type=int,
                        help="docker run/stop iterations of the events case (default 20; smoke 3)")
    parser.add_argument("--swarm-events", type=int,
                        help="tasks the swarm case scales up one at a time, then down (default 20; smoke 3)")
    parser.add_argument("--swarm-tasks", type=int,
                        help="running tasks of the swarm case's fake manager (default 1000; smoke 200)")
    parser.add_argument("--swarm-services", type=int,
                        help="services those tasks are spread over (default 50; smoke 10)")
    parser.add_argument("--swarm-seconds", type=int,
                        help="seconds the swarm case measures dnscock's CPU for (default 20; smoke 5)")
    parser.add_argument("--cases", default=",".join(CASES),
                        help=f"comma-separated, of: {', '.join(CASES)} (default all)")
    parser.add_argument("--json", default="bench-results.json", type=Path, help="where the figures go "
                        "(default bench-results.json)")
    parser.add_argument("--dnscock", type=Path, default=ROOT, metavar="DIR",
                        help="the checkout whose dnscock is measured (default this one; for an earlier commit, a git "
                        "worktree of it: the same bench, the same machine)")
    parser.add_argument("--smoke", action="store_true",
                        help="quick run for CI: small sizes, no bars, fails only when a case produced no figures")
    args = parser.parse_args(argv)
    base = SMOKE if args.smoke else DEFAULTS
    values = {key: getattr(args, key) if getattr(args, key) is not None else default for key, default in base.items()}
    cases = [case.strip() for case in args.cases.split(",") if case.strip()]
    unknown = [case for case in cases if case not in CASES]
    if unknown or not cases:
        parser.error(f"unknown case(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(CASES)}")
    for key in ("seconds", "rounds", "events", "swarm_events", "swarm_tasks", "swarm_services", "swarm_seconds"):
        if values[key] < 1:
            parser.error(f"--{key.replace('_', '-')} must be at least 1")
    if values["containers"] < 2:
        parser.error("--containers must be at least 2 (half redis, half web)")
    if values["proxy_names"] < 0:
        parser.error("--proxy-names must be 0 or more")
    if values["scale_containers"] < 1 or values["sync_containers"] < 1:
        parser.error("--scale-containers and --sync-containers must be at least 1")
    if not (args.dnscock / "dnscock" / "__main__.py").is_file():
        parser.error(f"--dnscock: {args.dnscock} holds no dnscock/ package")
    Dnscock.source = args.dnscock.resolve()
    return Options(cases=[case for case in CASES if case in cases], json_path=args.json, smoke=args.smoke, **values)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    need_engine = any(case in ENGINE_CASES or case == "swarm" for case in options.cases)
    if os.geteuid() != 0:
        print("bench: must run as root: it starts a private Docker engine (dockerd on its own socket and bridge) "
              "and installs dnsperf and dnsmasq with apt-get when missing. Run `sudo make bench`.", file=sys.stderr)
        return 2
    if (os.cpu_count() or 1) < 2:
        print("bench: needs at least 2 CPUs (the server under test on CPU 1, dnsperf on CPU 0)", file=sys.stderr)
        return 2
    progress.show()
    try:
        ensure_packages(need_engine)
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, interrupt)
    started = time.monotonic()
    tmp = temp_dir("dcb")
    session = Session(options, tmp, Processes())
    info = machine_info(Dnscock.source)
    log.info("cases %s; temp dir %s; dnscock %s%s", ", ".join(options.cases), tmp, info["dnscock_commit"],
             " (dnscock/ has uncommitted changes)" if info["dnscock_worktree_dirty"] else "")
    interrupted = False
    try:
        run_cases(session)
    except KeyboardInterrupt:
        interrupted = True
        log.info("interrupted; cleaning up")
    finally:
        clean_up(lambda: cleanup(session), tmp)
    if interrupted:
        return 130
    elapsed = time.monotonic() - started
    results = session.results
    bars = [] if options.smoke else judge(bar_values(results), options.scale_containers, options.swarm_tasks)
    problems = report.smoke_problems(options, results) if options.smoke else []
    document = report.document(options, info, elapsed, results, session.errors, session.warnings, bars, problems)
    options.json_path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    print(report.text(options, results, session.errors, bars))
    for warning in session.warnings:
        print(f"warning: {warning}")
    print(f"\n{len(options.cases)} case(s) in {elapsed:.0f} s; figures in {options.json_path}")
    if session.errors:
        print(f"bench: {len(session.errors)} case(s) could not run: {', '.join(sorted(session.errors))}",
              file=sys.stderr)
        return 1
    if problems:
        print("bench: smoke check failed:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
