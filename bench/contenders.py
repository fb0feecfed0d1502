"""The servers the bench runs and measures, each waited for until it answers on 127.0.0.1.

- ``Dnsmasq``: the reference (from a hosts file, forwarding with its cache
  off, or the upstream everything forwards to, answering itself);
- ``Ceiling``: ``python -m bench.ceiling``, the least a Python/gevent DNS
  server can do (``forward`` to the upstream, or ``answer`` from a hosts
  file), the other measuring stick;
- ``Dnscock``: ``python -m dnscock``, its log kept with the time each line
  was read (the startup and swarm cases time it by its log).

Whatever is measured runs alone on SERVER_CPU; the upstream on LOAD_CPU.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import select
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import dns.message
import dns.opcode

from bench.dnsclient import wait_for_reply
from bench.errors import BenchError
from bench.packages import DNSMASQ
from bench.processes import PYTHON, ROOT, SERVER_CPU, Processes, pin, pinned, read_rss_kib
from tests.support.ports import free_port

log = logging.getLogger(__name__)

DNSMASQ_COMMON = [
    "--keep-in-foreground", "--conf-file=/dev/null", "--listen-address=127.0.0.1", "--bind-interfaces",
    "--log-facility=/dev/null", "--no-resolv", "--no-hosts",
]
START_TIMEOUT = 10.0  # seconds for a reference to answer its first query


class AnsweringServer:
    """A server started with ``command`` that answers on 127.0.0.1:``port`` (any reply to ``probe`` will do).

    Its stderr goes to ``<tmp>/<label>.err``, shown when it does not answer.
    """

    def __init__(self, processes: Processes, tmp: Path, label: str, name: str, port: int, command: Sequence[str],
                 probe: str) -> None:
        self.name = name  # in the table, the JSON and the progress lines
        self.port = port
        self.stderr_path = tmp / f"{label}.err"
        self._processes = processes
        with open(self.stderr_path, "wb") as stderr:
            self.process = processes.spawn(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            wait_for_reply(port, probe, START_TIMEOUT, self.process, name)
        except BenchError as error:
            raise BenchError(f"{error}: {self.stderr_path.read_text(errors='replace').strip()}") from None

    @property
    def pid(self) -> int:
        return self.process.pid

    def pin(self, cpu: str) -> None:
        pin(self.pid, cpu)

    def stop(self) -> None:
        self._processes.stop(self.process)


class Dnsmasq(AnsweringServer):
    """dnsmasq on ``cpu`` with the common options (no config, no resolv.conf, no /etc/hosts) and ``args``."""

    def __init__(self, processes: Processes, tmp: Path, label: str, cpu: str, args: Sequence[str], probe: str,
                 name: str = "") -> None:
        port = free_port()
        command = pinned(cpu, [DNSMASQ, *DNSMASQ_COMMON, f"--port={port}",
                               f"--pid-file={tmp / f'dnsmasq-{label}.pid'}", *args])
        super().__init__(processes, tmp, f"dnsmasq-{label}", name or f"dnsmasq ({label})", port, command, probe)


class Ceiling(AnsweringServer):
    """``python -m bench.ceiling MODE PORT ARGUMENT`` alone on SERVER_CPU.

    ``forward``: ARGUMENT is the upstream's port (it relays whatever the
    upstream says); ``answer``: a hosts file (NXDOMAIN for other names).
    """

    def __init__(self, processes: Processes, tmp: Path, mode: str, argument: str | int | Path, probe: str) -> None:
        port = free_port()
        command = pinned(SERVER_CPU, [PYTHON, "-m", "bench.ceiling", mode, str(port), str(argument)])
        super().__init__(processes, tmp, f"ceiling-{mode}", f"ceiling {mode}", port, command, probe)


_LISTENING = re.compile(r"listening on udp (\S+):(\d+) and tcp")
_CONNECTED = re.compile(r"connected to the Docker engine")
_TROUBLE = re.compile(r"\bERROR\b|^Traceback")  # dnscock crashed, or its engine watcher did


class Dnscock:
    """``python -m dnscock`` pinned to the server CPU, its log kept with the time each line was read.

    ``source`` is the checkout whose dnscock runs (``--dnscock``): this one
    by default, or a worktree of an earlier commit, measured by the same bench.

    With ``-verbose=false`` dnscock logs neither "listening on ..." nor
    "connected to the Docker engine ...", so then readiness is told by DNS:
    any reply (listening), then the first local answer (synced).
    """

    source: Path = ROOT

    def __init__(self, processes: Processes, label: str, docker_url: str, nameserver_port: int,
                 verbose: bool = False, extra: Sequence[str] = ()) -> None:
        self.label = label
        self.verbose = verbose
        self.port = free_port()
        command = pinned(SERVER_CPU, [PYTHON, "-m", "dnscock", f"-dns=127.0.0.1:{self.port}",
                                      f"-docker={docker_url}", f"-nameserver=127.0.0.1:{nameserver_port}", *extra])
        if not verbose:
            command.append("-verbose=false")
        environ = {key: value for key, value in os.environ.items()
                   if not key.startswith("DNSCOCK_") and key != "DOCKER_HOST"}
        environ["PYTHONUNBUFFERED"] = "1"
        self.lines: list[tuple[float, str]] = []
        self._changed = threading.Condition()
        self._eof = False
        self.launched = time.monotonic()
        self.synced_s: float | None = None  # seconds from launch to the first full sync, once wait_synced saw it
        self.process = processes.spawn(command, cwd=Dnscock.source, env=environ, stdout=subprocess.PIPE,
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
        if self.verbose:
            moment, _ = self.wait_line(_CONNECTED, timeout, what="sync")
            self.synced_s = moment - self.launched
            return self.synced_s, "log line"
        deadline = time.monotonic() + timeout
        self.wait_listening(timeout)  # a query sent before the bind would be lost for a whole resend interval
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
                except Exception:  # noqa: S112 (not a reply to read: wait for the next)
                    continue
                if reply.id != query_id:
                    continue
                if reply.rcode() == 0 and reply.answer:
                    self.synced_s = received - self.launched
                    return self.synced_s, "first local answer"
                sent_at = received - 1.0 + 0.005  # SERVFAIL before the sync: ask again in 5 ms

    def wait_line(self, regex: re.Pattern, timeout: float = 60.0, what: str = "") -> tuple[float, re.Match]:
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
        missing = f"did not {what}" if what else f"logged no line like {regex.pattern!r}"
        raise BenchError(f"dnscock ({self.label}) {missing} within {timeout:.0f}s:\n{self.log_tail()}")

    def rss_mib(self) -> float:
        return read_rss_kib(self.pid) / 1024

    def stop(self) -> None:
        code = self._processes.stop(self.process)
        if code not in (0, -signal.SIGTERM, None):
            log.warning("dnscock (%s) exited with code %s on SIGTERM:\n%s", self.label, code, self.log_tail(5))
