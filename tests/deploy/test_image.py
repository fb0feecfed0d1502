"""The image built from the repo's Dockerfile, run as the README's Deploy section says.

It runs in network mode host (the tests send packets to loopback only), on a
free port of 127.0.0.1, with a config file mounted read-only at
/etc/dnscock/dnscock.conf and the private engine's socket at
/var/run/docker.sock, its group added (the image runs as uid 10053).
"""

from __future__ import annotations

import logging
import os
import time
from datetime import UTC, datetime

import pytest

from tests.deploy.helpers import ANSWER_IP, FORWARDED_NAME, query, wait_for_addresses
from tests.support.ports import free_port

log = logging.getLogger(__name__)
pytestmark = pytest.mark.timeout(900)  # the first run builds the base image and the image

HEALTH_FAST = {"test": ["CMD", "python", "-m", "dnscock.healthcheck"], "interval": 500_000_000,
               "timeout": 2_000_000_000, "start_period": 0, "retries": 3}


@pytest.fixture
def run_dnscock(docker_env, dnscock_image, upstream, tmp_path):
    """Starts the image with a config file; returns (container, port) once it is connected to the engine."""

    def run(**kwargs):
        port = free_port()
        config = tmp_path / "dnscock.conf"
        config.write_text(f"dns = 127.0.0.1:{port}\n"
                          "docker = unix:///var/run/docker.sock\n"
                          f"nameserver = {upstream.address}\n")
        config.chmod(0o644)
        socket_path = str(docker_env.socket_path)
        container = docker_env.client.containers.run(
            dnscock_image.id, detach=True, name="dnscock", network_mode="host",
            volumes={str(config): {"bind": "/etc/dnscock/dnscock.conf", "mode": "ro"},
                     socket_path: {"bind": "/var/run/docker.sock", "mode": "ro"}},
            group_add=[str(os.stat(socket_path).st_gid)],
            **kwargs,
        )
        wait_for_log(container, "connected to the Docker engine")
        return container, port

    return run


def wait_for_log(container, text: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        logs = container.logs().decode(errors="replace")
        if text in logs:
            return
        container.reload()
        if container.status not in ("created", "running") or time.monotonic() > deadline:
            raise AssertionError(f"no {text!r} in the container's log (status {container.status}):\n{logs}")
        time.sleep(0.1)


def docker_time(stamp: str) -> float:
    """Seconds since the epoch of an engine timestamp (RFC 3339, nanoseconds)."""
    stamp = stamp.rstrip("Z")
    whole, _, fraction = stamp.partition(".")
    moment = datetime.fromisoformat(whole).replace(tzinfo=UTC)
    return moment.timestamp() + float("0." + (fraction or "0"))


def test_image_config(dnscock_image):
    config = dnscock_image.attrs["Config"]
    assert config["User"] == "dnscock"
    assert config["Entrypoint"] == ["python", "-m", "dnscock"]
    assert {"53/udp", "53/tcp"} <= set(config["ExposedPorts"])
    # The Dockerfile's own HEALTHCHECK (the tests below pass a faster interval at run time).
    assert config["Healthcheck"]["Test"] == ["CMD", "python", "-m", "dnscock.healthcheck"]
    assert config["Healthcheck"]["Interval"] == 30_000_000_000
    assert config["Healthcheck"]["Retries"] == 3


def test_container_answers_containers_and_forwards(docker_env, run_dnscock, upstream):
    container, port = run_dnscock()
    assert container.exec_run(["id", "-u"]).output.decode().strip() == "10053"
    redis = docker_env.run("redis:latest", name="x1")
    redis.reload()
    ip = redis.attrs["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
    logs = lambda: container.logs().decode(errors="replace")  # noqa: E731
    wait_for_addresses(port, "x1.redis.docker", [ip], log=logs)
    wait_for_addresses(port, "x1.redis.docker", [ip], tcp=True, log=logs)
    assert query(port, FORWARDED_NAME).answer[0][0].address == ANSWER_IP
    assert any(str(q.question[0].name) == FORWARDED_NAME + "." for q in upstream.queries)


def test_docker_stop_ends_it_at_once(run_dnscock):
    container, port = run_dnscock()
    asked = time.time()
    started = time.monotonic()
    container.stop(timeout=10)
    took = time.monotonic() - started
    container.reload()
    state = container.attrs["State"]
    log.info("docker stop took %.2fs; the container finished %.2fs after it was asked", took,
             docker_time(state["FinishedAt"]) - asked)
    assert state["Status"] == "exited"
    # Exit code 0: dnscock handled SIGTERM itself, no SIGKILL after the 10 s grace (137).
    assert state["ExitCode"] == 0, container.logs().decode(errors="replace")
    assert docker_time(state["FinishedAt"]) - asked < 2.0, (state["FinishedAt"], asked)
    assert took < 5.0
    logs = container.logs().decode(errors="replace")
    assert "stopping" in logs and "Traceback" not in logs, logs


def test_healthcheck_turns_healthy(run_dnscock):
    container, port = run_dnscock(healthcheck=HEALTH_FAST)
    deadline = time.monotonic() + 30
    while True:
        container.reload()
        health = container.attrs["State"].get("Health") or {}
        if health.get("Status") == "healthy":
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"not healthy within 30s: {health}")
        time.sleep(0.2)
    assert health["Log"][-1]["ExitCode"] == 0
