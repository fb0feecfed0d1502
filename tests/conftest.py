"""Fixtures shared by every test layer."""

from __future__ import annotations

import pytest

from tests.support.dnscock_process import DnscockProcess
from tests.support.fake_authority import FakeAuthority
from tests.support.fake_upstream import FakeUpstream
from tests.support.unbound import Unbound, loopback_with_free_port_53, skipped_when_unavailable, start_or_skip

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


@pytest.fixture
def start_unbound(tmp_path):
    """Starts an Unbound with the config texts given (skips when unbound cannot be had); stops it after."""
    started: list[Unbound] = []

    def start(*config: str, **kwargs) -> Unbound:
        started.append(Unbound(tmp_path / f"unbound-{len(started)}", *config, **kwargs))
        return start_or_skip(started[-1])

    yield start
    for unbound in started:
        unbound.stop()


@pytest.fixture
def make_authority():
    servers: list[FakeAuthority] = []

    def make(zone: str, *records: str, **kwargs) -> FakeAuthority:
        servers.append(FakeAuthority(zone, *records, **kwargs))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def port_53_host():
    """A 127.53.x.y whose port 53 is free (skips when port 53 cannot be bound here)."""
    with skipped_when_unavailable():
        return loopback_with_free_port_53()
