"""The made-up engine: its containers, images, bridge network, ``/version`` and ``/info`` documents, and events.

Deterministic (no randomness, so runs are comparable): container ``i``
(1-based) is ``c00001``..., on image ``(i - 1) % M + 1`` of M names (every
10th image from a registry path, every 5th exposing a port), with a unique
address in 10.0.0.0/8 (the bridge network 10.0.0.0/16 first, gateway
10.0.0.1), every 10th with a ``DNSDOCK_ALIAS``. The documents are in the JSON
shapes of Docker 20.10 (API 1.41).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

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
SWARM_TIME = "2026-12-01T16:33:26.428316394Z"  # when the networks and the swarm's objects were made

Json = dict[str, Any]


def hex_id(seed: str) -> str:
    """64 hex digits that depend only on ``seed``."""
    return hashlib.sha256(seed.encode()).hexdigest()


BRIDGE_NETWORK_ID = hex_id("fake-engine network bridge")


def json_bytes(document: Any) -> bytes:
    """Compact, newline-terminated: what Go's json.Encoder writes."""
    return json.dumps(document, separators=(",", ":")).encode() + b"\n"


def _rfc3339(seconds: int, nanos: int = 0) -> str:
    moment = datetime.fromtimestamp(seconds, UTC)
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
    return Image(reference, "sha256:" + hex_id("image " + reference), ports)


def custom_image(reference: str) -> Image:
    return Image(reference, "sha256:" + hex_id("image " + reference))


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
            self._inspect_json = json_bytes(self.inspect())
        return self._inspect_json

    def endpoint(self) -> Json:
        ip = self.ip
        return {
            "IPAMConfig": None,
            "Links": None,
            "Aliases": None,
            "NetworkID": BRIDGE_NETWORK_ID,
            "EndpointID": hex_id("endpoint " + self.id),
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
        layer = f"/var/lib/docker/overlay2/{hex_id('layer ' + self.id)}"
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
        sandbox = hex_id("sandbox " + self.id)
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
        id=hex_id(f"container {index}"),
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


def local_networks() -> list[Json]:
    """The local networks of ``GET /networks``: bridge, host, none."""
    networks = []
    for name, driver in (("bridge", "bridge"), ("host", "host"), ("none", "null")):
        config = [{"Subnet": "10.0.0.0/16", "Gateway": "10.0.0.1"}] if name == "bridge" else []
        networks.append({
            "Name": name, "Id": BRIDGE_NETWORK_ID if name == "bridge" else hex_id(f"fake-engine network {name}"),
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
