"""Measure dnscock against dnsmasq: ``make bench`` (``python -m bench.run [--smoke] [--cases ...]``).

Cases (``--cases``, comma-separated; all by default):

- ``local``: names of real containers on a private Docker engine; dnscock
  against dnsmasq answering the same names from a hosts file.
- ``forward-uncached``: unique names, so every query goes upstream; dnscock
  forwarding to an upstream dnsmasq against dnsmasq doing the same job
  (``dnsmasq-forwarding``: cache off, forwarding to the same upstream; the
  ratio and the bar), and against the upstream queried directly
  (``dnsmasq-direct``: one receive and one send a query instead of two each;
  a second ratio, shown without a bar).
- ``forward-cached``: 1000 names warmed through dnscock's forward cache;
  dnscock against the upstream dnsmasq queried directly (``dnsmasq-direct``).
- ``scale``: local names from a fake engine with 10 and with 10,000
  containers (bench/fake_engine.py); QPS at 10,000 against QPS at 10.
- ``events``: ``docker run`` / ``docker stop`` on the private engine: time
  from the engine's ``start`` / ``die`` event to the answer / to no address
  (NXDOMAIN, or NODATA while dnscock keeps a stopped container's names).
- ``startup``: time from launching dnscock to its first full sync, for real
  containers and for the 10,000-container fake engine, and dnscock's RSS.
- ``swarm``: on a private two-node swarm (tests/support/swarm.py), a
  service scaled up one task at a time, then down: time from the manager
  first listing a task running to dnscock answering it, and from the task
  leaving the manager's running set to dnscock no longer answering it; and
  dnscock's CPU, idle but for its task polls, following a fake manager
  (bench/fake_engine.py) with 1000 tasks against one with 10.

Every server under test runs alone on CPU 1, dnsperf on CPU 0. Queries and
answers only travel over 127.0.0.1. The figures go to a table on stdout and
to a JSON file (``--json``), with every dnsperf run and the ratio of each
round, whose lowest and highest the table shows (the run-to-run noise); the
bars are marked PASS/FAIL but never change the exit code: 1 only when a case
could not run, 2 for a usage problem (not root). Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import contextlib
import json
import math
import os
import platform
import random
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tests.support.processes import stop_process

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable

CASES = ("local", "forward-uncached", "forward-cached", "scale", "events", "startup", "swarm")
MAIN_DNSCOCK_CASES = {"local", "forward-uncached", "forward-cached", "events"}
ENGINE_CASES = MAIN_DNSCOCK_CASES | {"startup"}
FAKE_ENGINE_CASES = {"scale", "startup"}

SERVER_CPU = "1"  # the server under test, alone
LOAD_CPU = "0"  # dnsperf, the upstream of dnscock, the fake engines, the bench's pollers

DNSMASQ = "/usr/sbin/dnsmasq"
DNSMASQ_COMMON = [
    "--keep-in-foreground", "--conf-file=/dev/null", "--listen-address=127.0.0.1", "--bind-interfaces",
    "--log-facility=/dev/null", "--no-resolv", "--no-hosts",
]
FWD_ADDRESS = "192.0.2.1"
FWD_TTL = 3600  # so that dnscock's forward cache keeps the answers for the whole run
# The names of the references in the table and the JSON.
FORWARDING = "dnsmasq-forwarding"  # dnsmasq with its cache off, forwarding to the upstream: the same job as dnscock
DIRECT = "dnsmasq-direct"  # the upstream dnsmasq itself, queried directly (moved to the server CPU meanwhile)
COMPARED_CASES = ("local", "forward-uncached", "forward-cached", "scale")  # dnscock's QPS against a reference's
UNCACHED_NAMES_PER_SECOND = 80_000
CACHED_NAMES = 1000
SCALE_NAMES = 1000
SMALL_ENGINE = 10
UNSATURATED_CPU_PCT = 70  # below this the server under test was not the bottleneck
EVENT_DEADLINE = 5.0  # seconds after the event within which the answer must change
SWARM_DEADLINE = 10.0  # seconds after a task starts running / leaves the running set within which dnscock must follow
SWARM_SERVICE = "benchweb"  # the service scaled on the private swarm, on the attachable overlay SWARM_NETWORK
SWARM_NETWORK = "benchnet"
MANAGER_POLL = 0.02  # seconds between two of the bench's own task listings on the manager
SWARM_QUERY_INTERVAL = 0.01  # seconds between two queries of a task's name
SWARM_BASELINE_TASKS = 10  # the fake manager the CPU of --swarm-tasks is compared with
SWARM_CPU_SETTLE = 1.0  # seconds between dnscock's first swarm listing and the CPU window
SWARM_STOP_ATTEMPTS = 3

DEFAULTS = dict(seconds=15, rounds=2, containers=50, scale_containers=10_000, sync_containers=200, events=20,
                swarm_events=20, swarm_tasks=1000, swarm_services=50, swarm_seconds=20)
SMOKE = dict(seconds=1, rounds=1, containers=6, scale_containers=200, sync_containers=10, events=3,
             swarm_events=3, swarm_tasks=200, swarm_services=10, swarm_seconds=5)

BARS = {  # case key -> (label, comparison, limit)
    "local": ("local ratio", ">=", 0.8),
    "forward-uncached": ("forward-uncached ratio (vs dnsmasq-forwarding)", ">=", 0.9),
    "forward-cached": ("forward-cached ratio", ">=", 0.8),
    "scale": ("scale ratio ({n}/10)", ">=", 0.9),
    "events-start": ("event->answer p50 ms (start)", "<", 20.0),
    "events-stop": ("event->answer p50 ms (stop)", "<", 20.0),
    "startup-fake": ("sync of {n} containers, s", "<", 3.0),
    "rss": ("dnscock VmRSS MiB (max)", "<=", 60.0),
    "swarm-start-p50": ("swarm: task running -> answer p50 ms", "<", 1000.0),
    "swarm-start-max": ("swarm: task running -> answer max ms", "<", 2000.0),
    "swarm-leave-max": ("swarm: task out of the running set -> no answer max ms", "<", 2000.0),
    "swarm-cpu": ("swarm: dnscock CPU % of one core, {tasks} tasks", "<", 5.0),
}

_STARTED = time.monotonic()


class BenchError(RuntimeError):
    """A case cannot run or its servers disagree; the message says why."""


def say(message: str) -> None:
    print(f"[{time.monotonic() - _STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


# --- processes and ports --------------------------------------------------------------


class Processes:
    """Every child of the bench, each in a session of its own, ended by PID."""

    def __init__(self) -> None:
        self.live: list[subprocess.Popen] = []

    def spawn(self, command: Sequence[str], **kwargs: Any) -> subprocess.Popen:
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        process = subprocess.Popen(list(command), start_new_session=True, **kwargs)
        self.live.append(process)
        return process

    def stop(self, process: subprocess.Popen, timeout: float = 10.0) -> int | None:
        stop_process(process, timeout)
        if process in self.live:
            self.live.remove(process)
        return process.returncode

    def stop_all(self) -> None:
        for process in reversed(list(self.live)):
            try:
                self.stop(process, timeout=5)
            except Exception as error:  # keep cleaning up the others
                say(f"cleanup: cannot stop PID {process.pid}: {error}")


_used_ports: set[int] = set()


def free_port() -> int:
    """A loopback port free for both UDP and TCP right now (bound to 0, then closed)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            if port in _used_ports:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
        _used_ports.add(port)
        return port
    raise BenchError("no free loopback port for UDP and TCP")


def pin(pid: int, cpu: str) -> None:
    result = subprocess.run(["taskset", "-pc", cpu, str(pid)], capture_output=True, text=True)
    if result.returncode != 0:
        raise BenchError(f"taskset -pc {cpu} {pid} failed: {result.stderr.strip()}")


@contextlib.contextmanager
def bench_threads_on(cpu: int):
    """Pins every thread of this process (and the threads it starts meanwhile) to ``cpu``."""
    before = os.sched_getaffinity(0)

    def set_all(cpus: set[int]) -> None:
        for task in os.listdir("/proc/self/task"):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(int(task), cpus)

    set_all({cpu})
    try:
        yield
    finally:
        set_all(before)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def read_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise BenchError(f"no VmRSS for PID {pid}")


# --- DNS helpers ----------------------------------------------------------------------


def dns_modules():
    import dns.flags
    import dns.message
    import dns.opcode
    import dns.query
    import dns.rcode
    import dns.rdatatype

    return dns


def ask(port: int, name: str, rdtype: str = "A", timeout: float = 3.0):
    dns = dns_modules()
    return dns.query.udp(dns.message.make_query(name, rdtype), "127.0.0.1", port=port, timeout=timeout)


def rcode_text(reply) -> str:
    dns = dns_modules()
    return dns.rcode.to_text(reply.rcode())


def addresses(reply) -> list[str]:
    dns = dns_modules()
    return sorted(rr.address for rrset in reply.answer if rrset.rdtype == dns.rdatatype.A for rr in rrset)


def wait_for_reply(port: int, name: str, timeout: float, process: subprocess.Popen, what: str) -> None:
    """Until the server on ``port`` answers at all (any rcode)."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise BenchError(f"{what} exited with code {process.returncode} before answering")
        try:
            ask(port, name, timeout=0.2)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise BenchError(f"{what} did not answer on 127.0.0.1:{port} within {timeout:.0f}s") from None
            time.sleep(0.02)


def write_lines(path: Path, lines: Iterable[str]) -> Path:
    with open(path, "w") as file:
        for line in lines:
            file.write(line)
            file.write("\n")
    path.chmod(0o644)
    return path


# --- servers --------------------------------------------------------------------------


class Dnsmasq:
    def __init__(self, processes: Processes, tmp: Path, label: str, cpu: str, args: Sequence[str], probe: str):
        self.label = label
        self.port = free_port()
        self.stderr_path = tmp / f"dnsmasq-{label}.err"
        command = ["taskset", "-c", cpu, DNSMASQ, *DNSMASQ_COMMON, f"--port={self.port}",
                   f"--pid-file={tmp / f'dnsmasq-{label}.pid'}", *args]
        with open(self.stderr_path, "wb") as stderr:
            self.process = processes.spawn(command, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            wait_for_reply(self.port, probe, 10, self.process, f"dnsmasq ({label})")
        except BenchError as error:
            raise BenchError(f"{error}: {self.stderr_path.read_text(errors='replace').strip()}") from None

    @property
    def pid(self) -> int:
        return self.process.pid

    def pin(self, cpu: str) -> None:
        pin(self.pid, cpu)


_LISTENING = re.compile(r"listening on udp (\S+):(\d+) and tcp")
_SWARM_READING = re.compile(r"swarm \S+: reading services and tasks from \S+ \(manager mode\), (\d+) tasks")
_CONNECTED = re.compile(r"connected to the Docker engine")
_TROUBLE = re.compile(r"\bERROR\b|^Traceback")  # dnscock crashed, or its engine watcher did


class Dnscock:
    """``python -m dnscock`` pinned to the server CPU, its log kept with the time each line was read.

    With ``-verbose=false`` dnscock logs neither "listening on ..." nor
    "connected to the Docker engine ...", so then readiness is told by DNS:
    any reply (listening), then the first local answer (synced).
    """

    def __init__(self, processes: Processes, label: str, docker_url: str, nameserver_port: int,
                 verbose: bool = False, extra: Sequence[str] = ()):
        self.label = label
        self.verbose = verbose
        self.port = free_port()
        command = ["taskset", "-c", SERVER_CPU, PYTHON, "-m", "dnscock", f"-dns=127.0.0.1:{self.port}",
                   f"-docker={docker_url}", f"-nameserver=127.0.0.1:{nameserver_port}", *extra]
        if not verbose:
            command.append("-verbose=false")
        environ = {key: value for key, value in os.environ.items()
                   if not key.startswith("DNSCOCK_") and key != "DOCKER_HOST"}
        environ["PYTHONUNBUFFERED"] = "1"
        self.lines: list[tuple[float, str]] = []
        self._changed = threading.Condition()
        self._eof = False
        self.launched = time.monotonic()
        self.process = processes.spawn(command, cwd=ROOT, env=environ, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, text=True, bufsize=1)
        self._processes = processes
        threading.Thread(target=self._read, name=f"dnscock-log-{label}", daemon=True).start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            now = time.monotonic()
            with self._changed:
                self.lines.append((now, line.rstrip("\n")))
                self._changed.notify_all()
        with self._changed:
            self._eof = True
            self._changed.notify_all()

    def find(self, regex: re.Pattern) -> tuple[float, re.Match] | None:
        with self._changed:
            for moment, line in self.lines:
                match = regex.search(line)
                if match:
                    return moment, match
        return None

    def log_tail(self, count: int = 15) -> str:
        with self._changed:
            return "\n".join(line for _, line in self.lines[-count:]) or "(no output)"

    def _check_alive(self) -> None:
        """Raises when dnscock exited or logged an error (so a broken engine watcher fails fast)."""
        if self.process.poll() is not None:
            time.sleep(0.1)  # let the reader take the last lines
            raise BenchError(f"dnscock ({self.label}) exited with code {self.process.returncode}:\n{self.log_tail()}")
        if self.find(_TROUBLE):
            time.sleep(0.1)
            raise BenchError(f"dnscock ({self.label}) logged an error:\n{self.log_tail()}")

    def wait_listening(self, timeout: float = 30.0) -> None:
        """Until dnscock answers on its port (or logs the port it listens on)."""
        dns = dns_modules()
        probe = dns.message.make_query("docker.", "SOA")
        probe.set_opcode(dns.opcode.STATUS)  # NOTIMP at once: needs neither the engine nor the upstream
        wire = probe.to_wire()
        deadline = time.monotonic() + timeout
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            while True:
                found = self.find(_LISTENING)
                if found:
                    self.port = int(found[1].group(2))
                    return
                self._check_alive()
                sock.sendto(wire, ("127.0.0.1", self.port))
                if select.select([sock], [], [], 0.005)[0]:
                    with contextlib.suppress(OSError):
                        sock.recvfrom(65535)
                        return
                if time.monotonic() > deadline:
                    raise BenchError(f"dnscock ({self.label}) did not listen within {timeout:.0f}s:\n{self.log_tail()}")

    def wait_synced(self, timeout: float = 120.0) -> tuple[float, str]:
        """Seconds from launch to the first full sync with the engine, and how that was seen.

        Verbose: the time its "connected to the Docker engine" line was read.
        Quiet: the time the first answer to ``docker. SOA`` came back; such a
        query waits inside dnscock for the first sync (``-sync-timeout``), so
        the answer leaves as soon as the listing is in (a SERVFAIL is asked again).
        """
        deadline = time.monotonic() + timeout
        if self.verbose:
            with self._changed:
                while True:
                    found = None
                    for moment, line in self.lines:
                        if _CONNECTED.search(line):
                            found = moment
                            break
                    if found is not None:
                        return found - self.launched, "log line"
                    if self._eof or time.monotonic() > deadline or self.find(_TROUBLE):
                        break
                    self._changed.wait(0.05)
            self._check_alive()
            raise BenchError(f"dnscock ({self.label}) did not sync within {timeout:.0f}s:\n{self.log_tail()}")
        self.wait_listening(timeout)  # a query sent before the bind would be lost for a whole resend interval
        dns = dns_modules()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sent_at = -math.inf
            query_id = None
            while True:
                now = time.monotonic()
                if now > deadline:
                    raise BenchError(f"dnscock ({self.label}) did not sync within {timeout:.0f}s:\n{self.log_tail()}")
                if now - sent_at > 1.0:
                    message = dns.message.make_query("docker.", "SOA")
                    query_id = message.id
                    sock.sendto(message.to_wire(), ("127.0.0.1", self.port))
                    sent_at = now
                if not select.select([sock], [], [], 0.01)[0]:
                    self._check_alive()
                    continue
                try:
                    data, _ = sock.recvfrom(65535)
                except OSError:
                    continue
                received = time.monotonic()
                try:
                    reply = dns.message.from_wire(data)
                except Exception:
                    continue
                if reply.id != query_id:
                    continue
                if reply.rcode() == 0 and reply.answer:
                    return received - self.launched, "first local answer"
                sent_at = received - 1.0 + 0.005  # SERVFAIL before the sync: ask again in 5 ms

    def wait_line(self, regex: re.Pattern, timeout: float = 60.0) -> tuple[float, re.Match]:
        """The time the first log line matching ``regex`` was read, and its match."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = self.find(regex)  # the condition's lock is reentrant
                if found is not None:
                    return found
                if self._eof or time.monotonic() > deadline or self.find(_TROUBLE):
                    break
                self._changed.wait(0.05)
        self._check_alive()
        raise BenchError(f"dnscock ({self.label}) logged no line like {regex.pattern!r} within {timeout:.0f}s:\n"
                         f"{self.log_tail()}")

    def rss_mib(self) -> float:
        return read_rss_kib(self.pid) / 1024

    def stop(self) -> None:
        code = self._processes.stop(self.process)
        if code not in (0, -signal.SIGTERM, None):
            say(f"warning: dnscock ({self.label}) exited with code {code} on SIGTERM:\n{self.log_tail(5)}")


class FakeEngineProcess:
    def __init__(self, processes: Processes, tmp: Path, label: str, containers: int, extra: Sequence[str] = ()):
        self.label = label
        self.containers = containers
        self.socket_path = tmp / f"{label}.sock"
        self.url = f"unix://{self.socket_path}"
        ready = tmp / f"{label}.ready"
        log_path = tmp / f"{label}.log"
        command = ["taskset", "-c", LOAD_CPU, PYTHON, str(ROOT / "bench" / "fake_engine.py"),
                   "--socket", str(self.socket_path), "--containers", str(containers), "--ready-file", str(ready),
                   *extra]
        with open(log_path, "wb") as log:
            self.process = processes.spawn(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while not ready.exists():
            if self.process.poll() is not None:
                raise BenchError(f"fake engine ({label}) exited with code {self.process.returncode}: "
                                 f"{log_path.read_text(errors='replace').strip()[-500:]}")
            if time.monotonic() > deadline:
                raise BenchError(f"fake engine ({label}) not ready within 120s")
            time.sleep(0.02)

    @property
    def pid(self) -> int:
        return self.process.pid

    def local_names(self, count: int, seed: int = 1) -> list[str]:
        """``<container>.<image>.docker`` of up to ``count`` of its containers (a seeded sample)."""
        import docker

        client = docker.APIClient(base_url=self.url, version="auto", timeout=60)
        try:
            summaries = client.containers()
            chosen = random.Random(seed).sample(summaries, min(count, len(summaries)))
            names = []
            for summary in chosen:
                inspect = client.inspect_container(summary["Id"])
                names.append(f"{inspect['Name'].lstrip('/')}.{image_name(inspect['Config']['Image'])}.docker")
            return names
        finally:
            client.close()


def image_name(reference: str) -> str:
    """``registry.example.com/team/img0010:v1`` -> ``img0010``."""
    last = reference.split("@", 1)[0].rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


# --- dnsperf --------------------------------------------------------------------------

_DNSPERF_FIELDS = {
    "sent": re.compile(r"Queries sent:\s+(\d+)"),
    "completed": re.compile(r"Queries completed:\s+(\d+)"),
    "lost": re.compile(r"Queries lost:\s+(\d+)"),
    "qps": re.compile(r"Queries per second:\s+([\d.]+)"),
    "latency_s": re.compile(r"Average Latency \(s\):\s+([\d.]+)"),
    "stddev_s": re.compile(r"Latency StdDev \(s\):\s+([\d.]+)"),
}
_DNSPERF_CODES = re.compile(r"Response codes:\s+(.*)")


def parse_dnsperf(output: str) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for key, regex in _DNSPERF_FIELDS.items():
        match = regex.search(output)
        if not match:
            raise BenchError(f"dnsperf printed no {key!r}:\n{output[-1500:]}")
        figures[key] = float(match.group(1)) if "." in match.group(1) else int(match.group(1))
    codes = _DNSPERF_CODES.search(output)
    figures["codes"] = {name: int(count) for name, count in re.findall(r"([A-Z]+) (\d+)", codes.group(1))} \
        if codes else {}
    return {
        "qps": float(figures["qps"]),
        "latency_ms": float(figures["latency_s"]) * 1000,
        "stddev_ms": float(figures["stddev_s"]) * 1000,
        "lost": int(figures["lost"]),
        "sent": int(figures["sent"]),
        "completed": int(figures["completed"]),
        "codes": figures["codes"],
    }


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "qps": statistics.fmean(run["qps"] for run in runs),
        "qps_min": min(run["qps"] for run in runs),
        "qps_max": max(run["qps"] for run in runs),
        "latency_ms": statistics.fmean(run["latency_ms"] for run in runs),
        "stddev_ms": statistics.fmean(run["stddev_ms"] for run in runs),
        "lost": sum(run["lost"] for run in runs),
        "server_cpu_pct": statistics.fmean(run["server_cpu_pct"] for run in runs),
        "runs": runs,
    }


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# --- the bench ------------------------------------------------------------------------


@dataclass
class Options:
    seconds: int
    rounds: int
    containers: int
    scale_containers: int
    sync_containers: int
    events: int
    swarm_events: int
    swarm_tasks: int
    swarm_services: int
    swarm_seconds: int
    cases: list[str]
    json_path: Path
    smoke: bool


class Bench:
    def __init__(self, options: Options, tmp: Path, processes: Processes):
        self.o = options
        self.tmp = tmp
        self.processes = processes
        self.results: dict[str, Any] = {}
        self.errors: dict[str, str] = {}
        self.warnings: list[str] = []
        self.engine = None
        self.upstream: Dnsmasq | None = None
        self.main: Dnscock | None = None
        self.fake_small: FakeEngineProcess | None = None
        self.fake_large: FakeEngineProcess | None = None
        self.swarm = None  # the private swarm of the swarm case, while it runs
        self.local_names: list[str] = []
        self.local_hosts: list[str] = []

    # -- running --

    def selected(self, *cases: str) -> bool:
        return any(case in self.o.cases for case in cases)

    def guarded(self, cases: Iterable[str], what: str, action: Callable[[], None]) -> bool:
        cases = [case for case in cases if case in self.o.cases and case not in self.errors]
        if not cases:
            return False
        try:
            action()
            return True
        except KeyboardInterrupt:
            raise
        except Exception as error:
            detail = str(error) if isinstance(error, BenchError) else f"{type(error).__name__}: {error}"
            message = f"{what}: {detail}"
            if not isinstance(error, BenchError):
                traceback.print_exc()
            say(f"ERROR {message}")
            for case in cases:
                self.errors.setdefault(case, message)
            return False

    def run(self) -> None:
        if self.selected(*ENGINE_CASES):
            self.guarded(ENGINE_CASES, "private Docker engine", self.start_engine)
        if self.selected(*MAIN_DNSCOCK_CASES, *FAKE_ENGINE_CASES, "swarm"):
            self.guarded(MAIN_DNSCOCK_CASES | FAKE_ENGINE_CASES | {"swarm"}, "upstream dnsmasq", self.start_upstream)
        if self.selected("local"):
            self.guarded(["local"], "local: setup", self.prepare_local)
        if self.selected(*MAIN_DNSCOCK_CASES):
            self.guarded(MAIN_DNSCOCK_CASES, "dnscock against the private engine", self.start_main)
        for case, action in (("local", self.case_local), ("forward-uncached", self.case_forward_uncached),
                             ("forward-cached", self.case_forward_cached), ("events", self.case_events)):
            self.guarded([case], case, action)
        if self.main is not None:
            self.main.stop()
            self.main = None
        if self.selected(*FAKE_ENGINE_CASES):
            self.guarded(FAKE_ENGINE_CASES, "fake engines", self.start_fake_engines)
        self.guarded(["scale"], "scale", self.case_scale)
        self.guarded(["startup"], "startup", self.case_startup)
        if self.selected("swarm"):
            self.stop_engine()  # idle, but its dockerd and containers need not share the machine with the swarm
            self.guarded(["swarm"], "swarm", self.case_swarm)

    def cleanup(self) -> None:
        if self.main is not None:
            with contextlib.suppress(Exception):
                self.main.stop()
        self.processes.stop_all()
        self.stop_swarm()
        self.stop_engine()

    def stop_engine(self) -> None:
        if self.engine is not None:
            say("stopping the private engine")
            try:
                remove_containers(self.engine)
            except Exception as error:
                say(f"cleanup: removing containers: {error}")
            try:
                self.engine.stop()
            except Exception as error:
                say(f"cleanup: stopping the private engine at {self.engine.root}: {error}")
            self.engine = None

    # -- setup --

    def start_engine(self) -> None:
        from tests.support.private_engine import PrivateEngine

        say("starting a private Docker engine")
        engine = PrivateEngine(self.tmp / "e")
        self.engine = engine  # stopped in cleanup even when start fails half-way
        engine.start()
        for image in ("redis:latest", "web:latest"):
            engine.ensure_image(image)

    def start_upstream(self) -> None:
        self.upstream = Dnsmasq(self.processes, self.tmp, "upstream", LOAD_CPU,
                                [f"--address=/fwd.test/{FWD_ADDRESS}", "--cache-size=0", f"--local-ttl={FWD_TTL}"],
                                probe="probe.fwd.test")
        say(f"upstream dnsmasq on 127.0.0.1:{self.upstream.port} (PID {self.upstream.pid}, CPU {LOAD_CPU})")

    def prepare_local(self) -> None:
        engine = self._engine()
        count = self.o.containers
        say(f"local: starting {count} containers")
        specs = []
        for index in range(1, count + 1):
            image = "redis" if index % 2 else "web"
            env = {"DNSDOCK_ALIAS": f"alias{index}.example.test"} if index % 5 == 0 else {}
            specs.append((f"bench{index}", image, env))

        def start(spec):
            name, image, env = spec
            container = engine.run(f"{image}:latest", name=name, environment=env)
            container.reload()
            return spec, container.attrs["NetworkSettings"]["IPAddress"]

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            started = list(pool.map(start, specs))
        hosts, full, images, aliases = [], [], set(), []
        for (name, image, env), ip in started:
            if not ip:
                raise BenchError(f"container {name} has no IPv4 address")
            alias = env.get("DNSDOCK_ALIAS")
            hosts.append(" ".join([ip, f"{name}.{image}.docker", f"{image}.docker", *([alias] if alias else [])]))
            full.append(f"{name}.{image}.docker")
            images.add(f"{image}.docker")
            if alias:
                aliases.append(alias)
        # The mix: every container's full name, every alias, and the image names as often as the aliases.
        mixed = full + aliases + [sorted(images)[i % len(images)] for i in range(max(len(aliases), len(images)))]
        random.Random(7).shuffle(mixed)
        self.local_hosts = hosts
        self.local_names = mixed

    def start_main(self) -> None:
        engine = self._engine()
        upstream = self._upstream()
        self.main = Dnscock(self.processes, "main", engine.url, upstream.port)
        seconds, how = self.main.wait_synced()
        say(f"dnscock (PID {self.main.pid}, CPU {SERVER_CPU}) on 127.0.0.1:{self.main.port}, "
            f"synced in {seconds:.2f}s ({how})")

    def start_fake_engines(self) -> None:
        say(f"starting fake engines with {SMALL_ENGINE} and {self.o.scale_containers} containers")
        self.fake_small = FakeEngineProcess(self.processes, self.tmp, "fake-small", SMALL_ENGINE)
        self.fake_large = FakeEngineProcess(self.processes, self.tmp, "fake-large", self.o.scale_containers)

    def _engine(self):
        if self.engine is None:
            raise BenchError("no private engine")
        return self.engine

    def _upstream(self) -> Dnsmasq:
        if self.upstream is None:
            raise BenchError("no upstream dnsmasq")
        return self.upstream

    def _main(self) -> Dnscock:
        if self.main is None:
            raise BenchError("dnscock is not running")
        return self.main

    # -- measuring --

    def dnsperf(self, port: int, query_file: Path, server_pid: int, seconds: int | None = None,
                what: str = "", upstream_pid: int | None = None) -> dict[str, Any]:
        """One dnsperf run against 127.0.0.1:``port``; also how busy the server's process was meanwhile.

        With ``upstream_pid`` (a forwarder under test), how busy its upstream was too.
        """
        seconds = seconds or self.o.seconds
        command = ["taskset", "-c", LOAD_CPU, "dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(query_file),
                   "-l", str(seconds), "-c", "10", "-q", "100"]
        cpu_before, wall_before = cpu_seconds(server_pid), time.monotonic()
        upstream_before = cpu_seconds(upstream_pid) if upstream_pid else 0.0
        process = self.processes.spawn(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            output, _ = process.communicate(timeout=seconds + 60)
            wall = time.monotonic() - wall_before
            server_cpu = (cpu_seconds(server_pid) - cpu_before) / wall
            upstream_cpu = (cpu_seconds(upstream_pid) - upstream_before) / wall if upstream_pid else None
        except subprocess.TimeoutExpired:
            raise BenchError(f"dnsperf did not finish within {seconds + 60}s") from None
        finally:
            self.processes.stop(process)
        if process.returncode != 0:
            raise BenchError(f"dnsperf exited with code {process.returncode}:\n{output[-1500:]}")
        figures = parse_dnsperf(output)
        figures["server_cpu_pct"] = 100 * server_cpu
        if upstream_cpu is not None:
            figures["upstream_cpu_pct"] = 100 * upstream_cpu
        answered = sum(figures["codes"].values()) or 1
        odd = {code: count for code, count in figures["codes"].items() if code != "NOERROR"}
        if sum(odd.values()) > 0.01 * answered:
            self.warnings.append(f"{what}: answers other than NOERROR: {odd} of {answered}")
            say(f"warning: {what}: answers other than NOERROR: {odd} of {answered}")
        if figures["lost"] > 0.01 * max(figures["sent"], 1):
            self.warnings.append(f"{what}: {figures['lost']} of {figures['sent']} queries lost")
        upstream = f", upstream CPU {figures['upstream_cpu_pct']:.0f}%" if upstream_cpu is not None else ""
        say(f"{what}: {figures['qps']:,.0f} qps, {figures['latency_ms']:.3f} ms, lost {figures['lost']}, "
            f"server CPU {figures['server_cpu_pct']:.0f}%{upstream}")
        return figures

    def alternate(self, case: str, dnscock_side: Callable[[int], dict],
                  references: Sequence[tuple[str, Callable[[int], dict]]]) -> dict[str, Any]:
        """dnscock, then each reference in turn, ``--rounds`` times over, in one session.

        The first reference gives ``reference``, ``ratio`` (mean QPS over
        mean QPS, the figure the bar judges) and ``ratio_rounds`` (dnscock's
        QPS over the reference's, round by round: their lowest and highest
        show the noise); any further one goes under ``other_references``,
        by name, with the same keys.
        """
        ours: list[dict] = []
        theirs: dict[str, list[dict]] = {name: [] for name, _ in references}
        for round_index in range(self.o.rounds):
            ours.append(dnscock_side(round_index))
            for name, side in references:
                theirs[name].append(side(round_index))
        mine = summarize(ours)
        compared = {}
        for name, runs in theirs.items():
            summary = summarize(runs)
            per_round = [a["qps"] / b["qps"] if b["qps"] else math.nan for a, b in zip(ours, runs)]
            compared[name] = {"reference": summary, "reference_name": name,
                              "ratio": mine["qps"] / summary["qps"] if summary["qps"] else math.nan,
                              "ratio_rounds": per_round, "ratio_min": min(per_round), "ratio_max": max(per_round)}
            busy = (mine["server_cpu_pct"], summary["server_cpu_pct"])
            if min(busy) < UNSATURATED_CPU_PCT:
                self.warnings.append(
                    f"{case}: dnscock and {name} used only {busy[0]:.0f}% / {busy[1]:.0f}% of CPU 1: dnsperf or "
                    "other load on the machine limited the rates, so the ratio says little about the servers")
        first, *others = (name for name, _ in references)
        result = {"dnscock": mine, **compared[first]}
        if others:
            result["other_references"] = {name: compared[name] for name in others}
        self.results[case] = result
        return result

    def case_local(self) -> None:
        main = self._main()
        hosts_file = write_lines(self.tmp / "local.hosts", self.local_hosts)
        reference = Dnsmasq(self.processes, self.tmp, "local", SERVER_CPU,
                            [f"--addn-hosts={hosts_file}", "--cache-size=10000"], probe=self.local_names[0])
        try:
            say(f"local: reference dnsmasq (hosts file) on 127.0.0.1:{reference.port} (PID {reference.pid}, "
                f"CPU {SERVER_CPU})")
            unique = sorted(set(self.local_names))
            differences = []
            for name in unique:
                ours, theirs = ask(main.port, name), ask(reference.port, name)
                if rcode_text(ours) != "NOERROR" or not addresses(ours):
                    differences.append(f"{name}: dnscock {rcode_text(ours)} {addresses(ours)}")
                elif (rcode_text(ours), addresses(ours)) != (rcode_text(theirs), addresses(theirs)):
                    differences.append(f"{name}: dnscock {rcode_text(ours)} {addresses(ours)}, "
                                       f"dnsmasq {rcode_text(theirs)} {addresses(theirs)}")
            if differences:
                raise BenchError(f"dnscock and dnsmasq answer differently ({len(differences)} of {len(unique)} "
                                 "names):\n  " + "\n  ".join(differences[:10]))
            say(f"local: {len(unique)} names answered alike by both")
            query_file = write_lines(self.tmp / "local.queries", (f"{name} A" for name in self.local_names))
            self.alternate(
                "local",
                lambda r: self.dnsperf(main.port, query_file, main.pid, what=f"local: dnscock round {r + 1}"),
                [("dnsmasq (hosts file)", lambda r: self.dnsperf(reference.port, query_file, reference.pid,
                                                                 what=f"local: dnsmasq round {r + 1}"))],
            )
            self.results["local"].update(containers=self.o.containers, names=len(unique))
        finally:
            self.processes.stop(reference.process)

    def _compare_forwarded(self, name: str, forwarder: Dnsmasq | None = None) -> None:
        """dnscock, the upstream (and ``forwarder``) all answer ``name`` with FWD_ADDRESS."""
        servers = [("dnscock", self._main().port), (DIRECT, self._upstream().port)]
        if forwarder is not None:
            servers.append((FORWARDING, forwarder.port))
        replies = [(label, ask(port, name)) for label, port in servers]
        if any(addresses(reply) != [FWD_ADDRESS] for _, reply in replies):
            raise BenchError(f"{name}: " + ", ".join(f"{label} answers {rcode_text(reply)} {addresses(reply)}"
                                                      for label, reply in replies) + f" (expected {FWD_ADDRESS})")

    def _upstream_alone(self, upstream: Dnsmasq, measure: Callable[[], dict]) -> dict:
        """Measures the upstream directly, moved to the server CPU meanwhile."""
        upstream.pin(SERVER_CPU)
        try:
            return measure()
        finally:
            upstream.pin(LOAD_CPU)

    def case_forward_uncached(self) -> None:
        """Every round: dnscock, dnsmasq-forwarding, dnsmasq-direct, each with that round's unique names.

        Neither forwarder nor the upstream keeps an answer dnsmasq-forwarding
        could reuse (both with --cache-size=0), and dnscock's forward cache
        never sees a round's names before that round.
        """
        main, upstream = self._main(), self._upstream()
        forwarder = Dnsmasq(self.processes, self.tmp, "forwarding", SERVER_CPU,
                            ["--cache-size=0", "--no-resolv", f"--server=127.0.0.1#{upstream.port}"],
                            probe="probe.fwd.test")
        try:
            say(f"forward-uncached: {FORWARDING} (cache off) on 127.0.0.1:{forwarder.port} (PID {forwarder.pid}, "
                f"CPU {SERVER_CPU}) forwarding to the upstream on 127.0.0.1:{upstream.port}")
            self._compare_forwarded("check.fwd.test", forwarder)
            count = UNCACHED_NAMES_PER_SECOND * self.o.seconds
            say(f"forward-uncached: writing {self.o.rounds} files of {count:,} unique names")
            files = [write_lines(self.tmp / f"uncached-{r}.queries",
                                 (f"q{i}.r{r}.fwd.test A" for i in range(count)))
                     for r in range(self.o.rounds)]
            self.alternate(
                "forward-uncached",
                lambda r: self.dnsperf(main.port, files[r], main.pid, upstream_pid=upstream.pid,
                                       what=f"forward-uncached: dnscock round {r + 1}"),
                [(FORWARDING, lambda r: self.dnsperf(forwarder.port, files[r], forwarder.pid, upstream_pid=upstream.pid,
                                                     what=f"forward-uncached: {FORWARDING} round {r + 1}")),
                 (DIRECT, lambda r: self._upstream_alone(upstream, lambda: self.dnsperf(
                     upstream.port, files[r], upstream.pid, what=f"forward-uncached: {DIRECT} round {r + 1}")))],
            )
            for r in range(self.o.rounds):
                files[r].unlink()
        finally:
            self.processes.stop(forwarder.process)

    def case_forward_cached(self) -> None:
        main, upstream = self._main(), self._upstream()
        query_file = write_lines(self.tmp / "cached.queries", (f"c{i}.fwd.test A" for i in range(CACHED_NAMES)))
        self.dnsperf(main.port, query_file, main.pid, seconds=1, what="forward-cached: warming dnscock's cache")
        self._compare_forwarded("c0.fwd.test")
        self.alternate(
            "forward-cached",
            lambda r: self.dnsperf(main.port, query_file, main.pid, what=f"forward-cached: dnscock round {r + 1}"),
            [(DIRECT, lambda r: self._upstream_alone(upstream, lambda: self.dnsperf(
                upstream.port, query_file, upstream.pid, what=f"forward-cached: {DIRECT} round {r + 1}")))],
        )

    def case_scale(self) -> None:
        upstream = self._upstream()
        engines = [self.fake_small, self.fake_large]
        if None in engines:
            raise BenchError("no fake engines")
        files, unique = {}, {}
        for engine in engines:
            names = engine.local_names(SCALE_NAMES)
            unique[engine.label] = names
            files[engine.label] = write_lines(self.tmp / f"{engine.label}.queries",
                                              (f"{names[i % len(names)]} A" for i in range(SCALE_NAMES)))
        rss_synced, rss_after = [], []

        def measure(engine: FakeEngineProcess, round_index: int) -> dict:
            dnscock = Dnscock(self.processes, f"scale-{engine.containers}", engine.url, upstream.port)
            try:
                seconds, how = dnscock.wait_synced()
                say(f"scale: dnscock synced {engine.containers} containers in {seconds:.2f}s ({how})")
                if round_index == 0:
                    bad = [name for name in unique[engine.label] if not addresses(ask(dnscock.port, name))]
                    if bad:
                        raise BenchError(f"dnscock does not answer {len(bad)} of the {len(unique[engine.label])} "
                                         f"names of the {engine.label} engine, e.g. {bad[:3]}")
                if engine is self.fake_large:
                    rss_synced.append(dnscock.rss_mib())
                figures = self.dnsperf(dnscock.port, files[engine.label], dnscock.pid,
                                       what=f"scale: {engine.containers} containers round {round_index + 1}")
                figures["sync_s"] = seconds
                if engine is self.fake_large:
                    rss_after.append(dnscock.rss_mib())
                return figures
            finally:
                dnscock.stop()

        result = self.alternate("scale", lambda r: measure(self.fake_large, r),
                                [(f"dnscock with {SMALL_ENGINE} containers", lambda r: measure(self.fake_small, r))])
        result.update(containers=self.o.scale_containers, small_containers=SMALL_ENGINE,
                      rss_after_sync_mib=max(rss_synced), rss_after_queries_mib=max(rss_after))

    def case_events(self) -> None:
        import docker

        main, engine = self._main(), self._engine()
        starts, stops, stop_rcodes = [], [], {}
        watcher = EventWatcher(docker.APIClient(base_url=engine.url, version="auto", timeout=60))
        try:
            with bench_threads_on(int(LOAD_CPU)):
                for index in range(self.o.events):
                    name = f"ev{index}"
                    qname = f"{name}.web.docker"
                    poller = Poller(main.port, qname, want_answer=True)
                    container = engine.run("web:latest", name=name)
                    started = watcher.wait(container.id, "start")
                    answered = poller.finish(started + EVENT_DEADLINE)
                    if answered is None:
                        raise BenchError(f"{qname} did not answer within {EVENT_DEADLINE}s of its start event")
                    starts.append((answered - started) * 1000)
                    poller = Poller(main.port, qname, want_answer=False)
                    container.stop(timeout=5)
                    died = watcher.wait(container.id, "die")
                    gone = poller.finish(died + EVENT_DEADLINE)
                    if gone is None:
                        raise BenchError(f"{qname} still had an address {EVENT_DEADLINE}s after its die event")
                    stops.append((gone - died) * 1000)
                    stop_rcodes[poller.rcode] = stop_rcodes.get(poller.rcode, 0) + 1
                    container.remove(force=True)
                    say(f"events: {qname}: start->answer {starts[-1]:.1f} ms, "
                        f"die->no address ({poller.rcode}) {stops[-1]:.1f} ms")
        finally:
            watcher.close()
        self.results["events"] = {
            "iterations": len(starts),
            "start_ms": {"p50": percentile(starts, 0.5), "p99": percentile(starts, 0.99), "samples": starts},
            "stop_ms": {"p50": percentile(stops, 0.5), "p99": percentile(stops, 0.99), "samples": stops,
                        "rcodes": stop_rcodes},
        }

    def case_startup(self) -> None:
        upstream = self._upstream()
        result: dict[str, Any] = {}
        self.results["startup"] = result
        engine = self.engine
        if engine is not None and "startup" not in self.errors:
            running = len(engine.client.containers.list())
            missing = max(0, self.o.sync_containers - running)
            say(f"startup: starting {missing} more containers ({running} running)")
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                list(pool.map(lambda i: engine.run("web:latest", name=f"sync{i}"), range(missing)))
            count = len(engine.client.containers.list())
            result["real"] = self._startups(engine.url, count, upstream, track_rss=False)
        else:
            raise BenchError("no private engine")
        if self.fake_large is None:
            raise BenchError("no fake engine")
        result["fake"] = self._startups(self.fake_large.url, self.fake_large.containers, upstream, track_rss=True)

    def _startups(self, url: str, containers: int, upstream: Dnsmasq, track_rss: bool) -> dict[str, Any]:
        """``--rounds`` launches each with the default log level (timed to the log line) and -verbose=false."""
        figures: dict[str, Any] = {"containers": containers}
        for verbose, key in ((True, "log_line_s"), (False, "quiet_s")):
            samples, rss = [], []
            for _ in range(self.o.rounds):
                dnscock = Dnscock(self.processes, f"startup-{containers}", url, upstream.port, verbose=verbose)
                try:
                    seconds, how = dnscock.wait_synced()
                    samples.append(seconds)
                    rss.append(dnscock.rss_mib())
                    say(f"startup: {containers} containers, {'default log' if verbose else '-verbose=false'}: "
                        f"synced {seconds:.2f}s after launch ({how}), VmRSS {rss[-1]:.1f} MiB")
                finally:
                    dnscock.stop()
            figures[key] = statistics.fmean(samples)
            figures[key + "_samples"] = samples
            figures["rss_after_sync_mib" + ("" if verbose else "_quiet")] = max(rss)
        return figures

    # -- swarm --

    def case_swarm(self) -> None:
        """dnscock's CPU with a fake manager's tasks, then how fast it follows a real swarm's.

        The CPU part runs first, while no swarm runs on the machine. The
        figures of either part stay in the results when the other fails.
        """
        result: dict[str, Any] = {"swarm_poll_s": 1.0}  # dnscock's default -swarm-poll, which it runs with
        self.results["swarm"] = result
        failures = []
        for what, part in (("CPU", lambda: result.update(cpu=self._swarm_cpu())),
                           ("latency", lambda: self._swarm_latency(result))):
            try:
                part()
            except Exception as error:  # the other part still runs
                if not isinstance(error, BenchError):
                    traceback.print_exc()
                failures.append(f"{what}: {error}" if isinstance(error, BenchError)
                                else f"{what}: {type(error).__name__}: {error}")
                say(f"ERROR swarm: {failures[-1]}")
        if failures:
            raise BenchError("; ".join(failures))

    def _swarm_cpu(self) -> dict[str, Any]:
        """dnscock's CPU share following a fake manager (no queries), with SWARM_BASELINE_TASKS and --swarm-tasks."""
        upstream = self._upstream()
        runs = {}
        for tasks in dict.fromkeys((SWARM_BASELINE_TASKS, self.o.swarm_tasks)):
            runs[tasks] = self._swarm_cpu_run(tasks, self.o.swarm_services, upstream)
        large, small = runs[self.o.swarm_tasks], runs[SWARM_BASELINE_TASKS]
        return {"tasks": self.o.swarm_tasks, "services": self.o.swarm_services, "seconds": self.o.swarm_seconds,
                "cpu_pct": large["cpu_pct"], "baseline_tasks": SWARM_BASELINE_TASKS,
                "baseline_cpu_pct": small["cpu_pct"], "tasks_cpu_pct": large["cpu_pct"] - small["cpu_pct"],
                "runs": {str(tasks): figures for tasks, figures in runs.items()}}

    def _swarm_cpu_run(self, tasks: int, services: int, upstream: Dnsmasq) -> dict[str, Any]:
        from bench.fake_engine import PUBLISHING_EVERY, FakeSwarm

        fake = FakeEngineProcess(self.processes, self.tmp, f"fake-swarm-{tasks}", 0,
                                 extra=["--swarm-tasks", str(tasks), "--swarm-services", str(services)])
        http_port = free_port()
        dnscock = Dnscock(self.processes, f"swarm-cpu-{tasks}", fake.url, upstream.port, verbose=True,
                          extra=[f"-http=127.0.0.1:{http_port}"])
        try:
            dnscock.wait_synced()
            _, match = dnscock.wait_line(_SWARM_READING)
            read_at = time.monotonic()
            if int(match.group(1)) != tasks:
                raise BenchError(f"dnscock read {match.group(1)} tasks from the fake manager, not {tasks}")
            layout = FakeSwarm(tasks, services)
            checked = self._check_fake_swarm_answers(dnscock.port, layout, PUBLISHING_EVERY)
            time.sleep(max(0.0, read_at + SWARM_CPU_SETTLE - time.monotonic()))
            counters_before = swarm_counters(http_port)
            cpu_before, fake_before, wall_before = cpu_seconds(dnscock.pid), cpu_seconds(fake.pid), time.monotonic()
            time.sleep(self.o.swarm_seconds)
            cpu_after, fake_after, wall_after = cpu_seconds(dnscock.pid), cpu_seconds(fake.pid), time.monotonic()
            counters_after = swarm_counters(http_port)
            wall = wall_after - wall_before
            figures = {
                "tasks": tasks, "services": services, "seconds": wall,
                "cpu_pct": 100 * (cpu_after - cpu_before) / wall,
                "fake_manager_cpu_pct": 100 * (fake_after - fake_before) / wall,
                "polls": counters_after["polls"] - counters_before["polls"],
                "changes": counters_after["changes"] - counters_before["changes"],
                "rss_mib": dnscock.rss_mib(),
                "names_checked": checked,
            }
            say(f"swarm: dnscock following a fake manager with {tasks} tasks in {services} services: "
                f"{figures['cpu_pct']:.2f}% of one core over {wall:.1f}s, {figures['polls']:.0f} task listings "
                f"({figures['changes']:.0f} changed the table), VmRSS {figures['rss_mib']:.1f} MiB; "
                f"the fake manager {figures['fake_manager_cpu_pct']:.2f}%")
            if figures["changes"]:
                self.warnings.append(f"swarm: dnscock changed its table {figures['changes']:.0f} time(s) while "
                                     f"the fake manager's {tasks} tasks stayed the same")
            return figures
        finally:
            dnscock.stop()
            self.processes.stop(fake.process)

    def _check_fake_swarm_answers(self, port: int, layout, publishing_every: int) -> list[str]:
        """A few tasks' ``<slot>.<service>`` names, a service's tasks and VIP answer as the fake manager lists them."""
        count = layout.task_count
        picks = sorted({0, count // 2, count - 1, min(publishing_every - 1, count - 1)})
        checked, wrong = [], []
        for index in picks:
            task = layout.task(index)
            service = layout.service_name(task.service)
            expected = {f"{task.slot}.{service}.docker": [task.address],
                        f"vip.{service}.docker": [layout.vip(task.service)]}
            if index == 0:
                expected[f"{service}.docker"] = sorted(t.address for t in layout.tasks_of(task.service))
            for name, addresses_wanted in expected.items():
                reply = ask_whole(port, name)
                got = addresses(reply)
                checked.append(name)
                if sorted(got) != sorted(addresses_wanted):
                    wrong.append(f"{name}: {rcode_text(reply)} {got[:5]}, expected {addresses_wanted[:5]}")
        if wrong:
            raise BenchError("dnscock answers the fake manager's tasks wrongly:\n  " + "\n  ".join(wrong))
        return checked

    def _swarm_latency(self, result: dict[str, Any]) -> None:
        """A service on a real two-node swarm scaled 0 -> --swarm-events one task at a time, then back to 0."""
        from tests.support.private_engine import EngineUnavailable
        from tests.support.swarm import PrivateSwarm

        upstream = self._upstream()
        root = Path(tempfile.mkdtemp(prefix="dcb-swarm-", dir="/tmp"))  # short: the engines' sockets live under it
        say("swarm: starting a private two-node swarm")
        started = time.monotonic()
        swarm = PrivateSwarm(root)
        self.swarm = swarm
        try:
            swarm.start()
        except EngineUnavailable as error:
            self.stop_swarm()  # whatever it made before giving up; an error if anything is left
            raise BenchError(f"no private two-node swarm can be made here, so no latency figures: {error}") from None
        try:
            up = time.monotonic() - started
            swarm.create_network(SWARM_NETWORK)
            say(f"swarm: up in {up:.1f}s (manager {swarm.node1.hostname} at {swarm.url}, "
                f"worker {swarm.node2.hostname} in netns {swarm.node2.netns})")
            dnscock = Dnscock(self.processes, "swarm", swarm.url, upstream.port, verbose=True)
            try:
                dnscock.wait_synced()
                dnscock.wait_line(_SWARM_READING)
                figures = self._follow_scaling(swarm, dnscock)
            finally:
                dnscock.stop()
            figures["swarm_up_s"] = up
            result["latency"] = figures
        finally:
            self.stop_swarm()

    def _follow_scaling(self, swarm, dnscock: Dnscock) -> dict[str, Any]:
        """Scale up one task at a time, kill some of node 2's tasks, scale down one at a time.

        Scaling is a service update, an event dnscock polls after; a task
        killed on node 2 (replaced at once: restart delay 0) makes no event
        on the manager, so only dnscock's regular task listing sees it go,
        and its replacement start.
        """
        service = swarm.create_service(SWARM_SERVICE, replicas=0, networks=[SWARM_NETWORK], restart_delay=0,
                                       wait=False)
        count = self.o.swarm_events
        kills = max(1, count // 2)
        # Each kill at its own moment of dnscock's poll interval (else all come right after a poll, the worst
        # case): the pauses before them spread evenly over a second, in a seeded random order.
        phase = random.Random(11)
        pauses = [(index + phase.random()) / kills for index in range(kills)]
        phase.shuffle(pauses)
        starts: list[dict[str, Any]] = []
        leaves: list[dict[str, Any]] = []
        tasks = ManagerTasks(swarm.url, SWARM_SERVICE)
        follow = _SwarmFollower(swarm, tasks, dnscock.port)
        try:
            with bench_threads_on(int(LOAD_CPU)):
                for replicas in range(1, count + 1):
                    listed, _ = tasks.snapshot()
                    swarm.scale(service, replicas, wait=False)
                    starts.append(follow.start(listed, "scale-up", f"scaled to {replicas}"))
                for pause in pauses:
                    listed, running = tasks.snapshot()
                    on_node2 = sorted((tasks.tasks[task_id] for task_id in running
                                       if follow.node(tasks.tasks[task_id]) == 2), key=lambda task: task["Slot"])
                    if not on_node2:
                        self.warnings.append("swarm: no task of the service ran on node 2 to kill")
                        break
                    victim = on_node2[0]
                    time.sleep(pause)
                    leave = follow.watch_leave(victim)
                    swarm.kill_task(victim)
                    leaves.append(follow.leave(victim, leave, "killed"))
                    starts.append(follow.start(listed, "replacement", f"replacing {victim['ID']}"))
                for replicas in range(count - 1, -1, -1):
                    _, running = tasks.snapshot()
                    swarm.scale(service, replicas, wait=False)
                    task_id = tasks.wait(
                        lambda running=running: next((t for t in running if t in tasks.left), None), 60,
                        f"a task of {SWARM_SERVICE} to leave the running set (scaled to {replicas})")
                    victim = tasks.tasks[task_id]
                    leaves.append(follow.leave(victim, follow.watch_leave(victim), "scale-down"))
        finally:
            tasks.close()
        return {
            "events": count,
            "kills": sum(1 for sample in leaves if sample["cause"] == "killed"),
            "manager_polls": tasks.polls,
            "manager_poll_failures": tasks.failures,
            "start_ms": _swarm_summary(starts),
            "leave_ms": {**_swarm_summary(leaves),
                         "rcodes": dict(sorted(collections.Counter(sample["rcode"] for sample in leaves).items())),
                         "gone_at_first_query": sum(1 for sample in leaves if sample["queries"] == 1)},
        }

    def stop_swarm(self) -> None:
        """Stops the private swarm, if one runs; what it leaves behind is an error of the swarm case."""
        swarm, self.swarm = self.swarm, None
        if swarm is None:
            return
        say("swarm: stopping the private swarm")
        started = time.monotonic()
        left: list[str] = []
        for attempt in range(1, SWARM_STOP_ATTEMPTS + 1):
            try:
                swarm.stop()
                left = swarm.leftovers()
                break
            except Exception as error:
                # PrivateSwarm.stop() force-removes every container and gives up at the first error other
                # than NotFound, before stopping anything: a 409 "removal of container ... is already in
                # progress" when the swarm is removing a shut-down task's container itself. Again, later.
                left = [f"stopping it failed {attempt} time(s): {type(error).__name__}: {error}"]
                say(f"swarm: stopping the private swarm failed ({type(error).__name__}: {error}); "
                    f"{'trying again' if attempt < SWARM_STOP_ATTEMPTS else 'giving up'}")
                time.sleep(2)
        if left:
            message = f"the private swarm left behind: {left}"
            say(f"ERROR {message}")
            self.errors.setdefault("swarm", message)
        else:
            say(f"swarm: stopped in {time.monotonic() - started:.1f}s, nothing left behind")


class EventWatcher:
    """The engine's container events, each with the time the bench received it."""

    def __init__(self, client) -> None:
        self.client = client
        self.stream = client.events(decode=True, filters={"type": "container"})
        self.seen: dict[tuple[str, str], float] = {}
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="engine-events", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for event in self.stream:
                now = time.monotonic()
                action = str(event.get("Action") or event.get("status") or "").split(":", 1)[0]
                container = (event.get("Actor") or {}).get("ID") or event.get("id")
                with self._changed:
                    self.seen.setdefault((container, action), now)
                    self._changed.notify_all()
        except Exception:
            pass  # closed

    def wait(self, container: str, action: str, timeout: float = 10.0) -> float:
        deadline = time.monotonic() + timeout
        with self._changed:
            while (container, action) not in self.seen:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BenchError(f"no {action!r} event for container {container[:12]} within {timeout:.0f}s")
                self._changed.wait(remaining)
            return self.seen[(container, action)]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stream.close()
        with contextlib.suppress(Exception):
            self.client.close()


class Poller:
    """Asks dnscock about one name every ~1 ms until it answers with an address (``want_answer``) or not.

    "Not" is NXDOMAIN, or NODATA (NOERROR, no address) for a dnscock that
    keeps a stopped container's names a while (a grace period). With
    ``address``, only that address counts: an answer must hold it, "not"
    is any answer without it. ``interval``: seconds between two queries.
    ``addresses`` are those of the reply that ended it; ``queries`` counts
    the queries sent (1: the first reply already said so).
    """

    def __init__(self, port: int, name: str, want_answer: bool, address: str | None = None,
                 interval: float = 0.001) -> None:
        self.port, self.name, self.want_answer = port, name, want_answer
        self.address, self.interval = address, interval
        self.until = time.monotonic() + 120  # bounded properly by finish()
        self.result: float | None = None
        self.rcode = ""
        self.addresses: list[str] = []
        self.queries = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="poller", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        dns = dns_modules()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.connect(("127.0.0.1", self.port))
                while time.monotonic() < self.until:
                    message = dns.message.make_query(self.name, "A")
                    sock.send(message.to_wire())
                    self.queries += 1
                    reply = None
                    if select.select([sock], [], [], 0.5)[0]:
                        reply = dns.message.from_wire(sock.recv(65535))
                    received = time.monotonic()
                    if reply is not None and reply.id == message.id:
                        found = addresses(reply)
                        if self.address is not None:
                            found_it = self.address in found
                            answered = reply.rcode() == dns.rcode.NOERROR and found_it
                            gone = reply.rcode() in (dns.rcode.NXDOMAIN, dns.rcode.NOERROR) and not found_it
                        else:
                            answered = reply.rcode() == dns.rcode.NOERROR and bool(found)
                            gone = reply.rcode() == dns.rcode.NXDOMAIN or (
                                reply.rcode() == dns.rcode.NOERROR and not found)
                        if answered if self.want_answer else gone:
                            self.result = received
                            self.rcode = dns.rcode.to_text(reply.rcode())
                            self.addresses = found
                            return
                    time.sleep(self.interval)
        except BaseException as error:
            self.error = error

    def finish(self, until: float) -> float | None:
        self.until = until
        self._thread.join()
        if self.error is not None:
            raise BenchError(f"polling {self.name}: {self.error}")
        return self.result


class ManagerTasks:
    """One service's tasks on a swarm manager, listed every MANAGER_POLL seconds in a thread.

    For each task: when the bench first got a listing with it (any state),
    first got one with it running, and, after that, first got one without it
    among the running ones (``GET /tasks`` of desired state running, and
    Status.State running: the set dnscock follows). Times are when the
    listing came back (a listing takes a few ms: the bench learns of a
    change at most ~MANAGER_POLL plus that after the manager shows it).
    """

    def __init__(self, url: str, service: str) -> None:
        import docker

        self.client = docker.APIClient(base_url=url, version="auto", timeout=10)
        self.service = service
        self.tasks: dict[str, dict] = {}  # task ID -> its latest document
        self.seen: dict[str, float] = {}
        self.running: dict[str, float] = {}
        self.left: dict[str, float] = {}
        self.polls = 0
        self.failures = 0
        self.failure = ""
        self._stopping = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="manager-tasks", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        filters = {"service": self.service, "desired-state": "running"}
        while not self._stopping:
            try:
                listing = self.client.tasks(filters=filters)
            except Exception as error:
                with self._changed:
                    self.failures += 1
                    self.failure = f"{type(error).__name__}: {error}"
                time.sleep(MANAGER_POLL)
                continue
            now = time.monotonic()
            with self._changed:
                self.polls += 1
                running_now = set()
                for task in listing:
                    task_id = str(task.get("ID"))
                    self.tasks[task_id] = task
                    self.seen.setdefault(task_id, now)
                    if (task.get("Status") or {}).get("State") == "running":
                        running_now.add(task_id)
                        self.running.setdefault(task_id, now)
                for task_id in self.running:
                    if task_id not in running_now:
                        self.left.setdefault(task_id, now)
                self._changed.notify_all()
            time.sleep(MANAGER_POLL)

    def wait(self, probe: Callable[[], Any], timeout: float, what: str) -> Any:
        """``probe()``'s first truthy result, checked after every listing (under the lock)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                result = probe()
                if result:
                    return result
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    failure = f" (last listing error: {self.failure})" if self.failure else ""
                    raise BenchError(f"swarm: waited {timeout:.0f}s for {what}{failure}")
                self._changed.wait(min(remaining, 0.5))

    def snapshot(self) -> tuple[set[str], set[str]]:
        """(every task ID listed so far, the ones running now)."""
        with self._changed:
            return set(self.seen), {task_id for task_id in self.running if task_id not in self.left}

    def close(self) -> None:
        self._stopping = True
        self._thread.join(timeout=5)
        with contextlib.suppress(Exception):
            self.client.close()


class _SwarmFollower:
    """Times dnscock following one service's tasks on the private swarm (see Bench._follow_scaling)."""

    def __init__(self, swarm, tasks: ManagerTasks, port: int) -> None:
        self.swarm, self.tasks, self.port = swarm, tasks, port

    def node(self, task: dict) -> int:
        try:
            return self.swarm.task_node(task).number
        except KeyError:
            return 0

    def _name(self, task: dict) -> str:
        return f"{task['Slot']}.{SWARM_SERVICE}.docker"

    def start(self, listed: set[str], cause: str, what: str) -> dict[str, Any]:
        """The first task not in ``listed``: from the manager listing it running to dnscock answering its address."""
        tasks = self.tasks
        task_id = tasks.wait(lambda: next((t for t in tasks.seen if t not in listed
                                           and task_address(tasks.tasks[t], SWARM_NETWORK)), None),
                             60, f"a new task of {SWARM_SERVICE} with an address ({what})")
        task = tasks.tasks[task_id]
        name, address = self._name(task), task_address(task, SWARM_NETWORK)
        poller = Poller(self.port, name, want_answer=True, address=address, interval=SWARM_QUERY_INTERVAL)
        running_at = tasks.wait(lambda: tasks.running.get(task_id), 60, f"task {task_id} to run ({what})")
        answered = poller.finish(running_at + SWARM_DEADLINE)
        if answered is None:
            raise BenchError(f"{name} ({address}) not answered within {SWARM_DEADLINE:.0f}s of the manager listing "
                             f"its task running ({what})")
        sample = self._sample(tasks.tasks[task_id], cause, (answered - running_at) * 1000, poller)
        say(f"swarm: {cause}: {name} ({address}, node {sample['node']}): running -> answer {sample['ms']:.0f} ms")
        return sample

    def watch_leave(self, task: dict) -> Poller:
        """Starts asking for ``task``'s name until dnscock no longer answers its address."""
        return Poller(self.port, self._name(task), want_answer=False, address=task_address(task, SWARM_NETWORK),
                      interval=SWARM_QUERY_INTERVAL)

    def leave(self, task: dict, poller: Poller, cause: str) -> dict[str, Any]:
        """From the task leaving the manager's running set to dnscock no longer answering its address."""
        tasks = self.tasks
        task_id = str(task["ID"])
        left_at = tasks.wait(lambda: tasks.left.get(task_id), 60, f"task {task_id} to leave the running set")
        gone = poller.finish(left_at + SWARM_DEADLINE)
        name, address = self._name(task), task_address(task, SWARM_NETWORK)
        if gone is None:
            raise BenchError(f"{name} still answered {address} {SWARM_DEADLINE:.0f}s after its task left the "
                             f"manager's running set ({cause})")
        sample = self._sample(task, cause, (gone - left_at) * 1000, poller)
        say(f"swarm: {cause}: {name} ({address}, node {sample['node']}): out of the running set -> no answer "
            f"({poller.rcode}) {sample['ms']:.0f} ms")
        return sample

    def _sample(self, task: dict, cause: str, ms: float, poller: Poller) -> dict[str, Any]:
        return {"cause": cause, "slot": task.get("Slot"), "task": task.get("ID"), "node": self.node(task), "ms": ms,
                "rcode": poller.rcode, "queries": poller.queries}


def _swarm_summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """p50, p99 and max of the samples' ms, overall and by cause and by node."""
    def figures(values: list[float]) -> dict[str, Any]:
        return {"count": len(values), "p50": percentile(values, 0.5), "p99": percentile(values, 0.99),
                "max": max(values) if values else math.nan}

    return {
        **figures([sample["ms"] for sample in samples]),
        "by_cause": {cause: figures([sample["ms"] for sample in samples if sample["cause"] == cause])
                     for cause in dict.fromkeys(sample["cause"] for sample in samples)},
        "by_node": {f"node{node}": figures([sample["ms"] for sample in samples if sample["node"] == node])
                    for node in sorted({sample["node"] for sample in samples})},
        "samples": samples,
    }


def task_address(task: dict, network: str) -> str | None:
    """A task's address on ``network`` (without the prefix length), None while it has none."""
    for attachment in task.get("NetworksAttachments") or ():
        if ((attachment.get("Network") or {}).get("Spec") or {}).get("Name") == network:
            for address in attachment.get("Addresses") or ():
                return str(address).split("/", 1)[0]
    return None


def ask_whole(port: int, name: str):
    """``ask``, again over TCP when the UDP answer was truncated."""
    dns = dns_modules()
    reply = ask(port, name)
    if reply.flags & dns.flags.TC:
        reply = dns.query.tcp(dns.message.make_query(name, "A"), "127.0.0.1", port=port, timeout=3.0)
    return reply


_METRIC_LINE = re.compile(r"^(dnscock_swarm_(?:polls|changes))_total\{[^}]*\} ([0-9.e+]+)$", re.MULTILINE)


def swarm_counters(http_port: int) -> dict[str, float]:
    """dnscock's ``dnscock_swarm_polls`` and ``dnscock_swarm_changes`` counters (the sum over its swarms)."""
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{http_port}/metrics", timeout=10) as response:
        text = response.read().decode()
    counters = {"polls": 0.0, "changes": 0.0}
    for name, value in _METRIC_LINE.findall(text):
        counters[name.removeprefix("dnscock_swarm_")] += float(value)
    return counters


def remove_containers(engine) -> None:
    containers = engine.client.containers.list(all=True)
    if containers:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda c: c.remove(force=True), containers))


# --- setup, machine info, output ------------------------------------------------------


def dpkg_installed(package: str) -> bool:
    result = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
    return "install ok installed" in result.stdout


def ensure_packages(need_engine: bool) -> None:
    missing = []
    if not shutil.which("dnsperf"):
        missing.append("dnsperf")
    if not os.path.exists(DNSMASQ):
        missing.append("dnsmasq-base")
    if not shutil.which("taskset"):
        missing.append("util-linux")
    if need_engine:
        for package in ("docker.io", "busybox-static", "iproute2"):
            if not dpkg_installed(package):
                missing.append(package)
    if not missing:
        return
    say(f"installing {' '.join(missing)} with apt-get")
    environ = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    command = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]
    result = subprocess.run(command, env=environ, capture_output=True, text=True)
    if result.returncode != 0:
        say("apt-get install failed; running apt-get update first")
        subprocess.run(["apt-get", "update", "-qq"], env=environ, capture_output=True, text=True)
        result = subprocess.run(command, env=environ, capture_output=True, text=True)
    if result.returncode != 0:
        raise BenchError(f"cannot install {' '.join(missing)}: {(result.stderr or result.stdout).strip()[-1000:]}")


def command_output(command: Sequence[str], cwd: Path | None = None) -> str:
    try:
        result = subprocess.run(list(command), capture_output=True, text=True, cwd=cwd, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (result.stdout + result.stderr).strip()


def machine_info() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    dnsperf_version = re.search(r"Version (\S+)", command_output(["dnsperf", "-h"]))
    dnsmasq_version = command_output([DNSMASQ, "--version"]).splitlines()
    commit = command_output(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT)
    dirty = command_output(["git", "status", "--porcelain", "--", "dnscock"], cwd=ROOT)
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "dnsperf": dnsperf_version.group(1) if dnsperf_version else "",
        "dnsmasq": dnsmasq_version[0] if dnsmasq_version else "",
        "dnscock_commit": commit,
        "dnscock_worktree_dirty": bool(dirty),
        "loadavg_at_start": os.getloadavg(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def bar_values(results: dict[str, Any]) -> dict[str, float]:
    values: dict[str, float] = {}
    for case in COMPARED_CASES:
        if case in results:
            values[case] = results[case]["ratio"]
    if "events" in results:
        values["events-start"] = results["events"]["start_ms"]["p50"]
        values["events-stop"] = results["events"]["stop_ms"]["p50"]
    startup = results.get("startup", {})
    if "fake" in startup:
        values["startup-fake"] = startup["fake"]["log_line_s"]
    rss = [startup["fake"][key] for key in ("rss_after_sync_mib", "rss_after_sync_mib_quiet") if "fake" in startup]
    if "scale" in results:
        rss += [results["scale"]["rss_after_sync_mib"], results["scale"]["rss_after_queries_mib"]]
    if rss:
        values["rss"] = max(rss)
    swarm = results.get("swarm", {})
    if "latency" in swarm:
        values["swarm-start-p50"] = swarm["latency"]["start_ms"]["p50"]
        values["swarm-start-max"] = swarm["latency"]["start_ms"]["max"]
        values["swarm-leave-max"] = swarm["latency"]["leave_ms"]["max"]
    if "cpu" in swarm:
        values["swarm-cpu"] = swarm["cpu"]["cpu_pct"]
    return values


def judge(values: dict[str, float], containers: int, swarm_tasks: int = 0) -> list[dict[str, Any]]:
    judged = []
    for key, (label, comparison, limit) in BARS.items():
        if key not in values:
            continue
        value = values[key]
        label = label.format(n=containers, tasks=swarm_tasks)
        passed = {">=": value >= limit, "<": value < limit, "<=": value <= limit}[comparison]
        judged.append({"bar": label, "value": value, "comparison": comparison, "limit": limit, "pass": passed})
    return judged


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    lines = []
    for row in [headers, *rows]:
        cells = [str(cell).ljust(widths[i]) if i == 0 or i == len(row) - 1 else str(cell).rjust(widths[i])
                 for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def report(options: Options, results: dict[str, Any], errors: dict[str, str], bars: list[dict[str, Any]]) -> str:
    out = []
    mode = "smoke" if options.smoke else "full"
    out.append(f"dnscock benchmark ({mode}: {options.seconds}s per dnsperf run, {options.rounds} round(s), "
               f"dnscock on CPU {SERVER_CPU}, dnsperf on CPU {LOAD_CPU})")
    out.append("")
    rows = []

    def row(label: str, ours: dict[str, Any], compared: dict[str, Any]) -> list[str]:
        theirs = compared["reference"]
        spread = (f"{compared['ratio_min']:.2f}-{compared['ratio_max']:.2f}"
                  if len(compared["ratio_rounds"]) > 1 else "-")
        return [label, f"{ours['qps']:,.0f}", f"{theirs['qps']:,.0f}", f"{compared['ratio']:.2f}", spread,
                f"{ours['latency_ms']:.3f}", f"{theirs['latency_ms']:.3f}",
                f"{ours['server_cpu_pct']:.0f}/{theirs['server_cpu_pct']:.0f}", f"{ours['lost']}/{theirs['lost']}",
                compared["reference_name"]]

    for case in COMPARED_CASES:
        if case in results:
            r = results[case]
            label = case if case != "scale" else f"scale ({r['containers']} vs {r['small_containers']})"
            rows.append(row(label, r["dnscock"], r))
            for other in r.get("other_references", {}).values():
                rows.append(row(f"  {case}", r["dnscock"], other))
        elif case in options.cases:
            rows.append([case, "-", "-", "-", "-", "-", "-", "-", "-",
                         f"ERROR: {errors.get(case, '?').splitlines()[0]}"])
    if rows:
        headers = ["case", "dnscock QPS", "ref QPS", "ratio", "min-max", "dnscock ms", "ref ms", "CPU %", "lost",
                   "reference"]
        out.append(table(headers, rows))
        if options.rounds > 1 and any(case in results for case in COMPARED_CASES):
            out.append("(ratio: mean QPS over mean QPS; min-max: lowest and highest of the rounds' own ratios)")
        out.append("")
    if "events" in results:
        e = results["events"]
        out.append(f"events ({e['iterations']} x docker run/stop): "
                   f"start event -> answer p50 {e['start_ms']['p50']:.1f} ms, p99 {e['start_ms']['p99']:.1f} ms; "
                   f"die event -> no address p50 {e['stop_ms']['p50']:.1f} ms, p99 {e['stop_ms']['p99']:.1f} ms "
                   f"({', '.join(f'{code} {count}' for code, count in e['stop_ms']['rcodes'].items())})")
    elif "events" in options.cases:
        out.append(f"events: ERROR: {errors.get('events', '?')}")
    startup = results.get("startup", {})
    for key, label in (("real", "real containers"), ("fake", "fake-engine containers")):
        if key in startup:
            s = startup[key]
            out.append(f"startup, {s['containers']} {label}: launch -> 'connected to the Docker engine' "
                       f"{s['log_line_s']:.2f} s; with -verbose=false, launch -> first local answer "
                       f"{s['quiet_s']:.2f} s; VmRSS after sync {s['rss_after_sync_mib']:.1f} MiB")
    if "startup" in options.cases and "startup" in errors:
        out.append(f"startup: ERROR: {errors['startup']}")
    if "scale" in results:
        s = results["scale"]
        out.append(f"VmRSS with {s['containers']} containers: {s['rss_after_sync_mib']:.1f} MiB after sync, "
                   f"{s['rss_after_queries_mib']:.1f} MiB after the scale queries")
    swarm = results.get("swarm", {})
    if "latency" in swarm:
        s = swarm["latency"]
        start, leave = s["start_ms"], s["leave_ms"]
        out.append(f"swarm ({s['events']} tasks scaled up one at a time, {s['kills']} killed on node 2, then scaled "
                   f"down, on a two-node swarm; -swarm-poll 1): task running -> answer p50 {start['p50']:.0f} ms, "
                   f"p99 {start['p99']:.0f} ms, max {start['max']:.0f} ms; out of the running set -> no answer "
                   f"p50 {leave['p50']:.0f} ms, p99 {leave['p99']:.0f} ms, max {leave['max']:.0f} ms "
                   f"({', '.join(f'{code} {count}' for code, count in leave['rcodes'].items())})")
        out.append("  by cause: " + "; ".join(
            f"{what} {cause} p50 {f['p50']:.0f} ms, max {f['max']:.0f} ms ({f['count']})"
            for what, figures in (("start", start), ("leave", leave))
            for cause, f in figures["by_cause"].items()))
    if "cpu" in swarm:
        c = swarm["cpu"]
        out.append(f"swarm CPU (fake manager, -swarm-poll 1, {c['seconds']} s, no queries): {c['tasks']} tasks in "
                   f"{c['services']} services {c['cpu_pct']:.2f}% of one core, {c['baseline_tasks']} tasks "
                   f"{c['baseline_cpu_pct']:.2f}% (the tasks: {c['tasks_cpu_pct']:+.2f}%); VmRSS "
                   f"{c['runs'][str(c['tasks'])]['rss_mib']:.1f} MiB")
    if "swarm" in options.cases and "swarm" in errors:
        out.append(f"swarm: ERROR: {errors['swarm']}")
    other = {case: message for case, message in errors.items() if case not in options.cases}
    for case, message in other.items():
        out.append(f"{case}: ERROR: {message}")
    if bars:
        out.append("")
        out.append("bars:")
        out.append(table(["bar", "value", "limit", "result"],
                         [[b["bar"], f"{b['value']:.2f}", f"{b['comparison']} {b['limit']:g}",
                           "PASS" if b["pass"] else "FAIL"] for b in bars]))
    return "\n".join(out)


def smoke_problems(options: Options, results: dict[str, Any]) -> list[str]:
    """Every selected case produced figures, each > 0 (no thresholds)."""
    problems = []
    for case in options.cases:
        if case not in results:
            problems.append(f"{case}: no figures")
            continue
        r = results[case]
        if case in COMPARED_CASES:
            figures = {"dnscock qps": r["dnscock"]["qps"]}
            for compared in (r, *r.get("other_references", {}).values()):
                name = compared["reference_name"]
                figures[f"{name} qps"] = compared["reference"]["qps"]
                figures[f"ratio to {name}"] = compared["ratio"]
        elif case == "events":
            figures = {"iterations": r["iterations"], "start samples": len(r["start_ms"]["samples"]),
                       "stop samples": len(r["stop_ms"]["samples"])}
        elif case == "swarm":
            latency, cpu = r.get("latency", {}), r.get("cpu", {})
            figures = {"start samples": len(latency.get("start_ms", {}).get("samples", ())),
                       "leave samples": len(latency.get("leave_ms", {}).get("samples", ())),
                       "task listings (CPU run)": min((run["polls"] for run in cpu.get("runs", {}).values()),
                                                      default=0),
                       "CPU window s": cpu.get("seconds", 0)}
        else:
            figures = {f"{key} {name}": r[key][name] for key in ("real", "fake") if key in r
                       for name in ("log_line_s", "quiet_s", "rss_after_sync_mib")}
            if set(r) != {"real", "fake"}:
                figures["both engines"] = 0
        problems += [f"{case}: {name} = {value}" for name, value in figures.items()
                     if not (isinstance(value, (int, float)) and value > 0)]
    return problems


def parse_options(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, help="seconds per dnsperf run (default 15; smoke 1)")
    parser.add_argument("--rounds", type=int, help="alternating dnscock/reference rounds (default 2; smoke 1)")
    parser.add_argument("--containers", type=int, help="real containers of the local case (default 50; smoke 6)")
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
    if values["scale_containers"] < 1 or values["sync_containers"] < 1:
        parser.error("--scale-containers and --sync-containers must be at least 1")
    return Options(cases=[case for case in CASES if case in cases], json_path=args.json, smoke=args.smoke, **values)


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


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
    try:
        ensure_packages(need_engine)
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, _terminate)
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="dcb", dir="/tmp"))
    tmp.chmod(0o755)  # dnsmasq reads its hosts file after dropping root
    processes = Processes()
    bench = Bench(options, tmp, processes)
    info = machine_info()
    say(f"cases {', '.join(options.cases)}; temp dir {tmp}; dnscock {info['dnscock_commit']}"
        f"{' (dnscock/ has uncommitted changes)' if info['dnscock_worktree_dirty'] else ''}")
    interrupted = False
    try:
        bench.run()
    except KeyboardInterrupt:
        interrupted = True
        say("interrupted; cleaning up")
    finally:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave a dockerd behind
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            bench.cleanup()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            if tmp.exists():
                say(f"warning: could not remove all of {tmp}")
            signal.signal(signal.SIGINT, previous)
    if interrupted:
        return 130
    elapsed = time.monotonic() - started
    bars = [] if options.smoke else judge(bar_values(bench.results), options.scale_containers, options.swarm_tasks)
    document = {
        "machine": info,
        "options": {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(options).items()},
        "elapsed_s": elapsed,
        "results": bench.results,
        "bars": bars,
        "errors": bench.errors,
        "warnings": bench.warnings,
    }
    problems = smoke_problems(options, bench.results) if options.smoke else []
    document["smoke_problems"] = problems
    options.json_path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    print(report(options, bench.results, bench.errors, bars))
    for warning in bench.warnings:
        print(f"warning: {warning}")
    print(f"\n{len(options.cases)} case(s) in {elapsed:.0f} s; figures in {options.json_path}")
    if bench.errors:
        print(f"bench: {len(bench.errors)} case(s) could not run: {', '.join(sorted(bench.errors))}", file=sys.stderr)
        return 1
    if problems:
        print("bench: smoke check failed:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
