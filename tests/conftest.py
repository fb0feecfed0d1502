"""Fixtures shared by every test layer."""

from __future__ import annotations

import pytest

from tests.support.dnscock_process import DnscockProcess
from tests.support.fake_upstream import FakeUpstream

NO_ENGINE = "unix:///nonexistent/docker.sock"


@pytest.fixture
def upstream():
    server = FakeUpstream("answer")
    yield server
    server.close()


@pytest.fixture
def make_upstream():
    servers: list[FakeUpstream] = []

    def make(mode: str = "answer", **kwargs) -> FakeUpstream:
        servers.append(FakeUpstream(mode, **kwargs))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def start_dnscock():
    """Starts ``python -m dnscock ARGS`` on 127.0.0.1, a free port; stops it after the test."""
    processes: list[DnscockProcess] = []

    def start(*args: str, env: dict[str, str] | None = None, listen: str = "127.0.0.1:0") -> DnscockProcess:
        processes.append(DnscockProcess(f"-dns={listen}", *args, env=env))
        return processes[-1]

    yield start
    for process in processes:
        process.stop()
