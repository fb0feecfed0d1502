"""A fake Docker Engine API server on a unix socket, for benchmarks with many containers.

It answers the few endpoints dnscock uses, in the JSON shapes of Docker
20.10 (API 1.41), for N running containers made up deterministically (no
randomness, so runs are comparable): names ``c00001``..., images spread over
M names (every 10th with a registry path), unique addresses in 10.0.0.0/8
(bridge network 10.0.0.0/16 first, gateway 10.0.0.1), every 10th container
with a ``DNSDOCK_ALIAS`` and every 5th image exposing a port.

Endpoints, with or without a ``/v1.NN`` prefix: ``GET|HEAD /_ping``,
``GET /version``, ``GET /info``, ``GET /containers/json``,
``GET /containers/{id}/json`` (full id, name or unique prefix) and
``GET /events`` (chunked, one JSON object per line, open until the client
leaves or the server stops; ``since`` and ``until`` are accepted and
ignored, nothing is replayed).

Swarm manager mode (``--swarm-tasks N --swarm-services M``; ``FakeSwarm``):
``/info`` says ``LocalNodeState: active``, ``ControlAvailable: true`` and a
``Cluster.ID``; ``GET /services``, ``/tasks`` (``desired-state`` filter:
running gives every task), ``/nodes`` (two) and ``/networks`` (``scope``
filter; swarm: the ``bench`` overlay and ``ingress``) answer N running tasks
spread over M replicated services, in the shapes of a real 20.10 manager's
(tests/support/swarm_samples/), unique overlay addresses, nothing ever
changing; the bodies are built once at start and sent as a manager sends
them (chunked, in one chunk, from 2 KiB on). ``/events`` streams for
service, node and network events stay open and quiet. Without the mode,
``/info`` says the engine is in no swarm and those listings answer 503.

How it serves (standard library only, no gevent: it runs in its own process
or thread). One asyncio event loop, in a background thread, owns the
listening socket and every connection. The sockets are plain non-blocking
ones watched with the loop's ``add_reader``/``add_writer``: no thread,
task, transport or protocol per connection (docker-py opens a connection
per inspected container, and those cost more than the answers). A
connection buffers what it receives and answers every complete request in
it, in order, with one ``send``, so pipelined requests work; a request is
its request line and headers up to the empty line (HTTP/1.0 or 1.1; a
``Content-Length`` body is skipped unread). Connections stay open unless
the request says ``Connection: close`` (or is HTTP/1.0 without
``keep-alive``); while answers wait to be sent, no more requests are read.
``start()`` builds every container's inspect document and the listing once,
before listening; they are kept as bytes and reused, so answering an
inspect is a dictionary look-up, a small header block (Date, to the second,
and Content-Length) and a ``send``.

``GET /events`` subscribes the connection before it writes the response
headers, then writes one chunk per event. ``add_container`` and
``remove_container`` may be called from any thread: they hand their events
to the loop with ``call_soon_threadsafe``. ``stop()`` closes the listening
socket, ends every event stream with its last chunk, closes every connection
once its pending writes are out, stops the loop and removes the socket file.

From a shell::

    python bench/fake_engine.py --socket /tmp/docker.sock --containers 10000 [--images 50] [--ready-file PATH]
    python bench/fake_engine.py --socket /tmp/docker.sock --containers 0 --swarm-tasks 1000 --swarm-services 50

From Python::

    engine = FakeEngine("/tmp/docker.sock", containers=50)
    engine.start()
    added = engine.add_container()          # emits "start" on every /events stream
    engine.remove_container(added.id)       # emits "die", "stop", "destroy"
    engine.stop()
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import hashlib
import json
import os
import platform
import re
import signal
import socket
import stat
import sys
import threading
import time
import traceback
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import formatdate
from http import HTTPStatus
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

API_VERSION = "1.41"
MIN_API_VERSION = "1.12"
ENGINE_VERSION = "20.10.24"
GIT_COMMIT = "5d6db84"
GO_VERSION = "go1.19.7"
BUILD_TIME = "2023-04-04T10:29:16.000000000+00:00"
CONTAINERD_COMMIT = "2806fc1057397dbaeefbea0e4e17bddfbd388f38"

BASE_TIME = 1_700_000_000  # container i was created at BASE_TIME + i
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HOSTS_PER_SUBNET = 256 * 253  # per 10.x.0.0/16: last octet 2..254 in each /24 (10.x.0.1 is the gateway)
ZERO_TIME = "0001-01-01T00:00:00Z"

Json = dict[str, Any]


def _hex(seed: str) -> str:
    """64 hex digits that depend only on ``seed``."""
    return hashlib.sha256(seed.encode()).hexdigest()


BRIDGE_NETWORK_ID = _hex("fake-engine network bridge")


def _json_bytes(document: Any) -> bytes:
    # Compact, newline-terminated: what Go's json.Encoder writes.
    return json.dumps(document, separators=(",", ":")).encode() + b"\n"


def _rfc3339(seconds: int, nanos: int = 0) -> str:
    moment = datetime.fromtimestamp(seconds, timezone.utc)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{nanos:09d}Z"


def container_ip(index: int) -> str:
    """A unique address for container ``index`` (1-based): 10.a.b.c with c in 2..254."""
    second, rest = divmod(index - 1, HOSTS_PER_SUBNET)
    if second > 255:
        raise ValueError(f"no address left in 10.0.0.0/8 for container {index}")
    third, fourth = divmod(rest, 253)
    return f"10.{second}.{third}.{fourth + 2}"


def _gateway(ip: str) -> str:
    first, second = ip.split(".")[:2]
    return f"{first}.{second}.0.1"


def _mac(ip: str) -> str:
    # Docker derives bridge MAC addresses the same way: 02:42 + the IPv4 octets.
    return "02:42:" + ":".join(f"{int(octet):02x}" for octet in ip.split("."))


class Image(NamedTuple):
    reference: str
    id: str  # "sha256:<64 hex>"
    exposed_ports: tuple[str, ...] = ()


def make_image(number: int) -> Image:
    """Image ``number`` (1-based): every 10th from a registry, every 5th exposing a port."""
    if number % 10 == 0:
        reference = f"registry.example.com/team/img{number:04d}:v1"
    else:
        reference = f"img{number:04d}:latest"
    ports = ("6379/tcp",) if number % 5 == 0 else ()
    return Image(reference, "sha256:" + _hex("image " + reference), ports)


def _custom_image(reference: str) -> Image:
    return Image(reference, "sha256:" + _hex("image " + reference))


@dataclass
class FakeContainer:
    """One running container; its API documents are built once, on first use."""

    index: int
    id: str
    name: str
    image: Image
    env: tuple[str, ...]
    labels: dict[str, str] = field(default_factory=dict)
    _summary_json: bytes | None = field(default=None, init=False, repr=False, compare=False)
    _inspect_json: bytes | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def ip(self) -> str:
        return container_ip(self.index)

    @property
    def created(self) -> int:
        return BASE_TIME + self.index

    def summary_json(self) -> bytes:
        if self._summary_json is None:
            self._summary_json = json.dumps(self.summary(), separators=(",", ":")).encode()
        return self._summary_json

    def inspect_json(self) -> bytes:
        if self._inspect_json is None:
            self._inspect_json = _json_bytes(self.inspect())
        return self._inspect_json

    def endpoint(self) -> Json:
        ip = self.ip
        return {
            "IPAMConfig": None,
            "Links": None,
            "Aliases": None,
            "NetworkID": BRIDGE_NETWORK_ID,
            "EndpointID": _hex("endpoint " + self.id),
            "Gateway": _gateway(ip),
            "IPAddress": ip,
            "IPPrefixLen": 16,
            "IPv6Gateway": "",
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "MacAddress": _mac(ip),
            "DriverOpts": None,
        }

    def summary(self, size: bool = False) -> Json:
        """The ``GET /containers/json`` item."""
        document: Json = {
            "Id": self.id,
            "Names": ["/" + self.name],
            "Image": self.image.reference,
            "ImageID": self.image.id,
            "Command": "sleep 3600",
            "Created": self.created,
            "Ports": [_port_summary(port) for port in self.image.exposed_ports],
            "Labels": dict(self.labels),
            "State": "running",
            "Status": "Up 5 minutes",
            "HostConfig": {"NetworkMode": "default"},
            "NetworkSettings": {"Networks": {"bridge": self.endpoint()}},
            "Mounts": [],
        }
        if size:
            document["SizeRw"] = 0
            document["SizeRootFs"] = 1_234_567 + self.index
        return document

    def inspect(self) -> Json:
        """The ``GET /containers/{id}/json`` document."""
        run_dir = f"/var/lib/docker/containers/{self.id}"
        return {
            "Id": self.id,
            "Created": _rfc3339(self.created, 123_456_789),
            "Path": "sleep",
            "Args": ["3600"],
            "State": self._state(),
            "Image": self.image.id,
            "ResolvConfPath": f"{run_dir}/resolv.conf",
            "HostnamePath": f"{run_dir}/hostname",
            "HostsPath": f"{run_dir}/hosts",
            "LogPath": f"{run_dir}/{self.id}-json.log",
            "Name": "/" + self.name,
            "RestartCount": 0,
            "Driver": "overlay2",
            "Platform": "linux",
            "MountLabel": "",
            "ProcessLabel": "",
            "AppArmorProfile": "docker-default",
            "ExecIDs": None,
            "HostConfig": _host_config(),
            "GraphDriver": self._graph_driver(),
            "Mounts": [],
            "Config": self._config(),
            "NetworkSettings": self._network_settings(),
        }

    def _state(self) -> Json:
        return {
            "Status": "running",
            "Running": True,
            "Paused": False,
            "Restarting": False,
            "OOMKilled": False,
            "Dead": False,
            "Pid": 10_000 + self.index,
            "ExitCode": 0,
            "Error": "",
            "StartedAt": _rfc3339(self.created + 1, 987_654_321),
            "FinishedAt": ZERO_TIME,
        }

    def _graph_driver(self) -> Json:
        layer = f"/var/lib/docker/overlay2/{_hex('layer ' + self.id)}"
        return {
            "Data": {
                "LowerDir": f"{layer}-init/diff",
                "MergedDir": f"{layer}/merged",
                "UpperDir": f"{layer}/diff",
                "WorkDir": f"{layer}/work",
            },
            "Name": "overlay2",
        }

    def _config(self) -> Json:
        config: Json = {
            "Hostname": self.id[:12],
            "Domainname": "",
            "User": "",
            "AttachStdin": False,
            "AttachStdout": False,
            "AttachStderr": False,
            "Tty": False,
            "OpenStdin": False,
            "StdinOnce": False,
            "Env": list(self.env),
            "Cmd": ["sleep", "3600"],
            "Image": self.image.reference,
            "Volumes": None,
            "WorkingDir": "",
            "Entrypoint": None,
            "OnBuild": None,
            "Labels": dict(self.labels),
        }
        if self.image.exposed_ports:  # omitted when empty, as Docker does
            config["ExposedPorts"] = {port: {} for port in self.image.exposed_ports}
        return config

    def _network_settings(self) -> Json:
        endpoint = self.endpoint()
        sandbox = _hex("sandbox " + self.id)
        return {
            "Bridge": "",
            "SandboxID": sandbox,
            "HairpinMode": False,
            "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0,
            # Exposed but unpublished ports appear with a null binding.
            "Ports": {port: None for port in self.image.exposed_ports},
            "SandboxKey": f"/var/run/docker/netns/{sandbox[:12]}",
            "SecondaryIPAddresses": None,
            "SecondaryIPv6Addresses": None,
            "EndpointID": endpoint["EndpointID"],
            "Gateway": endpoint["Gateway"],
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "IPAddress": endpoint["IPAddress"],
            "IPPrefixLen": 16,
            "IPv6Gateway": "",
            "MacAddress": endpoint["MacAddress"],
            "Networks": {"bridge": endpoint},
        }


def _port_summary(port: str) -> Json:
    """``"6379/tcp"`` -> the listing's ``{"PrivatePort": 6379, "Type": "tcp"}`` (exposed, not published)."""
    number, _, protocol = port.partition("/")
    return {"PrivatePort": int(number), "Type": protocol}


def _host_config() -> Json:
    """The HostConfig of ``docker run -d IMAGE sleep 3600`` (the fields that matter)."""
    return {
        "Binds": None,
        "ContainerIDFile": "",
        "LogConfig": {"Type": "json-file", "Config": {}},
        "NetworkMode": "default",
        "PortBindings": {},
        "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
        "AutoRemove": False,
        "VolumeDriver": "",
        "VolumesFrom": None,
        "CapAdd": None,
        "CapDrop": None,
        "CgroupnsMode": "private",
        "Dns": [],
        "DnsOptions": [],
        "DnsSearch": [],
        "ExtraHosts": None,
        "GroupAdd": None,
        "IpcMode": "private",
        "Cgroup": "",
        "Links": None,
        "OomScoreAdj": 0,
        "PidMode": "",
        "Privileged": False,
        "PublishAllPorts": False,
        "ReadonlyRootfs": False,
        "SecurityOpt": None,
        "UTSMode": "",
        "UsernsMode": "",
        "ShmSize": 67_108_864,
        "Runtime": "runc",
        "ConsoleSize": [0, 0],
        "Isolation": "",
        "CpuShares": 0,
        "Memory": 0,
        "NanoCpus": 0,
        "CgroupParent": "",
        "Init": None,
    }


def make_container(
    index: int, image: Image, name: str | None = None, env: Sequence[str] | None = None
) -> FakeContainer:
    """Container ``index`` (1-based); by default every 10th has a DNSDOCK_ALIAS."""
    if env is None:
        env = [f"DNSDOCK_ALIAS=alias{index}.example.test"] if index % 10 == 0 else []
    return FakeContainer(
        index=index,
        id=_hex(f"container {index}"),
        name=name or f"c{index:05d}",
        image=image,
        env=(PATH_ENV, *env),
    )


def version_document() -> Json:
    """``GET /version`` of a Docker 20.10.24 engine on this kernel."""
    kernel = platform.release()
    details = {
        "ApiVersion": API_VERSION, "Arch": "amd64", "BuildTime": BUILD_TIME, "Experimental": "false",
        "GitCommit": GIT_COMMIT, "GoVersion": GO_VERSION, "KernelVersion": kernel,
        "MinAPIVersion": MIN_API_VERSION, "Os": "linux",
    }
    return {
        "Platform": {"Name": "Docker Engine - Community"},
        "Components": [
            {"Name": "Engine", "Version": ENGINE_VERSION, "Details": details},
            {"Name": "containerd", "Version": "1.6.20", "Details": {"GitCommit": CONTAINERD_COMMIT}},
            {"Name": "runc", "Version": "1.1.5", "Details": {"GitCommit": "v1.1.5-0-gf19387a"}},
            {"Name": "docker-init", "Version": "0.19.0", "Details": {"GitCommit": "de40ad0"}},
        ],
        "Version": ENGINE_VERSION,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": GIT_COMMIT,
        "GoVersion": GO_VERSION,
        "Os": "linux",
        "Arch": "amd64",
        "KernelVersion": kernel,
        "BuildTime": BUILD_TIME,
    }


def container_event(action: str, container: FakeContainer, extra: Mapping[str, str] | None = None) -> Json:
    """A container event as API 1.41 sends it (with the legacy status/id/from keys)."""
    now = time.time_ns()
    attributes = {**container.labels, "image": container.image.reference, "name": container.name, **(extra or {})}
    return {
        "status": action,
        "id": container.id,
        "from": container.image.reference,
        "Type": "container",
        "Action": action,
        "Actor": {"ID": container.id, "Attributes": attributes},
        "scope": "local",
        "time": now // 1_000_000_000,
        "timeNano": now,
    }


# --- a swarm manager -----------------------------------------------------------------

SWARM_NETWORK = "bench"  # the overlay every service is on
SWARM_SUBNET = (10, 200)  # 10.200.0.0/16: the overlay (gateway .0.1); services' VIPs first, then the tasks
INGRESS_SUBNET = (10, 255)  # 10.255.0.0/16: the ingress network (VIPs and tasks of publishing services)
SWARM_IMAGE = "local/busybox:latest"
SWARM_TIME = "2026-12-01T16:33:26.428316394Z"
PUBLISHING_EVERY = 10  # every 10th service publishes a port (through the ingress network)
NOT_A_MANAGER = ("This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect "
                 "this node to swarm and try again.")


def swarm_id(seed: str) -> str:
    """A swarm object ID (25 lower-case letters and digits, as swarmkit makes them) that depends only on ``seed``."""
    number = int(_hex("swarm " + seed), 16)
    digits = []
    for _ in range(25):
        number, digit = divmod(number, 36)
        digits.append("0123456789abcdefghijklmnopqrstuvwxyz"[digit])
    return "".join(digits)


def overlay_address(offset: int, subnet: tuple[int, int] = SWARM_SUBNET) -> str:
    """Address ``offset`` (0-based) of a /16 overlay: 10.x.y.2 to 10.x.y.251 in each /24 (.1 of 10.x.0 is the gateway)."""
    third, fourth = divmod(offset, 250)
    if third > 255:
        raise ValueError(f"no address left in {subnet[0]}.{subnet[1]}.0.0/16 for offset {offset}")
    return f"{subnet[0]}.{subnet[1]}.{third}.{fourth + 2}"


class SwarmTask(NamedTuple):
    index: int  # 0-based, over the whole swarm
    id: str
    service: int  # 0-based service index
    slot: int
    node: int  # 0 (the manager, node1-fake) or 1 (a worker, node2-fake)
    address: str  # on the overlay


class FakeSwarm:
    """What a manager of a two-node swarm lists: ``services`` replicated services, ``tasks`` running tasks.

    Deterministic, like the containers: service ``s`` (0-based) is
    ``svc0001``...; task ``i`` belongs to service ``i % services``, in slot
    ``i // services + 1``, on node ``i % 2``. Every service is on one
    attachable overlay, ``bench`` (10.200.0.0/16), with a VIP there; every
    10th also publishes a port, so it has a VIP on the ingress network
    (10.255.0.0/16) and its tasks an address there too. Addresses are
    unique: the services' VIPs, then the tasks', in order. Nothing ever
    changes (every ``Version.Index`` stays), so a poller that compares task
    IDs and versions sees the same listing every time. The documents follow
    a real 20.10 manager's (tests/support/swarm_samples/); ``bodies()``
    builds them once.
    """

    def __init__(self, tasks: int, services: int) -> None:
        if tasks < 0 or services < 0 or (tasks and not services):
            raise ValueError("a swarm needs at least one service for its tasks")
        overlay_address(services + tasks)  # raises when the overlay is too small
        self.task_count = tasks
        self.service_count = services
        self.cluster_id = swarm_id("cluster")
        self.node_ids = (swarm_id("node 1"), swarm_id("node 2"))
        self.hostnames = ("node1-fake", "node2-fake")
        self.network_id = swarm_id("network bench")
        self.ingress_id = swarm_id("network ingress")
        self._bodies: dict[str, bytes] | None = None
        self._responses: dict[str, Response] = {}

    # The layout

    @staticmethod
    def service_name(service: int) -> str:
        return f"svc{service + 1:04d}"

    def service_id(self, service: int) -> str:
        return swarm_id(f"service {service}")

    def publishes(self, service: int) -> bool:
        return service % PUBLISHING_EVERY == PUBLISHING_EVERY - 1

    def replicas(self, service: int) -> int:
        return len(range(service, self.task_count, self.service_count)) if self.service_count else 0

    def vip(self, service: int) -> str:
        """The service's VIP on the overlay."""
        return overlay_address(service)

    def task(self, index: int) -> SwarmTask:
        service, slot = index % self.service_count, index // self.service_count + 1
        return SwarmTask(index, swarm_id(f"task {index}"), service, slot, index % 2,
                         overlay_address(self.service_count + index))

    def tasks_of(self, service: int) -> list[SwarmTask]:
        return [self.task(index) for index in range(service, self.task_count, self.service_count)]

    # The documents

    def bodies(self) -> dict[str, bytes]:
        """The listings, as bytes: ``services``, ``tasks``, ``nodes``, ``networks-swarm``, ``networks``."""
        if self._bodies is None:
            swarm_networks = [self._network_summary(self.network_id, SWARM_NETWORK, SWARM_SUBNET, attachable=True),
                              self._network_summary(self.ingress_id, "ingress", INGRESS_SUBNET, ingress=True)]
            self._bodies = {
                "services": _json_bytes([self.service_document(s) for s in range(self.service_count)]),
                "tasks": _json_bytes([self.task_document(self.task(i)) for i in range(self.task_count)]),
                "nodes": _json_bytes([self.node_document(n) for n in range(2)]),
                "networks-swarm": _json_bytes(swarm_networks),
                "networks": _json_bytes([*swarm_networks, *_local_networks()]),
            }
        return self._bodies

    def response(self, name: str) -> Response:
        """The listing ``name`` of ``bodies()`` as a 20.10 manager sends it: from CHUNKING_SIZE bytes on,
        chunked, the whole body in one chunk (Go's net/http, which gets the encoded JSON in one write)."""
        response = self._responses.get(name)
        if response is None:
            body = self.bodies()[name]
            response = Response(HTTPStatus.OK, event_chunk(body) + LAST_CHUNK, headers=CHUNKED) \
                if len(body) >= CHUNKING_SIZE else Response(HTTPStatus.OK, body)
            self._responses[name] = response
        return response

    def swarm_info(self) -> Json:
        """The ``Swarm`` part of the manager's ``GET /info``."""
        return {
            "NodeID": self.node_ids[0],
            "NodeAddr": "192.0.2.1",
            "LocalNodeState": "active",
            "ControlAvailable": True,
            "Error": "",
            "RemoteManagers": [{"NodeID": self.node_ids[0], "Addr": "192.0.2.1:2377"}],
            "Nodes": 2,
            "Managers": 1,
            "Cluster": {
                "ID": self.cluster_id,
                "Version": {"Index": 10},
                "CreatedAt": SWARM_TIME,
                "UpdatedAt": SWARM_TIME,
                "Spec": {
                    "Name": "default", "Labels": {}, "Orchestration": {"TaskHistoryRetentionLimit": 5},
                    "Raft": {"SnapshotInterval": 10000, "KeepOldSnapshots": 0, "LogEntriesForSlowFollowers": 500,
                             "ElectionTick": 10, "HeartbeatTick": 1},
                    "Dispatcher": {"HeartbeatPeriod": 5_000_000_000},
                    "CAConfig": {"NodeCertExpiry": 7_776_000_000_000_000},
                    "TaskDefaults": {}, "EncryptionConfig": {"AutoLockManagers": False},
                },
                "RootRotationInProgress": False,
                "DefaultAddrPool": ["10.200.0.0/16"],
                "SubnetSize": 24,
                "DataPathPort": 4789,
            },
        }

    def _task_template(self) -> Json:
        return {
            "ContainerSpec": {
                "Image": SWARM_IMAGE, "Command": ["sleep", "3600"], "Init": True, "StopGracePeriod": 1_000_000_000,
                "DNSConfig": {}, "Isolation": "default",
            },
            "Resources": {},
            "RestartPolicy": {"Condition": "any", "Delay": 5_000_000_000, "MaxAttempts": 0},
            "Placement": {},
            "Networks": [{"Target": self.network_id}],
            "ForceUpdate": 0,
        }

    def service_document(self, service: int) -> Json:
        """``GET /services`` item: replicated, on the overlay, every 10th publishing 8080 -> 80."""
        ports = [{"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080 + service, "PublishMode": "ingress"}]
        publishes = self.publishes(service)
        template = {**self._task_template(), "Runtime": "container"}
        update = {"Parallelism": 1, "FailureAction": "pause", "Monitor": 5_000_000_000, "MaxFailureRatio": 0,
                  "Order": "stop-first"}
        spec: Json = {
            "Name": self.service_name(service),
            "Labels": {},
            "TaskTemplate": template,
            "Mode": {"Replicated": {"Replicas": self.replicas(service)}},
            "UpdateConfig": update,
            "RollbackConfig": dict(update),
        }
        endpoint: Json = {"Spec": {}, "VirtualIPs": [{"NetworkID": self.network_id, "Addr": self.vip(service) + "/16"}]}
        if publishes:
            spec["EndpointSpec"] = {"Mode": "vip", "Ports": ports}
            endpoint = {"Spec": {"Mode": "vip", "Ports": ports}, "Ports": ports, "VirtualIPs": [
                {"NetworkID": self.ingress_id, "Addr": overlay_address(service, INGRESS_SUBNET) + "/16"},
                *endpoint["VirtualIPs"]]}
        return {"ID": self.service_id(service), "Version": {"Index": 100 + service}, "CreatedAt": SWARM_TIME,
                "UpdatedAt": SWARM_TIME, "Spec": spec, "Endpoint": endpoint}

    def task_document(self, task: SwarmTask) -> Json:
        """``GET /tasks`` item: running, desired running, attached to the overlay (and the ingress network)."""
        attachments = [self._attachment(self.network_id, SWARM_NETWORK, SWARM_SUBNET, task.address, 17)]
        if self.publishes(task.service):
            ingress_offset = self.service_count + task.index
            attachments.insert(0, self._attachment(self.ingress_id, "ingress", INGRESS_SUBNET,
                                                   overlay_address(ingress_offset, INGRESS_SUBNET), 5, ingress=True))
        return {
            "ID": task.id,
            "Version": {"Index": 1000 + task.index},
            "CreatedAt": SWARM_TIME,
            "UpdatedAt": SWARM_TIME,
            "Labels": {},
            "Spec": self._task_template(),
            "ServiceID": self.service_id(task.service),
            "Slot": task.slot,
            "NodeID": self.node_ids[task.node],
            "Status": {
                "Timestamp": SWARM_TIME,
                "State": "running",
                "Message": "started",
                "ContainerStatus": {"ContainerID": _hex(f"task container {task.index}"), "PID": 20_000 + task.index,
                                    "ExitCode": 0},
                "PortStatus": {},
            },
            "DesiredState": "running",
            "NetworksAttachments": attachments,
        }

    @staticmethod
    def _attachment(network_id: str, name: str, subnet: tuple[int, int], address: str, index: int,
                    ingress: bool = False) -> Json:
        if ingress:
            spec: Json = {"Name": name, "Labels": {}, "DriverConfiguration": {}, "Ingress": True,
                          "IPAMOptions": {"Driver": {}}, "Scope": "swarm"}
        else:
            spec = {"Name": name, "Labels": {}, "DriverConfiguration": {"Name": "overlay"}, "Attachable": True,
                    "Scope": "swarm"}
        prefix = f"{subnet[0]}.{subnet[1]}"
        return {
            "Network": {
                "ID": network_id, "Version": {"Index": index}, "CreatedAt": SWARM_TIME, "UpdatedAt": SWARM_TIME,
                "Spec": spec,
                "DriverState": {"Name": "overlay", "Options": {
                    "com.docker.network.driver.overlay.vxlanid_list": "4096" if ingress else "4097"}},
                "IPAMOptions": {"Driver": {"Name": "default"},
                                "Configs": [{"Subnet": f"{prefix}.0.0/16", "Gateway": f"{prefix}.0.1"}]},
            },
            "Addresses": [address + "/16"],
        }

    def node_document(self, node: int) -> Json:
        document: Json = {
            "ID": self.node_ids[node],
            "Version": {"Index": 57 + node},
            "CreatedAt": SWARM_TIME,
            "UpdatedAt": SWARM_TIME,
            "Spec": {"Labels": {}, "Role": "manager" if node == 0 else "worker", "Availability": "active"},
            "Description": {"Hostname": self.hostnames[node], "Platform": {"Architecture": "x86_64", "OS": "linux"},
                            "Engine": {"EngineVersion": ENGINE_VERSION}},
            "Status": {"State": "ready", "Addr": f"192.0.2.{node + 1}"},
        }
        if node == 0:
            document["ManagerStatus"] = {"Leader": True, "Reachability": "reachable", "Addr": "192.0.2.1:2377"}
        return document

    @staticmethod
    def _network_summary(network_id: str, name: str, subnet: tuple[int, int], attachable: bool = False,
                         ingress: bool = False) -> Json:
        """``GET /networks`` item for a swarm-scoped overlay."""
        prefix = f"{subnet[0]}.{subnet[1]}"
        return {
            "Name": name, "Id": network_id, "Created": SWARM_TIME, "Scope": "swarm", "Driver": "overlay",
            "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": None,
                     "Config": [{"Subnet": f"{prefix}.0.0/16", "Gateway": f"{prefix}.0.1"}]},
            "Internal": False, "Attachable": attachable, "Ingress": ingress, "ConfigFrom": {"Network": ""},
            "ConfigOnly": False, "Containers": None,
            "Options": {"com.docker.network.driver.overlay.vxlanid_list": "4096" if ingress else "4097"},
            "Labels": None if ingress else {},
        }


def _local_networks() -> list[Json]:
    """The local networks of ``GET /networks``: bridge, host, none."""
    networks = []
    for name, driver in (("bridge", "bridge"), ("host", "host"), ("none", "null")):
        config = [{"Subnet": "10.0.0.0/16", "Gateway": "10.0.0.1"}] if name == "bridge" else []
        networks.append({
            "Name": name, "Id": BRIDGE_NETWORK_ID if name == "bridge" else _hex(f"fake-engine network {name}"),
            "Created": SWARM_TIME, "Scope": "local", "Driver": driver, "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": None, "Config": config}, "Internal": False,
            "Attachable": False, "Ingress": False, "ConfigFrom": {"Network": ""}, "ConfigOnly": False,
            "Containers": {}, "Options": {}, "Labels": {},
        })
    return networks


def _info_common() -> Json:
    """The parts of ``GET /info`` that do not depend on the containers or the swarm."""
    return {
        "ID": "FAKE:ENGI:NE00:0000:0000:0000:0000:0000:0000:0000:0000:0000",
        "Images": 50,
        "Driver": "overlay2",
        "ServerVersion": ENGINE_VERSION,
        "OperatingSystem": "Debian GNU/Linux 12 (bookworm)",
        "OSType": "linux",
        "Architecture": "x86_64",
        "KernelVersion": platform.release(),
        "NCPU": os.cpu_count() or 1,
        "DockerRootDir": "/var/lib/docker",
    }


def info_document(containers: int, swarm: Json | None = None, name: str = "fake-engine") -> Json:
    """``GET /info``: of an engine in no swarm, or with ``swarm`` (a manager's ``Swarm`` part)."""
    return {**_info_common(), "Name": name, "Containers": containers, "ContainersRunning": containers,
            "ContainersPaused": 0, "ContainersStopped": 0,
            "Swarm": swarm or {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": False,
                               "Error": "", "RemoteManagers": None}}


# --- query parameters -------------------------------------------------------------


class BadRequest(Exception):
    """A 400 answer; the message goes to the client."""


def _bool_param(query: Mapping[str, list[str]], name: str) -> bool:
    # Docker's httputils.BoolValue.
    value = (query.get(name) or [""])[0].strip().lower()
    return value not in ("", "0", "no", "false", "none")


def _int_param(query: Mapping[str, list[str]], name: str, default: int) -> int:
    value = (query.get(name) or [""])[0]
    try:
        return int(value) if value else default
    except ValueError:
        raise BadRequest(f"invalid value for {name}: {value!r}") from None


def parse_filters(query: Mapping[str, list[str]]) -> dict[str, list[str]]:
    """``filters`` as ``{key: [values]}``; accepts the list and the legacy ``{value: true}`` forms."""
    raw = (query.get("filters") or [""])[0]
    if not raw:
        return {}
    try:
        decoded = json.loads(raw)
    except ValueError:
        raise BadRequest(f"invalid filter: {raw}") from None
    if not isinstance(decoded, dict):
        raise BadRequest(f"invalid filter: {raw}")
    return {key: list(values) for key, values in decoded.items()}


LIST_FILTERS = frozenset({"id", "name", "status", "label"})


def _label_matches(labels: Mapping[str, str], wanted: str) -> bool:
    key, sep, value = wanted.partition("=")
    return key in labels and (not sep or labels[key] == value)


def _name_matches(pattern: str, name: str) -> bool:
    try:
        return re.search(pattern, name) is not None  # Docker's name filter is a regular expression
    except re.error:
        raise BadRequest(f"invalid filter 'name={pattern}'") from None


def list_filter_matches(filters: Mapping[str, list[str]], container: FakeContainer) -> bool:
    """Docker's list filters that a running container can meet: id, name, status, label."""
    checks = {
        "id": lambda value: container.id.startswith(value),
        "name": lambda value: _name_matches(value, container.name),
        "status": lambda value: value == "running",
        "label": lambda value: _label_matches(container.labels, value),
    }
    return all(any(checks[key](value) for value in values) for key, values in filters.items() if values)


def event_filter_matches(filters: Mapping[str, list[str]], event: Json) -> bool:
    """Docker's event filters, for a container event; keys for other kinds of objects exclude it."""
    actor = event["Actor"]

    def accepts(key: str, value: str) -> bool:
        if key == "container":  # Docker's fuzzy match: an id or name prefix
            return actor["ID"].startswith(value) or actor["Attributes"].get("name", "").startswith(value)
        if key == "label":
            return _label_matches(actor["Attributes"], value)
        fields = {"type": event["Type"], "event": event["Action"], "image": event["from"], "scope": event["scope"]}
        return fields.get(key) == value

    return all(any(accepts(key, value) for value in values) for key, values in filters.items() if values)


# --- the engine ------------------------------------------------------------------


class FakeEngine:
    """The container table and event hub; ``start()`` serves it on ``socket_path``."""

    def __init__(self, socket_path: str | os.PathLike[str], containers: int = 0, images: int = 50,
                 swarm_tasks: int = 0, swarm_services: int = 0) -> None:
        if images < 1:
            raise ValueError("images must be at least 1")
        self.socket_path = Path(socket_path)
        # A swarm manager (``/info`` says so; ``/services``, ``/tasks``, ``/nodes`` answer) when either is given.
        self.swarm = FakeSwarm(swarm_tasks, swarm_services) if swarm_tasks or swarm_services else None
        self.images = [make_image(number) for number in range(1, images + 1)]
        self._lock = threading.Lock()  # the table is read by the loop and changed from any thread
        self._by_id: dict[str, FakeContainer] = {}
        self._by_name: dict[str, FakeContainer] = {}
        self._generation = 0  # bumped by every change of the table
        self._list_json: tuple[int, bytes] | None = None  # the unfiltered listing and its generation
        self._next_index = 1
        self._service: _Service | None = None
        for _ in range(containers):
            self._insert(self._new_container(None, None, None))

    @property
    def url(self) -> str:
        """The docker-py ``base_url``."""
        return f"unix://{self.socket_path}"

    @property
    def connections_accepted(self) -> int:
        return self._service.accepted if self._service else 0

    @property
    def subscriber_count(self) -> int:
        """Open ``/events`` streams."""
        return len(self._service.streams) if self._service else 0

    # Serving

    def __enter__(self) -> FakeEngine:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        """Builds every response body, listens on the socket (replacing a stale socket file), serves in a thread."""
        if self._service is not None:
            raise RuntimeError("the fake engine is already serving")
        self._build_documents()
        service = _Service(self)
        service.start(_listening_socket(self.socket_path))
        self._service = service

    def stop(self) -> None:
        """Ends every event stream and connection, stops serving and removes the socket (not from the loop)."""
        service, self._service = self._service, None
        if service is None:
            return
        try:
            service.stop()
        finally:
            self.socket_path.unlink(missing_ok=True)

    def _build_documents(self) -> None:
        """Every container's inspect document and the listing, so that no request waits for them."""
        for container in self.containers:
            container.inspect_json()
        self.list_json({}, -1, False)
        if self.swarm is not None:
            for name in self.swarm.bodies():
                self.swarm.response(name)

    # The container table

    @property
    def containers(self) -> list[FakeContainer]:
        with self._lock:
            return list(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    def find(self, ref: str) -> FakeContainer:
        """By full id, then name, then unique id prefix, as Docker looks up; KeyError or BadRequest."""
        with self._lock:
            found = self._by_id.get(ref) or self._by_name.get(ref.removeprefix("/"))
            if found is not None:
                return found
            matches = [container for id_, container in self._by_id.items() if ref and id_.startswith(ref)]
        if len(matches) > 1:
            raise BadRequest(f"multiple IDs found with provided prefix: {ref}")
        if not matches:
            raise KeyError(ref)
        return matches[0]

    def add_container(
        self, name: str | None = None, *, image: str | None = None, env: Sequence[str] | None = None,
        emit: bool = True,
    ) -> FakeContainer:
        """Adds a running container (next index; its default name, image and env unless given); emits ``start``.

        ``emit=False`` loses the event, as a dropped stream would: only a re-listing sees the change.
        """
        with self._lock:
            container = self._new_container(name, image, env)
            if container.name in self._by_name:
                raise ValueError(f"the container name /{container.name} is already in use")
            self._insert(container)
        if emit:
            self._emit(container_event("start", container))
        return container

    def remove_container(self, ref: str, *, emit: bool = True) -> FakeContainer:
        """Stops and removes a container (id, name or prefix); emits ``die``, ``stop``, ``destroy`` (unless not ``emit``)."""
        container = self.find(ref)
        with self._lock:
            del self._by_id[container.id]
            del self._by_name[container.name]
            self._generation += 1
        if emit:
            self._emit(container_event("die", container, {"exitCode": "137"}))
            self._emit(container_event("stop", container))
            self._emit(container_event("destroy", container))
        return container

    def _new_container(self, name: str | None, image: str | None, env: Sequence[str] | None) -> FakeContainer:
        index = self._next_index
        self._next_index += 1
        chosen = self.images[(index - 1) % len(self.images)] if image is None else self._image(image)
        return make_container(index, chosen, name, env)

    def _image(self, reference: str) -> Image:
        return next((image for image in self.images if image.reference == reference), None) or _custom_image(reference)

    def _insert(self, container: FakeContainer) -> None:
        self._by_id[container.id] = container
        self._by_name[container.name] = container
        self._generation += 1

    def list_json(self, filters: Mapping[str, list[str]], limit: int, size: bool) -> bytes:
        """The ``GET /containers/json`` body: newest first, like Docker."""
        plain = not filters and limit <= 0 and not size
        with self._lock:
            generation = self._generation
            if plain and self._list_json is not None and self._list_json[0] == generation:
                return self._list_json[1]
            newest_first = list(reversed(self._by_id.values()))
        selected = [container for container in newest_first if list_filter_matches(filters, container)]
        if limit > 0:
            selected = selected[:limit]
        if size:
            items = [json.dumps(container.summary(size=True), separators=(",", ":")).encode() for container in selected]
        else:
            items = [container.summary_json() for container in selected]
        body = b"[" + b",".join(items) + b"]\n"
        if plain:
            with self._lock:
                self._list_json = (generation, body)
        return body

    def info_json(self) -> bytes:
        """The ``GET /info`` body: the container counts now; a swarm manager's ``Swarm`` part in swarm mode."""
        if self.swarm is None:
            return _json_bytes(info_document(len(self)))
        return _json_bytes(info_document(len(self), self.swarm.swarm_info(), self.swarm.hostnames[0]))

    def _emit(self, event: Json) -> None:
        service = self._service
        if service is not None:
            service.publish(event)


def _remove_stale_socket(path: Path) -> None:
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise FileExistsError(f"{path} exists and is not a socket")
    path.unlink()


def _listening_socket(path: Path) -> socket.socket:
    """A non-blocking unix socket listening on ``path``, replacing a stale socket file."""
    _remove_stale_socket(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(str(path))
        listener.listen(BACKLOG)
        listener.setblocking(False)
    except BaseException:
        listener.close()
        raise
    return listener


# --- HTTP: requests ----------------------------------------------------------------

MAX_HEAD = 64 * 1024  # bytes of request line and headers


class HttpError(Exception):
    """A request that cannot be read: answered with ``status`` and the message, then the connection is closed."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


class Request(NamedTuple):
    method: str
    target: str
    keep_alive: bool  # False: answer with "Connection: close", then close


def parse_request(buffer: bytearray) -> tuple[Request, int] | None:
    """The first complete request in ``buffer`` and its size (head and body), or None until more arrives."""
    _skip_blank_lines(buffer)
    head_size, body_start = _find_blank_line(buffer)
    if head_size < 0:
        if len(buffer) > MAX_HEAD:
            raise HttpError(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request line and headers too long")
        return None
    request_line, _, header_block = buffer[:head_size].decode("latin-1").partition("\n")
    method, target, version = _parse_request_line(request_line.rstrip("\r"))
    headers = _parse_headers(header_block.split("\n"))
    keep_alive = _keep_alive(version, headers.get("connection", ""))
    if "transfer-encoding" in headers:  # a chunked body: where it ends is not worth finding out
        return Request(method, target, keep_alive=False), body_start
    size = body_start + _content_length(headers)
    if len(buffer) < size:
        return None  # the body is still on its way
    return Request(method, target, keep_alive), size


def _skip_blank_lines(buffer: bytearray) -> None:
    """Drops line breaks before a request line (a server should ignore them, RFC 9112 section 2.2)."""
    blank = 0
    while blank < len(buffer) and buffer[blank] in b"\r\n":
        blank += 1
    del buffer[:blank]


def _find_blank_line(buffer: bytearray) -> tuple[int, int]:
    """(size of the head, where the body starts) at the first empty line; (-1, -1) while there is none.

    Lines end in CRLF, or in a bare LF as some clients write them: the head
    ends at the first LF followed by CRLF or by another LF.
    """
    crlf = buffer.find(b"\n\r\n", 0, MAX_HEAD)
    lf = buffer.find(b"\n\n", 0, crlf + 1 if crlf >= 0 else MAX_HEAD)  # only one that comes first
    if lf >= 0:
        return lf, lf + 2
    if crlf >= 0:
        return crlf, crlf + 3
    return -1, -1


def _parse_request_line(line: str) -> tuple[str, str, str]:
    words = line.split()
    if len(words) != 3 or not words[2].startswith("HTTP/"):
        raise HttpError(HTTPStatus.BAD_REQUEST, f"bad request line: {line[:100]!r}")
    method, target, version = words
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        raise HttpError(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, f"unsupported HTTP version: {version[:20]!r}")
    return method, target, version


def _parse_headers(lines: list[str]) -> dict[str, str]:
    """Lower-case names to values (lines may end in CR); lines without a colon are ignored."""
    headers = {}
    for line in lines:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return headers


def _keep_alive(version: str, connection: str) -> bool:
    tokens = {token.strip().lower() for token in connection.split(",")}
    if "close" in tokens:
        return False
    return version == "HTTP/1.1" or "keep-alive" in tokens


def _content_length(headers: Mapping[str, str]) -> int:
    value = headers.get("content-length", "0")
    if not (value.isascii() and value.isdigit()):
        raise HttpError(HTTPStatus.BAD_REQUEST, f"bad Content-Length: {value[:20]!r}")
    return int(value)


# --- HTTP: responses ---------------------------------------------------------------

SERVER = f"Docker/{ENGINE_VERSION} (linux)"
PING_HEADERS = (("Cache-Control", "no-cache, no-store, must-revalidate"), ("Pragma", "no-cache"))
LAST_CHUNK = b"0\r\n\r\n"


CHUNKED = (("Transfer-Encoding", "chunked"),)
CHUNKING_SIZE = 2048  # Go's net/http sends a body this long or longer chunked, when no length is set


class Response(NamedTuple):
    status: HTTPStatus
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()  # after the common ones, before Content-Length


class EventStream(NamedTuple):
    """The answer to ``GET /events``: a chunked stream of the events that pass ``filters``."""

    filters: dict[str, list[str]]


def json_response(status: HTTPStatus, document: Any) -> Response:
    return Response(status, _json_bytes(document))


def response_bytes(response: Response, head_only: bool, close: bool) -> bytes:
    """The whole response (just its head for HEAD), with Content-Length unless its body is chunked already."""
    headers = response.headers if response.headers == CHUNKED else (
        *response.headers, ("Content-Length", str(len(response.body))))
    head = response_head(response.status, response.content_type, headers, close)
    return head if head_only else head + response.body


def response_head(
    status: HTTPStatus, content_type: str, headers: Iterable[tuple[str, str]], close: bool = False
) -> bytes:
    lines = [
        f"HTTP/1.1 {status.value} {status.phrase}",
        f"Api-Version: {API_VERSION}",
        f"Content-Type: {content_type}",
        f"Date: {_http_date(int(time.time()))}",
        "Docker-Experimental: false",
        "Ostype: linux",
        f"Server: {SERVER}",
        *(f"{name}: {value}" for name, value in headers),
    ]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@functools.lru_cache(maxsize=1)
def _http_date(second: int) -> str:
    return formatdate(second, usegmt=True)


def event_chunk(line: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(line), line)


# --- HTTP: routes ------------------------------------------------------------------

_VERSION_PREFIX = re.compile(r"^/v(\d+(?:\.\d+)*)(/.*)$")
_INSPECT_PATH = re.compile(r"^/containers/([^/]+)/json$")
NOT_FOUND = json_response(HTTPStatus.NOT_FOUND, {"message": "page not found"})


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def check_api_version(version: str) -> None:
    problem = _api_version_problem(version)
    if problem:
        raise BadRequest(problem)


@functools.lru_cache(maxsize=64)
def _api_version_problem(version: str) -> str | None:
    if _version_tuple(version) > _version_tuple(API_VERSION):
        return f"client version {version} is too new. Maximum supported API version is {API_VERSION}"
    if _version_tuple(version) < _version_tuple(MIN_API_VERSION):
        return (
            f"client version {version} is too old. Minimum supported API version is {MIN_API_VERSION}, "
            "please upgrade your client to a newer version"
        )
    return None


@functools.cache
def version_json() -> bytes:
    return _json_bytes(version_document())


def route(engine: FakeEngine, method: str, target: str) -> Response | EventStream:
    """The answer to ``method target``; 400 for a bad API version or bad parameters."""
    parts = urlsplit(target)
    path = unquote(parts.path)
    query = parse_qs(parts.query, keep_blank_values=True) if parts.query else {}
    try:
        prefixed = _VERSION_PREFIX.match(path)
        if prefixed:
            check_api_version(prefixed.group(1))
            path = prefixed.group(2)
        return _route(engine, method, path, query)
    except BadRequest as error:
        return json_response(HTTPStatus.BAD_REQUEST, {"message": str(error)})


def _route(engine: FakeEngine, method: str, path: str, query: dict[str, list[str]]) -> Response | EventStream:
    if path == "/_ping" and method in ("GET", "HEAD"):
        return Response(HTTPStatus.OK, b"OK", "text/plain; charset=utf-8", PING_HEADERS)
    if method != "GET":
        return NOT_FOUND
    inspect = _INSPECT_PATH.match(path)
    if inspect:
        return _inspect(engine, inspect.group(1))
    if path == "/containers/json":
        return _list(engine, query)
    if path == "/version":
        return Response(HTTPStatus.OK, version_json())
    if path == "/events":
        return EventStream(parse_filters(query))
    if path == "/info":
        return Response(HTTPStatus.OK, engine.info_json())
    if path in SWARM_PATHS:
        return _swarm_listing(engine, path, query)
    return NOT_FOUND


def _list(engine: FakeEngine, query: dict[str, list[str]]) -> Response:
    filters = parse_filters(query)
    unknown = set(filters) - LIST_FILTERS
    if unknown:
        raise BadRequest(f"invalid filter '{sorted(unknown)[0]}'")
    body = engine.list_json(filters, _int_param(query, "limit", -1), _bool_param(query, "size"))
    return Response(HTTPStatus.OK, body)


SWARM_PATHS = frozenset({"/services", "/tasks", "/nodes", "/networks"})


def _swarm_listing(engine: FakeEngine, path: str, query: dict[str, list[str]]) -> Response:
    """A manager's listings, prebuilt. Filters loosely: ``/tasks`` honours ``desired-state`` (running: every
    task; anything else: none), ``/networks`` ``scope``; other filters are ignored. Without a swarm,
    ``/networks`` lists the local ones and the rest answer 503 as an engine in no swarm does."""
    swarm = engine.swarm
    filters = parse_filters(query)
    if path == "/networks":
        scope = filters.get("scope") or []
        if swarm is None:
            return Response(HTTPStatus.OK, b"[]\n" if scope and "local" not in scope else _json_bytes(_local_networks()))
        if scope == ["local"]:
            return Response(HTTPStatus.OK, _json_bytes(_local_networks()))
        return swarm.response("networks-swarm" if scope == ["swarm"] else "networks")
    if swarm is None:
        return json_response(HTTPStatus.SERVICE_UNAVAILABLE, {"message": NOT_A_MANAGER})
    if path == "/tasks":
        desired = filters.get("desired-state")
        return swarm.response("tasks") if not desired or "running" in desired else Response(HTTPStatus.OK, b"[]\n")
    return swarm.response(path.lstrip("/"))


def _inspect(engine: FakeEngine, ref: str) -> Response:
    try:
        container = engine.find(ref)
    except KeyError:
        return json_response(HTTPStatus.NOT_FOUND, {"message": f"No such container: {ref}"})
    return Response(HTTPStatus.OK, container.inspect_json())


# --- HTTP: connections and the event loop ------------------------------------------

BACKLOG = 128
RECEIVE_SIZE = 256 * 1024
CLOSE_GRACE = 2.0  # seconds stop() waits for connections to send what they owe before dropping them
ACCEPT_RETRY = 0.5  # seconds without accepting after running out of file descriptors


class _Connection:
    """One client socket, driven by the loop's reader and writer callbacks (no transport, no task).

    It answers its requests in order, or, after ``GET /events``, streams
    events. While answers wait to be sent it reads nothing more, so a client
    that pipelines faster than it reads cannot make the output grow without
    bound.
    """

    def __init__(self, service: _Service, sock: socket.socket) -> None:
        self.service = service
        self.loop = service.loop
        self.sock = sock
        self.fd = sock.fileno()  # given to the loop rather than the socket, whose repr it would format, slowly
        self.received = bytearray()
        self.unsent = bytearray()
        self.filters: dict[str, list[str]] | None = None  # set while streaming events
        self.closing = False  # no more requests: close once everything is sent
        self.closed = False
        self.loop.add_reader(self.fd, self._on_readable)  # while nothing is unsent; else a writer

    # Reading

    def _on_readable(self) -> None:
        try:
            data = self.sock.recv(RECEIVE_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # reset by the client
            self.abort()
            return
        if not data:  # the client is done sending: a stream has no one to go to, answers are still owed
            if self.filters is not None:
                self.abort()
            else:
                self.close()
        elif not self.closing and self.filters is None:
            self.received += data
            self._answer_received()

    def _answer_received(self) -> None:
        """Answers every complete request received, in order, with one send."""
        answers: list[bytes] = []
        close = False
        while not close and self.filters is None:
            try:
                parsed = parse_request(self.received)
            except HttpError as error:
                answers.append(response_bytes(json_response(error.status, {"message": str(error)}), False, True))
                close = True
                break
            if parsed is None:
                break
            request, size = parsed
            del self.received[:size]
            answers.append(self._answer(request))
            close = not request.keep_alive and self.filters is None  # an event stream stays open
        if answers:
            self.write(b"".join(answers))
        if close:
            self.close()

    def _answer(self, request: Request) -> bytes:
        try:
            result = route(self.service.engine, request.method, request.target)
        except Exception:  # a bug here: say so on stderr and to the client
            traceback.print_exc()
            result = json_response(HTTPStatus.INTERNAL_SERVER_ERROR, {"message": "fake engine error"})
        if isinstance(result, EventStream):
            return self._start_stream(result.filters)
        return response_bytes(result, head_only=request.method == "HEAD", close=not request.keep_alive)

    def _start_stream(self, filters: dict[str, list[str]]) -> bytes:
        """Subscribes, then returns the head: once the client has it, it misses no event."""
        self.filters = filters
        self.received.clear()  # from now on what the client sends is ignored (we only watch for it leaving)
        self.service.streams.add(self)
        return response_head(HTTPStatus.OK, "application/json", (("Transfer-Encoding", "chunked"),))

    # Writing

    def write(self, data: bytes) -> None:
        """Sends ``data`` after anything still unsent; what the socket does not take now waits for the writer."""
        if self.closed:
            return
        if self.unsent:
            self.unsent += data
            return
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:  # the client left
            self.abort()
            return
        if sent < len(data):
            self.unsent += memoryview(data)[sent:]
            self.loop.remove_reader(self.fd)  # no more requests until the client catches up
            self.loop.add_writer(self.fd, self._on_writable)

    def _on_writable(self) -> None:
        try:
            sent = self.sock.send(self.unsent)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.abort()
            return
        del self.unsent[:sent]
        if self.unsent:
            return
        self.loop.remove_writer(self.fd)
        if self.closing:
            self._finish()
        else:
            self.loop.add_reader(self.fd, self._on_readable)

    # Closing

    def close(self) -> None:
        """Ends the event stream (with its last chunk) or the connection, once what is owed is sent."""
        if self.closed:
            return
        if self.filters is not None and not self.closing:
            self.write(LAST_CHUNK)
        self.closing = True
        if not self.unsent:  # else the writer finishes when it has sent everything
            self._finish()

    def abort(self) -> None:
        """Closes now, whatever is unsent."""
        self.closing = True
        self._finish()

    def _finish(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.unsent:
            self.loop.remove_writer(self.fd)
        else:
            self.loop.remove_reader(self.fd)
        self.sock.close()
        self.service.closed(self)


class _Service:
    """Serves one engine: an asyncio event loop, in a thread of its own, on a listening unix socket."""

    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine
        self.accepted = 0
        self.connections: set[_Connection] = set()
        self.streams: set[_Connection] = set()  # the connections streaming events
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fake-engine", daemon=True)
        self._listener: socket.socket | None = None

    def start(self, listener: socket.socket) -> None:
        """Starts the loop and accepts on ``listener`` (listening, non-blocking); closes it on failure."""
        self._thread.start()
        try:
            self._run(self._listen(listener))
        except BaseException:
            listener.close()
            self._end_loop()
            raise

    def stop(self) -> None:
        try:
            self._run(self._shut_down(), timeout=CLOSE_GRACE + 5)
        finally:
            self._end_loop()

    def publish(self, event: Json) -> None:
        """Hands ``event`` to the loop for every stream that wants it; from any thread."""
        try:
            self.loop.call_soon_threadsafe(self._deliver, event, event_chunk(_json_bytes(event)))
        except RuntimeError:  # the loop is closed: the engine stopped meanwhile
            pass

    # On the loop

    async def _listen(self, listener: socket.socket) -> None:
        self._listener = listener
        self.loop.add_reader(listener.fileno(), self._accept)

    def _accept(self) -> None:
        """Takes every waiting connection (up to a backlog's worth, to let the others have a turn)."""
        assert self._listener is not None
        for _ in range(BACKLOG):
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as error:  # out of file descriptors or memory: try again a little later
                print(f"fake engine: accept: {error}", file=sys.stderr)
                self.loop.remove_reader(self._listener.fileno())
                self.loop.call_later(ACCEPT_RETRY, self._resume_accepting)
                return
            sock.setblocking(False)
            self.accepted += 1
            self.connections.add(_Connection(self, sock))

    def _resume_accepting(self) -> None:
        if self._listener is not None:  # else stopped meanwhile
            self.loop.add_reader(self._listener.fileno(), self._accept)

    def closed(self, connection: _Connection) -> None:
        self.connections.discard(connection)
        self.streams.discard(connection)

    def _deliver(self, event: Json, chunk: bytes) -> None:
        for stream in list(self.streams):
            if not stream.closing and stream.filters is not None and event_filter_matches(stream.filters, event):
                stream.write(chunk)

    async def _shut_down(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:  # no new connection
            self.loop.remove_reader(listener.fileno())
            listener.close()
        for connection in list(self.connections):
            connection.close()
        deadline = self.loop.time() + CLOSE_GRACE
        while self.connections and self.loop.time() < deadline:
            await asyncio.sleep(0.005)
        for connection in list(self.connections):  # clients that read nothing: no more waiting
            connection.abort()

    # Between threads

    def _run(self, coroutine: Any, timeout: float = 10.0) -> Any:
        """Runs ``coroutine`` on the loop and waits for its result (never call from the loop itself)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def _end_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self.loop.close()


# --- command line -------------------------------------------------------------------


def _write_ready_file(path: Path) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(f"{os.getpid()}\n")
    temporary.replace(path)  # atomic: a poller never sees it half written


def parse_args(argv: Iterable[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Serve a fake Docker Engine API (20.10, API 1.41) on a unix socket.")
    parser.add_argument("--socket", required=True, type=Path, help="unix socket path (a stale one is replaced)")
    parser.add_argument("--containers", type=int, default=10_000, help="running containers (default 10000)")
    parser.add_argument("--images", type=int, default=50, help="distinct image names (default 50)")
    parser.add_argument("--ready-file", type=Path, help="written (with the PID) once listening; else 'ready' on stdout")
    parser.add_argument("--swarm-tasks", type=int, default=0,
                        help="be a swarm manager with this many running tasks (default 0: no swarm)")
    parser.add_argument("--swarm-services", type=int, default=0,
                        help="replicated services the tasks are spread over (default: 50, or fewer tasks)")
    args = parser.parse_args(None if argv is None else list(argv))
    if args.swarm_tasks < 0 or args.swarm_services < 0:
        parser.error("--swarm-tasks and --swarm-services cannot be negative")
    if args.swarm_tasks and not args.swarm_services:
        args.swarm_services = min(50, args.swarm_tasks)
    return args


def main(argv: Iterable[str] | None = None) -> int:
    args = parse_args(argv)
    if args.ready_file is not None:
        args.ready_file.unlink(missing_ok=True)
    engine = FakeEngine(args.socket, containers=args.containers, images=args.images, swarm_tasks=args.swarm_tasks,
                        swarm_services=args.swarm_services)
    # Blocked before any thread starts, so the threads inherit the mask and sigwait() gets them.
    signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    engine.start()
    try:
        if args.ready_file is not None:
            _write_ready_file(args.ready_file)
        else:
            print("ready", flush=True)
        signal.sigwait(signals)
    finally:
        engine.stop()
        if args.ready_file is not None:
            args.ready_file.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
