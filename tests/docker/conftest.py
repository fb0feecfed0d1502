"""A private Docker engine for the tests in this folder (see tests/support/private_engine.py).

Outside CI the tests skip, with the reason, when no engine can be started
here (not root, docker.io missing); in CI (``CI`` set) that is a failure.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.support.private_engine import EngineUnavailable, PrivateEngine
from tests.support.swarm import PrivateSwarm


def _start_or_skip(what: str, made, prefix: str):
    """Starts ``made(root)`` in a fresh /tmp directory; fails in CI and skips elsewhere when it cannot start."""
    # Short paths: an engine's unix sockets live under its exec root (108-byte limit).
    root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    started = made(root)
    try:
        started.start()
    except EngineUnavailable as error:
        shutil.rmtree(root, ignore_errors=True)
        if os.environ.get("CI"):
            pytest.fail(f"no {what} in CI: {error}")
        pytest.skip(f"no {what} here: {error}")
    return started


def start_engine(prefix: str) -> PrivateEngine:
    return _start_or_skip("private Docker engine", PrivateEngine, prefix)


def stop_engine(engine: PrivateEngine) -> None:
    engine.stop()
    shutil.rmtree(engine.root, ignore_errors=True)


@pytest.fixture(scope="session")
def engine():
    engine = start_engine("dck-")
    yield engine
    stop_engine(engine)


def start_swarm(prefix: str = "dcs-", managers: int = 1, **kwargs) -> PrivateSwarm:
    """A private two-node swarm (tests/support/swarm.py); skips outside CI when none can be made here."""
    return _start_or_skip("private Docker swarm", lambda root: PrivateSwarm(root, managers=managers, **kwargs),
                          prefix)


def stop_swarm(swarm: PrivateSwarm) -> None:
    """Stops it; fails when anything of it is left on the machine."""
    swarm.stop()
    left = swarm.leftovers()
    assert not left, f"the swarm left behind: {left}"


@pytest.fixture(scope="module")
def swarm():
    """Node 1 (manager, root namespace) and node 2 (worker, its own namespace), for the module's tests.

    Tests that stop a node's engine or otherwise break the swarm start their own with ``start_swarm()``
    (``managers=2`` for two managers) and end it with ``stop_swarm()``."""
    swarm = start_swarm()
    yield swarm
    stop_swarm(swarm)


@pytest.fixture
def swarm_env(swarm):
    """The module's swarm, emptied of stacks, services, containers and networks after each test, with
    node 2 connected and active again."""
    yield swarm
    swarm.reset()


@pytest.fixture
def docker_env(engine):
    """The shared engine, emptied of containers and extra networks after each test."""
    yield engine
    for container in engine.client.containers.list(all=True):
        container.remove(force=True)
    for network in engine.client.networks.list():
        if network.name not in ("bridge", "host", "none"):
            network.remove()


@pytest.fixture
def dnscock_for(start_dnscock, upstream):
    """Starts dnscock watching ``engine`` with the fake upstream, once synced."""

    def start(engine: PrivateEngine, *args: str, env: dict[str, str] | None = None, listen: str = "127.0.0.1:0"):
        process = start_dnscock(f"-docker={engine.url}", f"-nameserver={upstream.address}", *args, env=env,
                                listen=listen)
        process.wait_for_log("connected to the Docker engine")
        return process

    return start
