"""The repo's docker-compose.yml, run with Debian's docker-compose (v1) on the private engine.

A test override file puts the service in network mode host (the tests send
packets to loopback only), builds from the local base image, mounts the
private engine's socket instead of /var/run/docker.sock, and sets the free
ports through DNSCOCK_* env vars: dnscock is configured by env vars alone.
The socket's group comes in through DOCKER_GID, as the README says.

The ``53:53`` publications live in docker-compose.override.yml, which a plain
``docker-compose up`` reads: compose v1 merges ``ports`` lists (``ports: []``
in an override resets nothing), and rejects published ports in network mode
host. Naming the files with ``-f`` leaves that one out.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time

import pytest

from tests.deploy.conftest import unavailable
from tests.deploy.helpers import ANSWER_IP, FORWARDED_NAME, query, wait_for_addresses
from tests.support.dnscock_process import ROOT
from tests.support.ports import free_port

pytestmark = pytest.mark.timeout(900)  # the first run builds the base image and the image

log = logging.getLogger(__name__)
PROJECT = "dnscockdeploy"
OVERRIDE = """\
version: "2.4"
services:
  dnscock:
    build:
      network: host
      args:
        BASE: {base}
    image: dnscock:compose-test
    network_mode: host
    restart: "no"
    environment:
      DNSCOCK_DNS: 127.0.0.1:{port}
      DNSCOCK_NAMESERVER: {upstream}
    volumes:
      - {socket}:/var/run/docker.sock:ro
"""


@pytest.fixture
def compose(docker_env, base_image, dnscock_image, upstream, tmp_path):
    """``docker-compose -f docker-compose.yml -f <override> -p dnscockdeploy ARGS``; ``down`` after the test.

    ``dnscock_image`` is built first so that compose's build finds every step in the build cache.
    """
    if shutil.which("docker-compose") is None:
        unavailable("docker-compose is not installed (apt-get install docker-compose)")
    port = free_port()
    override = tmp_path / "docker-compose.test.yml"
    override.write_text(OVERRIDE.format(base=base_image, port=port, upstream=upstream.address,
                                        socket=docker_env.socket_path))
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DNSCOCK_", "DOCKER_", "COMPOSE_"))}
    env.update(DOCKER_HOST=docker_env.url, DOCKER_GID=str(os.stat(docker_env.socket_path).st_gid),
               COMPOSE_DOCKER_CLI_BUILD="0", DOCKER_BUILDKIT="0", DOCKER_CLIENT_TIMEOUT="600")
    command = ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "-f", str(override), "-p", PROJECT]

    def run(*args: str, timeout: float = 600) -> str:
        result = subprocess.run([*command, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                                timeout=timeout)
        assert result.returncode == 0, f"docker-compose {' '.join(args)}: {result.stdout}\n{result.stderr}"
        return result.stdout + result.stderr

    run.port = port
    yield run
    subprocess.run([*command, "down", "--timeout", "10"], cwd=ROOT, env=env, capture_output=True, timeout=120)


def test_compose_up_query_logs_down(docker_env, compose, upstream):
    started = time.monotonic()
    compose("up", "-d", "--build")
    up_took = time.monotonic() - started
    project = {"label": f"com.docker.compose.project={PROJECT}"}
    [container] = docker_env.client.containers.list(filters=project)
    attrs = container.attrs
    assert attrs["HostConfig"]["NetworkMode"] == "host"
    assert not attrs["HostConfig"]["PortBindings"]
    environment = dict(item.partition("=")[::2] for item in attrs["Config"]["Env"])
    assert environment["DNSCOCK_DNS"] == f"127.0.0.1:{compose.port}"
    assert environment["DNSCOCK_DOCKER"] == "unix:///var/run/docker.sock"
    assert str(os.stat(docker_env.socket_path).st_gid) in attrs["HostConfig"]["GroupAdd"]

    redis = docker_env.run("redis:latest", name="x1")
    redis.reload()
    ip = redis.attrs["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
    logs = lambda: compose("logs", "--no-color", "dnscock")  # noqa: E731
    wait_for_addresses(compose.port, "x1.redis.docker", [ip], log=logs)
    assert query(compose.port, FORWARDED_NAME).answer[0][0].address == ANSWER_IP

    output = logs()
    assert f"listening on udp 127.0.0.1:{compose.port}" in output
    assert "connected to the Docker engine" in output
    assert "Traceback" not in output, output

    started = time.monotonic()
    compose("down", "--timeout", "10")
    down_took = time.monotonic() - started
    log.info("compose up -d --build took %.1fs, down %.1fs", up_took, down_took)
    assert docker_env.client.containers.list(all=True, filters=project) == []
    assert down_took < 30, f"down took {down_took:.1f}s (up took {up_took:.1f}s)"



def test_plain_compose_up_publishes_port_53():
    """``docker-compose up`` in the repo (docker-compose.yml and its override file) publishes 53 udp and tcp."""
    if shutil.which("docker-compose") is None:
        unavailable("docker-compose is not installed (apt-get install docker-compose)")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DNSCOCK_", "DOCKER_", "COMPOSE_"))}
    result = subprocess.run(["docker-compose", "config"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    config = result.stdout
    for protocol in ("udp", "tcp"):
        assert f"- protocol: {protocol}\n      published: 53\n      target: 53\n" in config, config
    assert "network_mode" not in config
    assert "- /var/run/docker.sock:/var/run/docker.sock:ro\n" in config
    assert "group_add:\n    - '0'\n" in config  # DOCKER_GID unset
