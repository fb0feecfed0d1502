"""Run the real ``python -m dnscock`` in a subprocess on a loopback port chosen by the kernel.

The server binds port 0 and logs ``listening on udp HOST:PORT``; the port is
read from that line, so there is no race for a port and no sleep.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import dns.message
import dns.query
import dns.rcode

from tests.support.processes import LogLines, stop_process

ROOT = Path(__file__).resolve().parents[2]
_LISTENING = re.compile(r"listening on udp (\S+):(\d+) and tcp")
_HTTP = re.compile(r"serving HTTP on (http://\S+) ")


class DnscockProcess:
    def __init__(self, *args: str, env: dict[str, str] | None = None, start_timeout: float = 15.0) -> None:
        environ = {key: value for key, value in os.environ.items()
                   if not key.startswith("DNSCOCK_") and key != "DOCKER_HOST"}
        environ.update(env or {})
        environ["PYTHONUNBUFFERED"] = "1"
        self.args = list(args)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dnscock", *args],
            cwd=ROOT, env=environ, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        assert self.process.stdout is not None
        self._log = LogLines(self.process.stdout)
        self.lines = self._log.lines  # appended to as dnscock logs
        match = self.wait_for_log(_LISTENING, start_timeout)
        self.host = match.group(1).strip("[]")
        if self.host in ("::", "0.0.0.0"):
            self.host = "127.0.0.1"
        self.port = int(match.group(2))
        self.http_url = ""  # with -http: the base URL of the HTTP API, read from the log
        if any(arg.startswith(("-http=", "--http=")) for arg in args) or "DNSCOCK_HTTP" in (env or {}):
            self.http_url = self.wait_for_log(_HTTP, start_timeout).group(1)

    def wait_for_log(self, pattern: str | re.Pattern, timeout: float = 10.0, start: int = 0) -> re.Match:
        """Waits for a log line matching ``pattern`` (from line ``start`` on)."""
        return self._log.wait_for(pattern, timeout, start)

    def log(self) -> str:
        return self._log.text()

    def query(self, name: str, rdtype: str = "A", *, tcp: bool = False, timeout: float = 5.0,
              **make_kwargs) -> dns.message.Message:
        message = dns.message.make_query(name, rdtype, **make_kwargs)
        ask = dns.query.tcp if tcp else dns.query.udp
        return ask(message, self.host, port=self.port, timeout=timeout)

    def addresses(self, name: str, rdtype: str = "A") -> list[str]:
        """The sorted addresses in the answer (an empty list for NXDOMAIN or NODATA)."""
        reply = self.query(name, rdtype)
        return sorted(rr.address for rrset in reply.answer for rr in rrset)

    def wait_for_answer(self, name: str, predicate, timeout: float = 10.0, rdtype: str = "A"):
        """Queries until ``predicate(reply)`` holds: the engine's events arrive asynchronously."""
        deadline = time.monotonic() + timeout
        while True:
            reply = self.query(name, rdtype)
            if predicate(reply):
                return reply
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} {rdtype}: last reply did not satisfy the condition:\n{reply}\nlog:\n{self.log()}")
            time.sleep(0.02)

    def stop(self, timeout: float = 10.0) -> int:
        return stop_process(self.process, timeout)


def rcode(reply: dns.message.Message) -> str:
    return dns.rcode.to_text(reply.rcode())
