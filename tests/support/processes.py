"""Child processes of the tests: stopping one politely (a signal, a wait, then SIGKILL) and
reading its output as log lines, in a thread, to wait for a line."""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import threading
from typing import IO


def stop_process(process: subprocess.Popen, timeout: float = 10.0, signum: int = signal.SIGTERM) -> int:
    """Sends ``signum``, waits up to ``timeout`` seconds, kills it if still running; returns its exit code."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signum)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait()
    return process.returncode


class LogLines:
    """The lines of a child's output (``lines``, appended as they come), read in a thread of their own."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self._ended = False
        self._changed = threading.Condition()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def wait_for(self, pattern: str | re.Pattern, timeout: float = 10.0, start: int = 0) -> re.Match:
        """The first line matching ``pattern`` (from line ``start`` on), once there is one.

        AssertionError, with the whole log, when none comes within ``timeout`` or before the output ends.
        """
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern

        def first_match() -> re.Match | None:
            return next(filter(None, map(regex.search, self.lines[start:])), None)

        with self._changed:
            self._changed.wait_for(lambda: self._ended or first_match(), timeout)
            match = first_match()
            if match is None:
                raise AssertionError(f"no log line matching {regex.pattern!r}; log:\n" + self.text())
            return match

    def copy(self) -> list[str]:
        """The lines so far, as they stand now."""
        with self._changed:
            return list(self.lines)

    def text(self) -> str:
        with self._changed:
            return "\n".join(self.lines)
