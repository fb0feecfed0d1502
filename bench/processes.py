"""The bench's children and CPUs: each child in a session of its own, ended by PID; pinning; CPU time and RSS.

Every server under test runs alone on SERVER_CPU; dnsperf, the upstream
dnsmasq, the fake engines and the bench's own pollers share LOAD_CPU.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from bench.errors import BenchError
from tests.support.processes import stop_process

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
SERVER_CPU = "1"  # the server under test, alone
LOAD_CPU = "0"  # dnsperf, the upstream of dnscock, the fake engines, the bench's pollers


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
                log.warning("cleanup: cannot stop PID %s: %s", process.pid, error)


def interrupt(signum: int, frame: object) -> NoReturn:
    """A signal handler: the signal unwinds like Ctrl-C, so that the cleanup runs."""
    raise KeyboardInterrupt(f"signal {signum}")


def temp_dir(prefix: str) -> Path:
    """A new folder under /tmp (short: sockets live in it), readable by all (dnsmasq reads it after dropping root)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


def clean_up(stop: Callable[[], None], tmp: Path) -> None:
    """``stop()``, then ``tmp`` removed, with SIGINT and SIGTERM ignored meanwhile: a second Ctrl-C must not leave
    a dockerd behind."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if tmp.exists():
            log.warning("warning: could not remove all of %s", tmp)
        signal.signal(signal.SIGINT, previous)


def pinned(cpu: str, command: Sequence[str]) -> list[str]:
    """``command`` run on ``cpu`` alone (``taskset -c``)."""
    return ["taskset", "-c", cpu, *command]


def pin(pid: int, cpu: str) -> None:
    """Moves a running process to ``cpu``."""
    result = subprocess.run(["taskset", "-pc", cpu, str(pid)], capture_output=True, text=True)
    if result.returncode != 0:
        raise BenchError(f"taskset -pc {cpu} {pid} failed: {result.stderr.strip()}")


@contextlib.contextmanager
def threads_on(cpu: str) -> Iterator[None]:
    """Pins every thread of this process (and the threads it starts meanwhile) to ``cpu``."""
    before = os.sched_getaffinity(0)

    def set_all(cpus: set[int]) -> None:
        for task in os.listdir("/proc/self/task"):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(int(task), cpus)

    set_all({int(cpu)})
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
