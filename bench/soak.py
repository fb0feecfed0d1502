"""Soak test: dnscock under steady load and container churn for minutes; does anything leak or fail?

    make soak SOAK_ARGS="..."   (.venv/bin/python -m bench.soak [--minutes 10] [--containers 20] [--json PATH])

As root (it starts the tests' private Docker engine). It starts:

- a private Docker engine (tests/support/private_engine.py) with ``--containers``
  busybox containers of three images (``redis``, ``web``, ``db``);
- dnsmasq as the upstream, answering every name under ``fwd.test`` with
  192.0.2.1 (TTL 1 s, so dnscock's forward cache keeps turning over) and
  NXDOMAIN under ``nx.test`` (no SOA: never cached), like the bench's upstream;
- dnscock (``python -m dnscock``) alone on CPU 1 (taskset), with
  ``-http=127.0.0.1:<free port>`` when it takes the option (else without it).

dnsperf, dnsmasq, the engine and this script share CPU 0. A short dnsperf
run (``--probe-seconds``) first measures dnscock's most queries a second
for the query mix; then dnsperf runs at ``--load`` (80%) of that (``-Q``)
for ``--minutes``, while a container is stopped, started, run or removed
every ``--churn-interval`` seconds. The mix: local names
(``<container>.<image>.docker``, including containers that come and go,
and ``<image>.docker``), forwarded names asked often (answered from
dnscock's cache most of the time), forwarded names asked rarely (a miss
each time), and forwarded NXDOMAIN names.

Every ``--sample-interval`` seconds it samples dnscock's VmRSS
(/proc/PID/status), its open file descriptors and sockets (/proc/PID/fd),
its CPU use, and, when ``/metrics`` answers, the ``dnscock_greenlets``
gauge (without it, the /proc figures alone). At the end it prints the
samples and the verdicts, and writes them to ``--json``:

- no server errors: dnsperf counted 0 SERVFAIL and lost 0 queries (dnsperf
  counts a query unanswered within its 5 s timeout as lost);
- RSS flat: after the warm-up (``--warmup``, default 20% of the run and at
  most 2 minutes) no sample exceeds the first one after it by more than 5%;
- no growth in open file descriptors, sockets or greenlets: the last
  sample after the warm-up is at most the largest of the first three after
  it, plus a small allowance (2 descriptors; 10% or 5 greenlets);
- dnscock still running, with no traceback and no ERROR line in its log.

Exit code: 0 when every verdict passes, 1 when one fails or the soak could
not run, 2 for a usage problem (not root), 130 when interrupted. Ctrl-C
(or SIGTERM) at any point stops dnsperf, dnscock and dnsmasq, removes the
containers and stops the engine. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import progress
from bench.contenders import Dnscock, Dnsmasq
from bench.dnsclient import ask
from bench.dnsperf import parse_dnsperf
from bench.errors import BenchError
from bench.packages import ensure_packages
from bench.processes import (
    LOAD_CPU,
    SERVER_CPU,
    Processes,
    clean_up,
    cpu_seconds,
    interrupt,
    read_rss_kib,
    temp_dir,
)
from tests.support.dnscock_process import rcode
from tests.support.ports import free_port

log = logging.getLogger("bench.soak")  # not __name__: "__main__" under python -m

IMAGES = ("redis", "web", "db")
FWD_ADDRESS = "192.0.2.1"
FWD_TTL = 1  # forwarded answers live a second in dnscock's cache: it keeps expiring and refilling
HOT_NAMES = 200  # forwarded names asked many times a second: mostly answered from the cache
COLD_NAMES = 30_000  # forwarded names asked once per pass through the query file: a miss each time (a
# pass takes longer than FWD_TTL below 100,000 queries a second)
NX_NAMES = 2000  # forwarded names that answer NXDOMAIN without an SOA: never cached
QUERY_LINES = 100_000
DNSPERF_CLIENTS, DNSPERF_OUTSTANDING = 10, 200
RSS_TOLERANCE = 0.05
FD_ALLOWANCE = 2
GREENLET_ALLOWANCE = (0.10, 5)  # the larger of 10% and 5 greenlets
BASELINE_SAMPLES = 3
_HTTP_LINE = re.compile(r"serving HTTP on http://(\S+):(\d+)")
_TROUBLE = re.compile(r"\bERROR\b|Traceback")
_INTERVAL = re.compile(r"^\d+\.\d+: ([\d.]+)$")


class SoakError(RuntimeError):
    """The soak cannot run; the message says why."""


@dataclass
class Sample:
    t: float  # seconds since the soak load started
    rss_kib: int
    fds: int
    sockets: int
    greenlets: float | None  # from /metrics, when it answers
    cpu_pct: float  # dnscock's CPU use since the previous sample
    dnsperf_qps: float | None  # dnsperf's own rate over its last interval
    containers: int  # running containers of the soak
    udp_drops: int  # datagrams dropped on arrival at dnscock's UDP sockets (receive buffer full) since the load began
    rcvbuf_errors: int  # the same for every UDP socket of the machine


@dataclass
class Soak:
    """Everything the soak started, so that cleanup finds it, and everything it measured."""

    options: argparse.Namespace
    tmp: Path
    processes: Processes = field(default_factory=Processes)
    engine: Any = None
    upstream: Dnsmasq | None = None
    dnscock: Dnscock | None = None
    http_port: int | None = None
    churn: Churn | None = None
    samples: list[Sample] = field(default_factory=list)
    probe: dict[str, Any] = field(default_factory=dict)
    load: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    loadavg: tuple[float, float, float] = field(default_factory=os.getloadavg)  # others' work skews the figures


# --- the engine and its churn ---------------------------------------------------------


class Churn:
    """Stops, starts, runs or removes one soak container every ``interval`` seconds, in a thread."""

    ACTIONS = ("stop", "start", "remove", "run")

    def __init__(self, engine: Any, names: Sequence[str], interval: float, seed: int = 11) -> None:
        self.engine, self.names, self.interval = engine, list(names), interval
        self.random = random.Random(seed)
        self.done: dict[str, int] = {action: 0 for action in self.ACTIONS}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="churn", daemon=True)

    def start(self) -> None:
        if self.interval > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=60)

    def running(self) -> int:
        try:
            return len(self.engine.client.containers.list(filters={"label": "soak=1"}))
        except Exception:
            return -1

    def _run(self) -> None:
        step = 0
        while not self._stop.wait(self.interval):
            action = self.ACTIONS[step % len(self.ACTIONS)]
            step += 1
            try:
                if self._act(action):
                    self.done[action] += 1
            except Exception as error:  # keep churning; report at the end
                self.errors.append(f"{action}: {type(error).__name__}: {error}")

    def _act(self, action: str) -> bool:
        containers = {c.name: c for c in self.engine.client.containers.list(all=True, filters={"label": "soak=1"})}
        running = [c for c in containers.values() if c.status == "running"]
        stopped = [c for c in containers.values() if c.status != "running"]
        if action == "stop" and running:
            self.random.choice(running).stop(timeout=2)
        elif action == "start" and stopped:
            self.random.choice(stopped).start()
        elif action == "remove" and containers:
            self.random.choice(stopped or running).remove(force=True)
        elif action == "run":
            free = [name for name in self.names if name not in containers]
            if not free:
                return False
            run_container(self.engine, self.random.choice(free))
        else:
            return False
        return True


def image_of(name: str) -> str:
    """Each soak container name has its image: ``soak07`` runs ``web``."""
    return IMAGES[int(name[4:]) % len(IMAGES)]


def run_container(engine: Any, name: str) -> Any:
    return engine.run(f"{image_of(name)}:latest", name=name, labels={"soak": "1"})


# --- sampling -------------------------------------------------------------------------


def open_descriptors(pid: int) -> tuple[int, int]:
    """(open file descriptors, of which sockets) of a process, from /proc/PID/fd."""
    fds = sockets = 0
    directory = f"/proc/{pid}/fd"
    for entry in os.listdir(directory):
        fds += 1
        with contextlib.suppress(OSError):
            if os.readlink(f"{directory}/{entry}").startswith("socket:"):
                sockets += 1
    return fds, sockets


def udp_drops(pid: int) -> int:
    """Datagrams the kernel dropped at the UDP sockets of a process (the ``drops`` of /proc/net/udp*)."""
    inodes = set()
    directory = f"/proc/{pid}/fd"
    for entry in os.listdir(directory):
        with contextlib.suppress(OSError):
            target = os.readlink(f"{directory}/{entry}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    drops = 0
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            next(lines, None)
            for line in lines:
                fields = line.split()
                if len(fields) >= 13 and fields[9] in inodes:
                    drops += int(fields[-1])
    return drops


def rcvbuf_errors() -> int:
    """The machine's UDP RcvbufErrors counter (/proc/net/snmp)."""
    with open("/proc/net/snmp") as snmp:
        rows = [line.split() for line in snmp if line.startswith("Udp:")]
    return int(rows[1][rows[0].index("RcvbufErrors")]) if len(rows) >= 2 else 0


def scrape_greenlets(port: int | None) -> float | None:
    """``dnscock_greenlets`` from /metrics, or None when there is no /metrics (or no such gauge)."""
    if port is None:
        return None
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as response:
            text = response.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError, ValueError):
        return None
    match = re.search(r"^dnscock_greenlets(?:\{[^}]*\})?\s+([0-9.eE+-]+)\s*$", text, re.MULTILINE)
    return float(match.group(1)) if match else None


# --- the run --------------------------------------------------------------------------


def start_engine(soak: Soak) -> list[str]:
    from tests.support.private_engine import PrivateEngine

    log.info("starting a private Docker engine")
    engine = PrivateEngine(soak.tmp / "e")
    soak.engine = engine  # stopped in cleanup even when start fails half-way
    engine.start()
    # Its daemons share CPU 0 with the load; CPU 1 stays dnscock's. Containers inherit it.
    pin_all_threads(engine.process.pid, LOAD_CPU)
    with contextlib.suppress(OSError, ValueError):
        pin_all_threads(int((engine.root / "exec" / "containerd" / "containerd.pid").read_text()), LOAD_CPU)
    for image in IMAGES:
        engine.ensure_image(f"{image}:latest")
    count = soak.options.containers
    names = [f"soak{i:02d}" for i in range(1, count + count // 2 + 1)]  # a third more names than containers
    log.info("running %s containers", count)
    for name in names[:count]:
        run_container(engine, name)
    return names


def pin_all_threads(pid: int, cpu: str) -> None:
    subprocess.run(["taskset", "-a", "-pc", cpu, str(pid)], capture_output=True)


def start_upstream(soak: Soak) -> None:
    soak.upstream = Dnsmasq(soak.processes, soak.tmp, "upstream", LOAD_CPU,
                            [f"--address=/fwd.test/{FWD_ADDRESS}", "--address=/nx.test/", "--cache-size=0",
                             f"--local-ttl={FWD_TTL}"], probe="probe.fwd.test")
    log.info("upstream dnsmasq on 127.0.0.1:%s (PID %s, CPU %s)", soak.upstream.port, soak.upstream.pid, LOAD_CPU)


def start_dnscock(soak: Soak) -> None:
    assert soak.engine is not None and soak.upstream is not None
    http_port = free_port()
    dnscock = Dnscock(soak.processes, "soak", soak.engine.url, soak.upstream.port, verbose=True,
                      extra=[f"-http=127.0.0.1:{http_port}"])
    try:
        dnscock.wait_listening()
    except BenchError:
        if dnscock.process.poll() != 2 or "http" not in dnscock.log_tail().lower():
            raise
        soak.notes.append("dnscock does not take -http yet: greenlets not sampled, /proc figures only")
        log.info("%s", soak.notes[-1])
        dnscock = Dnscock(soak.processes, "soak", soak.engine.url, soak.upstream.port, verbose=True)
        http_port = None
        dnscock.wait_listening()
    soak.dnscock = dnscock
    seconds, how = dnscock.wait_synced()
    found = dnscock.find(_HTTP_LINE)
    if found is not None:
        http_port = int(found[1].group(2))
    soak.http_port = http_port
    if http_port is not None and scrape_greenlets(http_port) is None:
        soak.notes.append(f"/metrics on 127.0.0.1:{http_port} gives no dnscock_greenlets: /proc figures only")
        log.info("%s", soak.notes[-1])
    log.info("dnscock (PID %s, CPU %s) on 127.0.0.1:%s, synced in %.2fs (%s); HTTP %s", dnscock.pid, SERVER_CPU,
             dnscock.port, seconds, how, f"on 127.0.0.1:{http_port}" if http_port else "off")


def write_queries(soak: Soak, names: Sequence[str]) -> Path:
    """The query mix, shuffled: local names, hot and cold forwarded names, forwarded NXDOMAIN."""
    rng = random.Random(5)
    local = [f"{name}.{image_of(name)}.docker" for name in names] + [f"{image}.docker" for image in IMAGES]
    cold = [f"c{i}.fwd.test" for i in range(COLD_NAMES)]
    nx = [f"n{i}.nx.test" for i in range(NX_NAMES)]
    hot_count = QUERY_LINES * 3 // 10
    local_count = QUERY_LINES - hot_count - len(cold) - len(nx)
    lines = ([local[i % len(local)] for i in range(local_count)] + cold + nx
             + [f"h{i % HOT_NAMES}.fwd.test" for i in range(hot_count)])
    rng.shuffle(lines)
    path = soak.tmp / "soak.queries"
    path.write_text("".join(f"{line} A\n" for line in lines))
    path.chmod(0o644)
    soak.load["mix"] = {"local": local_count, "forwarded_hot": hot_count, "forwarded_cold": len(cold),
                        "forwarded_nxdomain": len(nx), "distinct_local_names": len(local)}
    return path


def check_answers(soak: Soak, names: Sequence[str]) -> None:
    """dnscock answers a local and a forwarded name before the load starts."""
    dnscock = soak.dnscock
    assert dnscock is not None
    name = f"{names[0]}.{image_of(names[0])}.docker"
    for qname, expect in ((name, "NOERROR"), ("check.fwd.test", "NOERROR"), ("check.nx.test", "NXDOMAIN")):
        reply = ask(dnscock.port, qname)
        if rcode(reply) != expect or (expect == "NOERROR" and not reply.answer):
            raise SoakError(f"{qname}: dnscock answers {rcode(reply)} {reply.answer}, expected {expect}")


def dnsperf_command(soak: Soak, query_file: Path, seconds: int, qps: float | None) -> list[str]:
    assert soak.dnscock is not None
    command = ["taskset", "-c", LOAD_CPU, "dnsperf", "-s", "127.0.0.1", "-p", str(soak.dnscock.port),
               "-d", str(query_file), "-l", str(seconds), "-c", str(DNSPERF_CLIENTS), "-q", str(DNSPERF_OUTSTANDING)]
    if qps is not None:
        command += ["-Q", str(int(qps)), "-S", str(soak.options.sample_interval)]
    return command


def measure_max_qps(soak: Soak, query_file: Path) -> float:
    assert soak.dnscock is not None
    seconds = soak.options.probe_seconds
    log.info("measuring dnscock's most queries a second: dnsperf for %ss, no limit", seconds)
    cpu_before, wall_before = cpu_seconds(soak.dnscock.pid), time.monotonic()
    process = soak.processes.spawn(dnsperf_command(soak, query_file, seconds, None),
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = process.communicate(timeout=seconds + 60)
    finally:
        soak.processes.stop(process)
    if process.returncode != 0:
        raise SoakError(f"dnsperf exited with code {process.returncode}:\n{output[-1500:]}")
    figures = parse_dnsperf(output)
    figures["dnscock_cpu_pct"] = 100 * (cpu_seconds(soak.dnscock.pid) - cpu_before) / (time.monotonic() - wall_before)
    soak.probe = figures
    log.info("max: %s queries/s (%.0f%% CPU, lost %s, %s)", f"{figures['qps']:,.0f}", figures["dnscock_cpu_pct"],
             figures["lost"], figures["codes"])
    return figures["qps"]


def run_load(soak: Soak, query_file: Path, target_qps: float, names: Sequence[str]) -> None:
    dnscock, engine = soak.dnscock, soak.engine
    assert dnscock is not None and engine is not None
    seconds = int(soak.options.minutes * 60)
    interval = soak.options.sample_interval
    log.info("soak: dnsperf -Q %s for %ss, churning a container every %gs, sampling every %gs",
             f"{target_qps:,.0f}", seconds, soak.options.churn_interval, interval)
    soak.churn = Churn(engine, names, soak.options.churn_interval)  # interval 0: never churns
    output: list[str] = []
    dnsperf_rates: list[float] = []
    process = soak.processes.spawn(dnsperf_command(soak, query_file, seconds, target_qps),
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            match = _INTERVAL.match(line.strip())
            if match:
                dnsperf_rates.append(float(match.group(1)))

    reader = threading.Thread(target=read, name="dnsperf-output", daemon=True)
    reader.start()
    started = time.monotonic()
    soak.churn.start()
    cpu_before, wall_before = cpu_seconds(dnscock.pid), started
    errors_before, drops_before = rcvbuf_errors(), udp_drops(dnscock.pid)
    next_sample = started + 0.5  # just after dnsperf prints its rate for the interval
    try:
        while True:
            next_sample += interval
            try:
                process.wait(timeout=max(0.0, next_sample - time.monotonic()))
                break  # dnsperf finished
            except subprocess.TimeoutExpired:
                pass
            if dnscock.process.poll() is not None:
                raise SoakError(f"dnscock exited with code {dnscock.process.returncode}:\n{dnscock.log_tail()}")
            now = time.monotonic()
            cpu_now = cpu_seconds(dnscock.pid)
            fds, sockets = open_descriptors(dnscock.pid)
            sample = Sample(
                t=round(now - started, 1), rss_kib=read_rss_kib(dnscock.pid), fds=fds, sockets=sockets,
                greenlets=None if soak.options.no_metrics else scrape_greenlets(soak.http_port),
                cpu_pct=round(100 * (cpu_now - cpu_before) / (now - wall_before), 1),
                dnsperf_qps=dnsperf_rates[-1] if dnsperf_rates else None, containers=soak.churn.running(),
                udp_drops=udp_drops(dnscock.pid) - drops_before, rcvbuf_errors=rcvbuf_errors() - errors_before,
            )
            cpu_before, wall_before = cpu_now, now
            soak.samples.append(sample)
            log.info("t=%6.0fs RSS %6.1f MiB, fds %s, sockets %s, greenlets %s, CPU %.0f%%, dnsperf %s q/s, "
                     "%s running, UDP drops %s (machine %s)", sample.t, sample.rss_kib / 1024, sample.fds,
                     sample.sockets, fmt(sample.greenlets), sample.cpu_pct, fmt(sample.dnsperf_qps),
                     sample.containers, sample.udp_drops, sample.rcvbuf_errors)
    finally:
        soak.churn.stop()
    reader.join(timeout=10)
    text = "".join(output)
    if process.returncode != 0:
        raise SoakError(f"dnsperf exited with code {process.returncode}:\n{text[-1500:]}")
    soak.processes.stop(process)
    figures = parse_dnsperf(text)
    figures.update(target_qps=target_qps, seconds=seconds, dnsperf_interval_qps=dnsperf_rates,
                   dnscock_udp_drops=udp_drops(dnscock.pid) - drops_before, machine_rcvbuf_errors=rcvbuf_errors() - errors_before,
                   churn=dict(soak.churn.done), churn_errors=soak.churn.errors[:20])
    soak.load.update(figures)
    log.info("soak load done: %s q/s, lost %s, %s", f"{figures['qps']:,.0f}", figures["lost"], figures["codes"])


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


# --- verdicts -------------------------------------------------------------------------


def verdicts(soak: Soak) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []

    def verdict(bar: str, passed: bool | None, detail: str) -> None:
        results.append({"bar": bar, "result": "n/a" if passed is None else "PASS" if passed else "FAIL",
                        "detail": detail})

    load = soak.load
    if "codes" in load:
        servfail = load["codes"].get("SERVFAIL", 0)
        verdict("no server errors", servfail == 0 and load["lost"] == 0,
                f"SERVFAIL {servfail}, lost {load['lost']} of {load['sent']:,} sent; dropped at dnscock's UDP "
                f"sockets (receive buffer full) {load['dnscock_udp_drops']}, at any UDP socket "
                f"{load['machine_rcvbuf_errors']}")
    else:
        verdict("no server errors", False, "the load did not complete")
    warmup = soak.options.warmup if soak.options.warmup is not None else min(120.0, 0.2 * soak.options.minutes * 60)
    after = [sample for sample in soak.samples if sample.t >= warmup]
    if len(after) < 2:
        verdict("RSS flat after warm-up", None, f"fewer than 2 samples after the {warmup:.0f}s warm-up")
        return results + checks_of_log(soak)
    base = after[0].rss_kib
    peak = max(sample.rss_kib for sample in after)
    verdict(f"RSS flat after warm-up (within {RSS_TOLERANCE:.0%})", peak <= base * (1 + RSS_TOLERANCE),
            f"{base / 1024:.1f} MiB at t={after[0].t:.0f}s, peak {peak / 1024:.1f} MiB ({(peak / base - 1):+.1%}), "
            f"last {after[-1].rss_kib / 1024:.1f} MiB; slope {slope(after, 'rss_kib') / 1024 * 60:+.2f} MiB/min")
    window = after[:BASELINE_SAMPLES]
    for key, label in (("fds", "open file descriptors"), ("sockets", "open sockets")):
        allowed = max(getattr(sample, key) for sample in window) + FD_ALLOWANCE
        last = getattr(after[-1], key)
        verdict(f"no growth in {label}", last <= allowed,
                f"last {last}, baseline max {allowed - FD_ALLOWANCE} (+{FD_ALLOWANCE} allowed); "
                f"range {min(getattr(s, key) for s in after)}-{max(getattr(s, key) for s in after)}")
    greenlets = [sample.greenlets for sample in after if sample.greenlets is not None]
    if len(greenlets) < 2:
        verdict("no growth in greenlets", None, "no /metrics (dnscock_greenlets) to read")
    else:
        baseline = max(g for g in (s.greenlets for s in window) if g is not None) if any(
            s.greenlets is not None for s in window) else greenlets[0]
        allowed = baseline + max(baseline * GREENLET_ALLOWANCE[0], GREENLET_ALLOWANCE[1])
        verdict("no growth in greenlets", greenlets[-1] <= allowed,
                f"last {greenlets[-1]:.0f}, baseline max {baseline:.0f} (up to {allowed:.0f} allowed); "
                f"range {min(greenlets):.0f}-{max(greenlets):.0f}")
    return results + checks_of_log(soak)


def checks_of_log(soak: Soak) -> list[dict[str, Any]]:
    dnscock = soak.dnscock
    if dnscock is None:
        return [{"bar": "dnscock alive, no traceback or ERROR", "result": "FAIL", "detail": "never started"}]
    lines = [line for _, line in list(dnscock.lines)]  # a copy: the reader thread appends meanwhile
    trouble = [line for line in lines if _TROUBLE.search(line)]
    alive = dnscock.process.poll() is None
    warnings = sum(1 for line in lines if " WARNING " in line)
    detail = (f"{'running' if alive else f'exited with code {dnscock.process.returncode}'}; "
              f"{len(trouble)} traceback/ERROR lines, {warnings} WARNING lines, {len(lines)} lines in all")
    if trouble:
        detail += "; first: " + trouble[0][:200]
    return [{"bar": "dnscock alive, no traceback or ERROR", "result": "PASS" if alive and not trouble else "FAIL",
             "detail": detail}]


def slope(samples: Sequence[Sample], key: str) -> float:
    """Least-squares growth of ``key`` per second."""
    xs = [sample.t for sample in samples]
    ys = [float(getattr(sample, key)) for sample in samples]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / spread if spread else 0.0


def report(soak: Soak, judged: list[dict[str, Any]], elapsed: float) -> str:
    out = [f"dnscock soak: {soak.options.minutes:g} min at {soak.options.load:.0%} of max QPS, "
           f"{soak.options.containers} containers churned every {soak.options.churn_interval:g}s "
           f"(dnscock on CPU {SERVER_CPU}, load on CPU {LOAD_CPU}; load average at start "
           f"{' '.join(f'{x:.2f}' for x in soak.loadavg)})", ""]
    if soak.probe:
        out.append(f"max QPS (dnsperf, {soak.options.probe_seconds}s, no limit): {soak.probe['qps']:,.0f} "
                   f"(dnscock CPU {soak.probe['dnscock_cpu_pct']:.0f}%, latency {soak.probe['latency_ms']:.2f} ms)")
    if "qps" in soak.load:
        load = soak.load
        codes = ", ".join(f"{code} {count:,}" for code, count in load["codes"].items())
        out.append(f"soak load: target {load['target_qps']:,.0f} q/s, achieved {load['qps']:,.0f} q/s over "
                   f"{load['seconds']}s; sent {load['sent']:,}, completed {load['completed']:,}, lost {load['lost']}; "
                   f"{codes}; latency {load['latency_ms']:.2f} ms (sd {load['stddev_ms']:.2f})")
        out.append(f"churn: {', '.join(f'{k} {v}' for k, v in load['churn'].items())}"
                   f"{'; errors: ' + '; '.join(load['churn_errors'][:3]) if load['churn_errors'] else ''}")
    if soak.samples:
        out += ["", "samples (UDP drops: dnscock's sockets / the machine's, so far):",
                "     t s   RSS MiB   fds  sockets  greenlets  CPU %  dnsperf q/s  running  UDP drops"]
        for s in soak.samples:
            out.append(f"  {s.t:6.0f}  {s.rss_kib / 1024:8.1f}  {s.fds:4d}  {s.sockets:7d}  {fmt(s.greenlets):>9}  "
                       f"{s.cpu_pct:5.0f}  {fmt(s.dnsperf_qps):>11}  {s.containers:7d}  {s.udp_drops}/{s.rcvbuf_errors}")
    for note in soak.notes:
        out.append(f"note: {note}")
    out += ["", "verdicts:"]
    width = max((len(v["bar"]) for v in judged), default=10)
    for v in judged:
        out.append(f"  {v['result']:4}  {v['bar']:<{width}}  {v['detail']}")
    out.append(f"\n{elapsed:.0f} s in all")
    return "\n".join(out)


# --- main -----------------------------------------------------------------------------


def cleanup(soak: Soak) -> None:
    if soak.churn is not None:
        with contextlib.suppress(Exception):
            soak.churn.stop()
    soak.processes.stop_all()  # dnsperf, dnscock, dnsmasq
    if soak.engine is not None:
        log.info("removing the containers and stopping the private engine")
        try:
            soak.engine.stop()
        except Exception as error:
            log.warning("cleanup: stopping the private engine at %s: %s", soak.engine.root, error)
        soak.engine = None


def run(soak: Soak) -> None:
    ensure_packages(need_engine=True)
    names = start_engine(soak)
    start_upstream(soak)
    start_dnscock(soak)
    assert soak.dnscock is not None
    check_answers(soak, names)
    query_file = write_queries(soak, names)
    max_qps = measure_max_qps(soak, query_file)
    run_load(soak, query_file, max_qps * soak.options.load, names)


def parse_options(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the soak load (default 10)")
    parser.add_argument("--containers", type=int, default=20, help="running containers at the start (default 20)")
    parser.add_argument("--load", type=float, default=0.8, help="fraction of the measured max QPS (default 0.8)")
    parser.add_argument("--probe-seconds", type=int, default=10, help="the max-QPS dnsperf run (default 10)")
    parser.add_argument("--churn-interval", type=float, default=3.0,
                        help="seconds between container changes (default 3; 0: no churn)")
    parser.add_argument("--no-metrics", action="store_true",
                        help="do not scrape /metrics (a scrape counts greenlets by walking dnscock's heap)")
    parser.add_argument("--sample-interval", type=int, default=10, help="seconds between samples (default 10)")
    parser.add_argument("--warmup", type=float, help="seconds left out of the flatness verdicts "
                        "(default 20%% of the run, at most 120)")
    parser.add_argument("--json", type=Path, default=Path("soak-results.json"),
                        help="where samples and verdicts go (default soak-results.json)")
    options = parser.parse_args(argv)
    if options.minutes <= 0 or options.containers < 3 or not 0 < options.load <= 1:
        parser.error("--minutes must be > 0, --containers at least 3, --load in (0, 1]")
    if options.sample_interval < 1 or options.churn_interval < 0 or options.probe_seconds < 1:
        parser.error("--sample-interval and --probe-seconds must be at least 1, --churn-interval >= 0")
    return options


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    if os.geteuid() != 0:
        print("soak: must run as root: it starts a private Docker engine", file=sys.stderr)
        return 2
    if (os.cpu_count() or 1) < 2:
        print("soak: needs at least 2 CPUs (dnscock on CPU 1, the load on CPU 0)", file=sys.stderr)
        return 2
    progress.show()
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)  # also when started in the background (SIGINT ignored then)
    os.sched_setaffinity(0, {int(LOAD_CPU)})  # this script and its threads stay off dnscock's CPU
    started = time.monotonic()
    tmp = temp_dir("dcsoak")
    soak = Soak(options, tmp)
    failure, interrupted = "", False
    try:
        run(soak)
    except KeyboardInterrupt:
        interrupted = True
        log.info("interrupted; cleaning up")
    except (SoakError, BenchError) as error:
        failure = str(error)
        log.error("ERROR: %s", failure)
    finally:
        judged = verdicts(soak) if not interrupted else []
        clean_up(lambda: cleanup(soak), tmp)
    if interrupted:
        return 130
    elapsed = time.monotonic() - started
    document = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "options": {key: str(value) if isinstance(value, Path) else value for key, value in vars(options).items()},
        "elapsed_s": elapsed,
        "loadavg_at_start": soak.loadavg,
        "max_qps_probe": soak.probe,
        "load": soak.load,
        "samples": [asdict(sample) for sample in soak.samples],
        "verdicts": judged,
        "notes": soak.notes,
        "error": failure,
    }
    options.json.write_text(json.dumps(document, indent=2, default=str) + "\n")
    print(report(soak, judged, elapsed))
    print(f"figures in {options.json}")
    if failure:
        print(f"soak: could not run to the end: {failure}", file=sys.stderr)
        return 1
    return 0 if all(v["result"] != "FAIL" for v in judged) else 1


if __name__ == "__main__":
    sys.exit(main())
