"""The fake engine in a child process: ``python -m tests.support.fake_engine``, run from the repository root.

For those that need it apart from their own process (a benchmark pinning it
to a CPU, a fuzzer, a test that starts dnscock in another process anyway).
Its output goes to ``<socket>.log`` beside the socket; it is ready once it
has written ``<socket>.ready`` (after it listens).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tests.support.processes import stop_process

ROOT = Path(__file__).resolve().parents[3]
READY_TIMEOUT = 120.0  # seconds: a large engine builds every document before it listens


class FakeEngineProcess:
    """``python -m tests.support.fake_engine --socket SOCKET --containers N OPTIONS...``, once ready.

    ``prefix`` goes before the command (``taskset -c 0``, say); ``popen``
    starts it, ``subprocess.Popen`` or anything that takes the same arguments
    (a registry of children that stops them all in the end). RuntimeError,
    with the end of its output, when it exits or is not ready in time.
    """

    def __init__(self, socket_path: Path, containers: int, *options: str, prefix: Sequence[str] = (),
                 popen: Callable[..., subprocess.Popen] = subprocess.Popen, timeout: float = READY_TIMEOUT) -> None:
        self.socket_path = Path(socket_path)
        self.containers = containers
        self.url = f"unix://{self.socket_path}"
        self.log_path = self.socket_path.with_name(self.socket_path.name + ".log")
        ready = self.socket_path.with_name(self.socket_path.name + ".ready")
        command = [*prefix, sys.executable, "-m", "tests.support.fake_engine", "--socket", str(self.socket_path),
                   "--containers", str(containers), "--ready-file", str(ready), *options]
        with open(self.log_path, "wb") as log:
            self.process = popen(command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if self.process.poll() is not None:
                raise RuntimeError(f"the fake engine exited with code {self.process.returncode}: {self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the fake engine was not ready within {timeout:.0f}s: {self.log_tail()}")
            time.sleep(0.02)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, characters: int = 500) -> str:
        return self.log_path.read_text(errors="replace").strip()[-characters:]

    def stop(self) -> int:
        """SIGTERM (it removes its socket and ready file), then SIGKILL if need be; its exit code."""
        return stop_process(self.process)
