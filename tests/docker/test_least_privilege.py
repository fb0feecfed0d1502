"""Least privilege: dnscock behind the read-only Engine API proxy shipped for haproxy.

haproxy runs ``conf/engine-proxy.haproxy.cfg`` as shipped, its paths given
through the environment variables the file reads (its socket in a temp
directory, the private engine's socket behind it), with its log on stdout.
dnscock pointed at the proxy syncs, answers, and follows start and stop
events; a POST through the proxy gets 403 and never reaches the engine; and
haproxy's log shows that, over the whole test, the only requests refused
were the test's own. A table of requests checks what the proxy lets through,
against the engine, and that ``tests/support/engine_proxy.py``'s allowlist
(used by the fault tests) agrees with haproxy's.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import docker
import pytest

from tests.support.dnscock_process import ROOT, rcode
from tests.support.engine_proxy import EngineProxy, allowed
from tests.support.private_engine import PrivateEngine, container_ip
from tests.support.processes import LogLines, stop_process

CONFIG = ROOT / "conf" / "engine-proxy.haproxy.cfg"
# From haproxy's httplog line: the status, then the bytes, ... then "METHOD TARGET HTTP/1.1".
_LOG_LINE = re.compile(r'\s(\d{3})\s\+?\d+\s.*"(\S+) (\S+) HTTP/1\.[01]"$')


class Haproxy:
    """haproxy with the shipped config in the foreground; its log lines in ``output``."""

    def __init__(self, listen: Path, engine_socket: Path) -> None:
        binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
        if not os.path.exists(binary):
            if os.environ.get("CI"):
                pytest.fail("haproxy is not installed in CI (scripts/install-system-deps)")
            pytest.skip("haproxy is not installed (apt-get install haproxy)")
        self.listen = listen
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "ENGINE_PROXY_LISTEN": str(listen),
               "ENGINE_PROXY_GID": str(os.getgid()), "ENGINE_SOCKET": str(engine_socket)}
        self.process = subprocess.Popen([binary, "-db", "-f", str(CONFIG)], env=env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert self.process.stdout is not None
        self.output = LogLines(self.process.stdout)
        self._wait_until_listening()

    def _wait_until_listening(self, timeout: float = 10.0) -> None:
        """Ready once its socket accepts a connection."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"haproxy exited with {self.process.returncode}: {self.log()}")
            try:
                with socket.socket(socket.AF_UNIX) as probe:
                    probe.connect(str(self.listen))
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"haproxy did not listen on {self.listen}: {self.log()}") from None
                time.sleep(0.02)

    def requests(self) -> list[tuple[int, str, str]]:
        """(status, method, target) of every request logged so far."""
        return [(int(m.group(1)), m.group(2), m.group(3)) for m in map(_LOG_LINE.search, self.output.copy()) if m]

    def log(self) -> str:
        return self.output.text()

    def stop(self) -> None:
        stop_process(self.process)


@pytest.fixture
def haproxy(engine):
    directory = Path(tempfile.mkdtemp(prefix="dck-ha-", dir="/tmp"))
    proxy = Haproxy(directory / "engine.sock", engine.socket_path)
    yield proxy
    proxy.stop()
    shutil.rmtree(directory, ignore_errors=True)


def _answered(reply) -> bool:
    return bool(reply.answer)


def test_dnscock_works_through_the_proxy_and_writes_are_refused(docker_env, haproxy, start_dnscock, upstream):
    engine: PrivateEngine = docker_env
    first = engine.run("redis:latest", name="first")
    dnscock = start_dnscock(f"-docker=unix://{haproxy.listen}", f"-nameserver={upstream.address}", "-grace=0")
    dnscock.wait_for_log("connected to the Docker engine")
    assert dnscock.addresses("first.redis.docker") == [container_ip(first)]  # the listing, pipelined through haproxy

    # Events: start, stop, start again.
    second = engine.run("redis:latest", name="second")
    dnscock.wait_for_answer("second.redis.docker", _answered)
    second.stop(timeout=1)
    dnscock.wait_for_answer("second.redis.docker", lambda reply: rcode(reply) == "NXDOMAIN")
    second.start()
    dnscock.wait_for_answer("second.redis.docker", _answered)
    assert dnscock.addresses("second.redis.docker") == [container_ip(second)]

    # Writes through the proxy are refused and never reach the engine.
    api = docker.APIClient(base_url=f"unix://{haproxy.listen}", version="auto", timeout=10)
    try:
        with pytest.raises(docker.errors.APIError) as created:
            api.create_container("local/busybox:latest", ["true"], name="sneaky")
        with pytest.raises(docker.errors.APIError) as killed:
            api.kill(first.id)
        with pytest.raises(docker.errors.APIError) as exported:
            next(api.export(first.id))  # a GET, but not one dnscock needs: the whole file system
    finally:
        api.close()
    assert (created.value.status_code, killed.value.status_code, exported.value.status_code) == (403, 403, 403)
    first.reload()
    assert first.status == "running"
    assert not engine.client.containers.list(all=True, filters={"name": "sneaky"})
    ours = 3

    # dnscock still follows the engine after that.
    third = engine.run("redis:latest", name="third")
    dnscock.wait_for_answer("third.redis.docker", _answered)
    assert dnscock.addresses("third.redis.docker") == [container_ip(third)]

    dnscock.stop()
    requests = haproxy.requests()
    refused = [request for request in requests if request[0] == 403]
    assert len(refused) == ours, refused
    assert {method for _, method, _ in refused} == {"POST", "GET"}
    assert all(200 <= status < 300 for status, _, _ in requests if status != 403), requests
    targets = [target for _, _, target in requests]
    assert any(re.search(r"^/v1\.\d+/events", target) for target in targets), targets
    assert any(re.search(r"^/v1\.\d+/containers/json", target) for target in targets), targets
    assert any(re.search(rf"^/v1\.\d+/containers/{second.id}/json$", target) for target in targets), targets
    print(f"\nhaproxy passed {len(requests) - len(refused)} requests and refused {len(refused)} (the test's own)")


# (method, target, let through?) ; "{id}" is a running container's id. ENGINE: let through, and the
# engine's own answer comes back (503 for the swarm's endpoints: this engine is in no swarm).
ENGINE = "engine"
TABLE = [
    ("GET", "/_ping", True),
    ("HEAD", "/_ping", True),
    ("GET", "/version", True),
    ("GET", "/v1.41/version", True),
    ("GET", "/v1.41/containers/json?limit=-1&all=0", True),
    ("GET", "/containers/json", True),
    ("GET", "/v1.41/containers/{id}/json", True),
    ("GET", "/containers/{id}/json", True),
    ("GET", "/v1.41/networks", True),
    ("GET", "/v1.41/networks/bridge", True),
    ("GET", "/v1.41/events?until=1", True),
    ("POST", "/v1.41/containers/create", False),
    ("POST", "/v1.41/containers/{id}/kill", False),
    ("DELETE", "/v1.41/containers/{id}", False),
    ("PUT", "/v1.41/containers/{id}/archive?path=/tmp", False),
    ("POST", "/v1.41/containers/json", False),
    ("OPTIONS", "/_ping", False),
    ("GET", "/info", True),
    ("GET", "/v1.41/info", True),
    ("GET", "/v1.41/networks/bridge?verbose=true", True),
    ("GET", '/v1.41/tasks?filters={"desired-state":["running"]}', ENGINE),
    ("GET", "/v1.41/services", ENGINE),
    ("GET", "/nodes", ENGINE),
    ("GET", "/v1.41/services/web", False),
    ("GET", "/v1.41/nodes/x/update", False),
    ("POST", "/v1.41/services/create", False),
    ("GET", "/v1.41/images/json", False),
    ("GET", "/v1.41/containers/{id}/export", False),
    ("GET", "/v1.41/containers/{id}/logs?stdout=1", False),
    ("GET", "/v1.41/containers/{id}/archive?path=/etc", False),
    ("GET", "/v1.41/containers/{id}/json/../../../info", False),
    ("GET", "/v1.41/containers/..%2f..%2finfo/json", False),
    ("GET", "/v1.41/containers/%2e%2e/json", False),
    ("GET", "/v1.41/containers/../json", False),
    ("GET", "/v1x41/containers/json", False),
    ("GET", "/V1.41/containers/json", False),
    ("GET", "//containers/json", False),
    ("GET", "/containers/json/", False),
    ("GET", "/v1.41/networks/bridge/../../info", False),
    ("GET", "/v1.41/swarm", False),
]


def _status(socket_path: Path, method: str, target: str) -> int:
    connection = http.client.HTTPConnection("docker", timeout=10)
    connection.sock = socket.socket(socket.AF_UNIX)
    connection.sock.settimeout(10)
    connection.sock.connect(str(socket_path))
    try:
        connection.request(method, target)
        return connection.getresponse().status
    finally:
        connection.close()


def test_allowlist_table_haproxy_and_test_proxy_agree(docker_env, haproxy, tmp_path):
    engine: PrivateEngine = docker_env
    container = engine.run("redis:latest", name="tabled")
    python_proxy = EngineProxy(Path(tempfile.mkdtemp(prefix="dck-px-", dir="/tmp")) / "proxy.sock",
                               engine.socket_path, allowlist=True).start()
    try:
        for method, target, let_through in TABLE:
            target = target.replace("{id}", container.id)
            assert allowed(method, target) == bool(let_through), (method, target)
            for name, path in (("haproxy", haproxy.listen), ("engine_proxy", python_proxy.listen)):
                status = _status(path, method, target)
                if let_through == ENGINE:
                    assert status == 503, (name, method, target, status)  # "This node is not a swarm manager"
                elif let_through:
                    assert 200 <= status < 300, (name, method, target, status)
                else:
                    assert status == 403, (name, method, target, status)
    finally:
        python_proxy.stop()
        shutil.rmtree(python_proxy.listen.parent, ignore_errors=True)
    container.reload()
    assert container.status == "running"
