"""Stopping a child process politely: a signal (SIGTERM), a wait, then SIGKILL."""

from __future__ import annotations

import contextlib
import signal
import subprocess


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
