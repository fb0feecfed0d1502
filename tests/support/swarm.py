"""A private two-node Docker Swarm on this one machine, for the tests.

Two Debian ``dockerd`` (see private_engine.py), each with its own socket, data
root, exec root, pidfile, bridges and address pools, ``--iptables=false``:

- node 1 runs in the root network namespace, on a bridge of its own (the swarm's
  underlay: node 1 is its ``.1``); it is always a manager;
- node 2 runs in a network namespace of its own, joined to node 1's bridge by a
  veth pair (node 2 is ``.2`` of the same subnet); a worker, or a second manager
  with ``managers=2``.

Each runs in a UTS namespace of its own, so that each has its own hostname
(swarm names nodes after it). Everything (bridge, veth, netns and interface
names, subnets, the swarm's data path port) is derived from one octet ``B``:
the swarm lives in ``10.B.0.0/16``, claimed by an ``unreachable`` route in the
root namespace for the life of the swarm, so that nothing of its ranges that
is not on a local bridge (node 2's bridges, the overlays) is ever routed out
through the default gateway, even while a link is down. Parallel runs claim
different octets (adding that route is the lock).

Layout for octet B (names are ``dcsB`` + a suffix, at most 15 characters)::

    10.B.0.0/24    node 1's bridge dcsBb1 (node 1 .1, node 2 .2 on veth dcsBv1/dcsBv2,
                   node 1's own containers from 10.B.0.128/25)
    10.B.1.0/24    node 2's bridge dcsBb2, inside netns dcsBn2
    10.B.2.0/24    node 1's docker_gwbridge (bridge dcsBg1)
    10.B.3.0/24    node 2's docker_gwbridge (bridge dcsBg2, inside the netns)
    10.B.16.0/20   node 1's --default-address-pool (local networks)
    10.B.32.0/20   node 2's --default-address-pool
    10.B.128.0/17  the swarm's --default-addr-pool (overlays, ingress), /24 each
    UDP 47800+B    the swarm's VXLAN data path port

Images: both nodes import ``local/busybox`` from Debian's busybox-static, and
both dockerds run with ``DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1``: without it the
swarm executor tries to pull a task's image from Docker Hub before every task
start (and falls back to the local image after that fails), i.e. DNS queries
and connections off this machine. Stacks are deployed with
``--resolve-image never`` for the same reason, and the helpers give services
and containers node 1's bridge address as their only upstream nameserver, so
that Docker's embedded DNS never forwards a query off the machine either.

    with PrivateSwarm(Path(tempfile.mkdtemp(prefix="dcs-", dir="/tmp"))) as swarm:
        swarm.create_network("front")
        web = swarm.create_service("web", replicas=3, networks=["front"])
        tasks = swarm.wait_for_tasks(web, 3)
        probe = swarm.run_attached("front")
        assert swarm.embedded_dns(probe, "tasks.web") == sorted(
            (swarm.task_address(t, "front") for t in tasks), key=ipaddress.ip_address)
        swarm.kill_task(tasks[0])   # through the engine of the node it runs on
        swarm.drain(swarm.node2)    # its tasks move to node 1
        with swarm.partitioned():   # node 2's veth down on node 1's bridge
            ...
    assert swarm.leftovers() == []

``python -m tests.support.swarm up DIR [MANAGERS]`` starts one and leaves it running
(prints its sockets); ``python -m tests.support.swarm down DIR`` stops it.
``python -m tests.support.swarm_capture`` records the samples and facts in swarm_samples/.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
import docker.types

from tests.support.private_engine import BUSYBOX_IMAGE, EngineUnavailable, PrivateEngine, _alive

SWARM_PORT = 2377
DATA_PATH_PORT_BASE = 47800  # + the octet; not VXLAN's 4789, which another overlay on the machine may use
OCTETS = range(64, 200)  # 10.B.0.0/16 for B here; the private engines use 10.213.x.0/24
PREFIX = "dcs"
STATE_FILE = "swarm.json"


class SwarmUnavailable(EngineUnavailable):
    """No private swarm can be made on this machine (the reason says why)."""


def _run(command: list[str], check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                            check=False)
    if check and result.returncode != 0:
        raise SwarmUnavailable(f"{shlex.join(command)}: {(result.stderr or result.stdout).strip()}")
    return result


def _ip(*args: str, netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return _run(["ip", *(["-n", netns] if netns else []), *args], check=check)


def _names_of(prefix: str, links: str) -> list[str]:
    """The links of ``ip -o link show`` output named ``prefix`` + a letter + ... (``dcs117b1``, not ``dcs1170b1``)."""
    return re.findall(rf"^\d+: ({re.escape(prefix)}[a-z][^:@\s]*)", links, re.MULTILINE)


def _cgroup_remount_script() -> list[str]:
    """Shell commands mounting again, on a fresh /sys, the cgroup file systems the host has.

    ``ip netns exec`` mounts a sysfs of the namespace on /sys, which hides the host's
    /sys/fs/cgroup mounts; dockerd then fails ("Devices cgroup isn't mounted").
    Mounting a cgroup v1 hierarchy again with the same options attaches the same hierarchy.
    """
    with open("/proc/self/mounts") as mounts:
        entries = [line.split()[:4] for line in mounts]
    top = [entry for entry in entries if entry[1] == "/sys/fs/cgroup"]
    if top and top[-1][2] == "cgroup2":  # unified only
        return [f"mount -t cgroup2 -o {shlex.quote(top[-1][3])} cgroup2 /sys/fs/cgroup"]
    commands = ["mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup"]
    for _device, point, fstype, options in entries:
        if point.startswith("/sys/fs/cgroup/") and fstype in ("cgroup", "cgroup2"):
            commands.append(f"mkdir -p {shlex.quote(point)}")
            commands.append(f"mount -t {fstype} -o {shlex.quote(options)} {fstype} {shlex.quote(point)}")
    with contextlib.suppress(OSError):
        for entry in os.scandir("/sys/fs/cgroup"):  # cpu -> cpu,cpuacct and the like
            if entry.is_symlink():
                commands.append(f"ln -s {shlex.quote(os.readlink(entry.path))} {shlex.quote(entry.path)}")
    return commands


class SwarmNode(PrivateEngine):
    """One dockerd of the swarm (a PrivateEngine: ``client``, ``url``, ``run``, ``ensure_image``...)."""

    def __init__(self, root: Path, *, number: int, hostname: str, bridge: str, bridge_cidr: str, address: str,
                 address_pool: str, gwbridge: str, gwbridge_subnet: str, fixed_cidr: str | None = None,
                 netns: str | None = None) -> None:
        super().__init__(root, name=bridge)
        self.number = number
        self.hostname = hostname
        self.bridge_cidr = bridge_cidr  # the bridge's own address, 10.B.x.1/24
        self.address = address  # where the swarm reaches this node (its underlay address)
        self.address_pool = address_pool
        self.gwbridge = gwbridge
        self.gwbridge_subnet = gwbridge_subnet
        self.fixed_cidr = fixed_cidr
        self.netns = netns
        self.node_id: str | None = None  # the swarm's ID of this node, once in the swarm

    def __repr__(self) -> str:
        return f"<SwarmNode {self.number} {self.hostname} {self.address}{' netns ' + self.netns if self.netns else ''}>"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self, timeout: float = 60.0) -> None:
        dockerd = self._prepare()
        # Its own config file (none of /etc/docker/daemon.json) and its own engine key,
        # so that each node has its own engine ID, as two machines would.
        config = self.root / "daemon.json"
        config.write_text(json.dumps({"deprecated-key-path": str(self.root / "key.json")}))
        self._create_bridge()
        arguments = [
            dockerd,
            "--config-file", str(config),
            "--host", self.url,
            "--data-root", str(self.root / "data"),
            "--exec-root", str(self.root / "exec"),
            "--pidfile", str(self.root / "dockerd.pid"),
            "--bridge", self.bridge,
            *(["--fixed-cidr", self.fixed_cidr] if self.fixed_cidr else []),
            "--default-address-pool", f"base={self.address_pool},size=24",
            "--iptables=false", "--ip-masq=false", "--ip-forward=false", "--ip6tables=false",
            "--storage-driver", "vfs",
            "--shutdown-timeout", "2",
            "--log-level", "warn",
        ]
        script = [f"hostname {shlex.quote(self.hostname)}"]
        if self.netns:
            script += _cgroup_remount_script()
        script.append("exec " + shlex.join(arguments))
        command = ["unshare", "--uts", "--", "sh", "-c", " && ".join(script)]
        if self.netns:
            command = ["ip", "netns", "exec", self.netns, *command]
        log = open(self.root / "dockerd.log", "ab")
        self.process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            env={**os.environ, "DOCKER_SERVICE_PREFER_OFFLINE_IMAGE": "1"},
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise EngineUnavailable(f"dockerd of node {self.number} exited with code "
                                        f"{self.process.returncode}: {self._log_tail()}")
            try:
                self.client.ping()
                self.answering_since = time.time()
                break
            except Exception as error:
                if time.monotonic() > deadline:
                    self.stop()
                    raise EngineUnavailable(f"dockerd of node {self.number} did not answer within "
                                            f"{timeout:.0f}s: {self._log_tail()}") from error
                time.sleep(0.05)
        self.ensure_image(BUSYBOX_IMAGE)

    def create_gwbridge(self) -> None:
        """docker_gwbridge on a bridge of our own name and subnet (else swarm makes ``docker_gwbridge``)."""
        subnet = ipaddress.ip_network(self.gwbridge_subnet)
        self.client.networks.create(
            "docker_gwbridge", driver="bridge",
            options={
                "com.docker.network.bridge.name": self.gwbridge,
                "com.docker.network.bridge.enable_icc": "false",
                "com.docker.network.bridge.enable_ip_masquerade": "false",
            },
            ipam=docker.types.IPAMConfig(pool_configs=[
                docker.types.IPAMPool(subnet=str(subnet), gateway=str(subnet.network_address + 1)),
            ]),
        )

    def _create_bridge(self) -> None:
        self._delete_bridge()
        _ip("link", "add", "name", self.bridge, "type", "bridge", netns=self.netns)
        _ip("addr", "add", self.bridge_cidr, "dev", self.bridge, netns=self.netns)
        _ip("link", "set", self.bridge, "up", netns=self.netns)

    def _delete_bridge(self) -> None:
        if self.netns is None or os.path.exists(f"/run/netns/{self.netns}"):
            _ip("link", "delete", self.bridge, netns=self.netns, check=False)

    def in_netns(self, command: list[str]) -> list[str]:
        """``command`` run in this node's network namespace (the root one for node 1)."""
        return ["ip", "netns", "exec", self.netns, *command] if self.netns else list(command)


class PrivateSwarm:
    """Two private dockerds in one swarm; see the module's docstring."""

    def __init__(self, root: Path, managers: int = 1, heartbeat: float | None = None) -> None:
        if managers not in (1, 2):
            raise ValueError("managers is 1 or 2")
        self.root = Path(root)
        self.managers = managers
        self.heartbeat = heartbeat  # the dispatcher's heartbeat period in seconds (swarm's default: 5)
        self.octet: int | None = None
        self.nodes: list[SwarmNode] = []

    # -- names and addresses --

    @property
    def prefix(self) -> str:
        return f"{PREFIX}{self.octet}"

    @property
    def subnet(self) -> str:
        """The /16 the whole swarm lives in (claimed by an unreachable route in the root namespace)."""
        return f"10.{self.octet}.0.0/16"

    @property
    def addr_pool(self) -> str:
        return f"10.{self.octet}.128.0/17"

    @property
    def data_path_port(self) -> int:
        return DATA_PATH_PORT_BASE + self.octet

    @property
    def nameserver(self) -> str:
        """Node 1's bridge address: the upstream the helpers give containers (nothing answers there)."""
        return f"10.{self.octet}.0.1"

    @property
    def node1(self) -> SwarmNode:
        return self.nodes[0]

    @property
    def node2(self) -> SwarmNode:
        return self.nodes[1]

    @property
    def manager(self) -> SwarmNode:
        return self.node1

    @property
    def client(self) -> docker.DockerClient:
        """The manager's (node 1's) client."""
        return self.manager.client

    @property
    def url(self) -> str:
        """The manager's (node 1's) socket, ``unix://...``."""
        return self.manager.url

    @property
    def veth(self) -> tuple[str, str]:
        """Node 2's veth pair: (the end on node 1's bridge, the end in node 2's namespace)."""
        return f"{self.prefix}v1", f"{self.prefix}v2"

    def _plan(self) -> None:
        b, p = self.octet, self.prefix
        self.nodes = [
            SwarmNode(self.root / "n1", number=1, hostname=f"node1-{p}", bridge=f"{p}b1",
                      bridge_cidr=f"10.{b}.0.1/24", address=f"10.{b}.0.1", fixed_cidr=f"10.{b}.0.128/25",
                      address_pool=f"10.{b}.16.0/20", gwbridge=f"{p}g1", gwbridge_subnet=f"10.{b}.2.0/24"),
            SwarmNode(self.root / "n2", number=2, hostname=f"node2-{p}", bridge=f"{p}b2",
                      bridge_cidr=f"10.{b}.1.1/24", address=f"10.{b}.0.2", netns=f"{p}n2",
                      address_pool=f"10.{b}.32.0/20", gwbridge=f"{p}g2", gwbridge_subnet=f"10.{b}.3.0/24"),
        ]

    # -- life cycle --

    def __enter__(self) -> PrivateSwarm:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self, timeout: float = 90.0) -> None:
        for tool in ("ip", "unshare", "nsenter"):
            if shutil.which(tool) is None:
                raise SwarmUnavailable(f"{tool} is not installed")
        if os.geteuid() != 0:
            raise SwarmUnavailable("a private swarm needs root")
        deadline = time.monotonic() + timeout
        self.root.mkdir(parents=True, exist_ok=True)
        self._claim_octet()
        try:
            self._plan()
            self._save_state()
            _ip("netns", "add", self.node2.netns)
            _ip("link", "set", "lo", "up", netns=self.node2.netns)
            with ThreadPoolExecutor(2) as pool:
                list(pool.map(lambda node: node.start(), self.nodes))
            self._connect_node2()
            for node in self.nodes:
                node.create_gwbridge()
            self._init_and_join(deadline)
        except BaseException:
            self.stop()
            raise

    def _claim_octet(self) -> None:
        links = _ip("-o", "link", "show").stdout
        routes = _ip("-4", "route", "show", "table", "all").stdout
        taken = []
        for line in routes.splitlines():
            words = line.split()
            destination = words[1] if words and words[0] in ("unreachable", "blackhole", "local", "broadcast",
                                                              "prohibit", "throw") else (words[0] if words else "")
            with contextlib.suppress(ValueError):
                taken.append(ipaddress.ip_network(destination, strict=False))
        candidates = list(OCTETS)
        random.shuffle(candidates)
        for octet in candidates:
            network = ipaddress.ip_network(f"10.{octet}.0.0/16")
            if any(network.overlaps(t) for t in taken if t.prefixlen > 0):
                continue
            if _names_of(f"{PREFIX}{octet}", links) or os.path.exists(f"/run/netns/{PREFIX}{octet}n2"):
                continue
            if _ip("route", "add", "unreachable", str(network), check=False).returncode == 0:
                self.octet = octet
                return
        raise SwarmUnavailable("no free 10.B.0.0/16 for a private swarm")

    def _connect_node2(self) -> None:
        """The veth pair from node 1's bridge into node 2's namespace (made before, for its dockerd)."""
        node2 = self.node2
        v1, v2 = self.veth
        _ip("link", "add", v1, "type", "veth", "peer", "name", v2)
        _ip("link", "set", v2, "netns", node2.netns)
        _ip("link", "set", v1, "master", self.node1.bridge)
        _ip("link", "set", v1, "up")
        _ip("addr", "add", f"{node2.address}/24", "dev", v2, netns=node2.netns)
        _ip("link", "set", v2, "up", netns=node2.netns)

    def _init_and_join(self, deadline: float) -> None:
        node1, node2 = self.nodes
        spec = {}
        if self.heartbeat is not None:
            spec["dispatcher_heartbeat_period"] = int(self.heartbeat * 1e9)
        node1.client.swarm.init(
            advertise_addr=f"{node1.address}:{SWARM_PORT}", listen_addr=f"{node1.address}:{SWARM_PORT}",
            data_path_addr=node1.address, data_path_port=self.data_path_port,
            default_addr_pool=[self.addr_pool], subnet_size=24, **spec,
        )
        node1.client.swarm.reload()
        tokens = node1.client.swarm.attrs["JoinTokens"]
        node2.client.swarm.join(
            remote_addrs=[f"{node1.address}:{SWARM_PORT}"],
            join_token=tokens["Manager" if self.managers == 2 else "Worker"],
            listen_addr=f"{node2.address}:{SWARM_PORT}", advertise_addr=f"{node2.address}:{SWARM_PORT}",
            data_path_addr=node2.address,
        )
        for node in self.nodes:
            node.node_id = node.client.info()["Swarm"]["NodeID"]
        self.wait_for_nodes(lambda nodes: len(nodes) == 2 and all(self._node_ready(n) for n in nodes),
                            timeout=max(1.0, deadline - time.monotonic()))

    def _node_ready(self, node: dict) -> bool:
        if node["Status"]["State"] != "ready":
            return False
        manager = node.get("ManagerStatus")
        return manager is None or manager.get("Reachability") == "reachable"

    def stop(self) -> None:
        """Removes services and containers, leaves the swarm, stops both dockerds (and their containerd),
        deletes every link, namespace, route, mount and directory of the swarm."""
        alive = [node for node in self.nodes if node.process is not None and node.process.poll() is None]
        with contextlib.suppress(Exception):
            if self.node1 in alive:
                for service in self.client.services.list():
                    service.remove()
        with ThreadPoolExecutor(2) as pool:  # each step carries on past the other node's errors
            for step in (_remove_containers, _leave):
                for failure in [future.exception() for future in [pool.submit(step, node) for node in alive]]:
                    if failure is not None:
                        print(f"swarm stop: {step.__name__}: {failure}", file=sys.stderr)
            list(pool.map(lambda node: node.stop(), self.nodes))
        if self.octet is not None:
            for node in self.nodes:
                if node.netns is None:
                    _ip("link", "delete", node.gwbridge, check=False)
            _ip("link", "delete", self.veth[0], check=False)
            if self.nodes and os.path.exists(f"/run/netns/{self.node2.netns}"):
                _ip("netns", "delete", self.node2.netns, check=False)
            self._unmount_under_root()
            _ip("route", "del", "unreachable", self.subnet, check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def _unmount_under_root(self) -> None:
        for point in sorted(self._mounts(), key=len, reverse=True):
            _run(["umount", "-l", point], check=False)

    def _mounts(self) -> list[str]:
        prefix = str(self.root) + "/"
        with open("/proc/mounts") as mounts:
            return [line.split()[1] for line in mounts if line.split()[1].startswith(prefix)]

    def leftovers(self) -> list[str]:
        """What of this swarm is still on the machine (empty once stopped): processes, links,
        namespaces, routes, mounts, files."""
        found = []
        marker = str(self.root) + "/"
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            with contextlib.suppress(OSError):
                cmdline = Path(f"/proc/{entry.name}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                if marker in cmdline and _alive(int(entry.name)):
                    found.append(f"process {entry.name}: {cmdline.strip()}")
        if self.octet is not None:
            net = f"10.{self.octet}."
            found += [f"link {name}" for name in _names_of(self.prefix, _ip("-o", "link", "show").stdout)]
            for line in _ip("-o", "-4", "addr", "show").stdout.splitlines():
                if f" {net}" in line:
                    found.append("address " + " ".join(line.split()[1:4]))
            for line in _ip("netns", "list").stdout.splitlines():
                if line.startswith(self.prefix):
                    found.append("netns " + line)
            for line in _ip("-4", "route", "show", "table", "all").stdout.splitlines():
                if net in line:
                    found.append("route " + line)
        found += [f"mount {point}" for point in self._mounts()]
        if self.root.exists():
            found.append(f"directory {self.root}")
        return found

    def _save_state(self) -> None:
        state = {"octet": self.octet, "managers": self.managers}
        (self.root / STATE_FILE).write_text(json.dumps(state))

    @classmethod
    def attach(cls, root: Path) -> PrivateSwarm:
        """The swarm a ``python -m tests.support.swarm up ROOT`` left running (to stop it, or use it)."""
        root = Path(root)
        state = json.loads((root / STATE_FILE).read_text())
        swarm = cls(root, managers=state["managers"])
        swarm.octet = state["octet"]
        swarm._plan()
        for node in swarm.nodes:
            with contextlib.suppress(Exception):
                node.node_id = node.client.info()["Swarm"]["NodeID"] or None
        return swarm

    def reset(self) -> None:
        """Back to an empty swarm between tests (about a second): node 2 connected and active, no
        stacks, services, containers or networks of a test's own."""
        self.reconnect()
        for node in self.nodes:
            if self.client.nodes.get(node.node_id).attrs["Spec"].get("Availability") != "active":
                self.activate(node)
        for service in self.client.services.list():
            service.remove()
        # The swarm takes some 6 s to remove the task containers of removed services; removing them
        # at once is as good (their tasks are meant to go) and quicker.
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(_remove_containers, self.nodes))
        for network in self.client.networks.list():
            if network.name not in ("bridge", "host", "none", "ingress", "docker_gwbridge"):
                with contextlib.suppress(docker.errors.NotFound):
                    network.remove()

    # -- nodes --

    def node_of(self, node_id: str) -> SwarmNode:
        """The node with this swarm node ID."""
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        raise KeyError(node_id)

    def swarm_nodes(self) -> list[dict]:
        """``GET /nodes`` on the manager."""
        return self.client.api.nodes()

    def wait_for_nodes(self, predicate: Callable[[list[dict]], bool], timeout: float = 60.0) -> list[dict]:
        def ready() -> list[dict] | None:
            nodes = self.swarm_nodes()
            return nodes if predicate(nodes) else None
        return _wait(ready, timeout, "the swarm's nodes", self.swarm_nodes)

    def set_availability(self, node: SwarmNode, availability: str) -> None:
        """``active``, ``pause`` or ``drain``."""
        swarm_node = self.client.nodes.get(node.node_id)
        spec = dict(swarm_node.attrs["Spec"], Availability=availability)
        swarm_node.update(spec)

    def drain(self, node: SwarmNode) -> None:
        self.set_availability(node, "drain")

    def activate(self, node: SwarmNode) -> None:
        self.set_availability(node, "active")

    def restart(self, node: SwarmNode) -> None:
        """Starts a node's dockerd again after ``node.kill()`` (node 1's bridge is made anew: node 2's veth
        end is put back on it)."""
        node.wait_for_containerd()
        node.start()
        if node is self.node1:
            _ip("link", "set", self.veth[0], "master", self.node1.bridge)
            _ip("link", "set", self.veth[0], "up")

    def disconnect(self, node: SwarmNode | None = None) -> None:
        """Cuts node 2 off node 1's bridge (its veth end there goes down): a network partition."""
        assert node is None or node is self.node2, "only node 2 can be cut off"
        _ip("link", "set", self.veth[0], "down")

    def reconnect(self, node: SwarmNode | None = None) -> None:
        assert node is None or node is self.node2, "only node 2 can be cut off"
        _ip("link", "set", self.veth[0], "up")

    @contextlib.contextmanager
    def partitioned(self, node: SwarmNode | None = None) -> Iterator[None]:
        self.disconnect(node)
        try:
            yield
        finally:
            self.reconnect(node)

    # -- networks and services --

    def create_network(self, name: str, *, attachable: bool = True, labels: dict | None = None, **kwargs):
        """An overlay network (attachable by default, for plain containers) from the swarm's pool."""
        return self.client.networks.create(name, driver="overlay", attachable=attachable, scope="swarm",
                                           labels=labels, **kwargs)

    def create_service(self, name: str, *, replicas: int | None = 1, mode: str = "replicated",
                       networks: Iterable[str] = (), endpoint_mode: str = "vip", ports: dict | None = None,
                       labels: dict | None = None, container_labels: dict | None = None,
                       env: dict | list | None = None, max_per_node: int | None = None,
                       constraints: list[str] | None = None, restart_delay: float | None = None,
                       image: str = BUSYBOX_IMAGE, command: list[str] | None = None, wait: bool = True,
                       timeout: float = 60.0, **kwargs):
        """A service of sleeping busybox tasks. ``mode="global"`` for one task a node; ``endpoint_mode="dnsrr"``
        for no VIP; ``ports={8080: 80}`` publishes (ingress mode: no listener with --iptables=false);
        ``max_per_node`` caps replicas a node; ``constraints=["node.role==worker"]`` places them;
        ``restart_delay=0`` replaces a failed task at once (swarm's default waits 5 s). Other keyword
        arguments go to docker-py's ``services.create``. Waits until its tasks run, unless ``wait=False``.
        Returns the docker-py Service."""
        for node in self.nodes:
            node.ensure_image(image)
        service_mode = docker.types.ServiceMode("global") if mode == "global" else \
            docker.types.ServiceMode("replicated", replicas=replicas)
        if endpoint_mode != "vip" or ports:
            kwargs["endpoint_spec"] = docker.types.EndpointSpec(mode=endpoint_mode, ports=ports)
        if max_per_node is not None:
            kwargs["maxreplicas"] = max_per_node
        if constraints:
            kwargs["constraints"] = constraints
        if restart_delay is not None:
            kwargs["restart_policy"] = docker.types.RestartPolicy(condition="any", delay=int(restart_delay * 1e9))
        kwargs.setdefault("dns_config", docker.types.DNSConfig(nameservers=[self.nameserver]))
        kwargs.setdefault("stop_grace_period", 1_000_000_000)
        service = self.client.services.create(
            image, command or ["sleep", "3600"], name=name, mode=service_mode, networks=list(networks),
            labels=labels, container_labels=container_labels, env=env, init=True, **kwargs,
        )
        if wait:
            expected = len(self.nodes) if mode == "global" else replicas
            self.wait_for_tasks(service, expected, timeout=timeout)
        return service

    def service(self, name_or_id: str):
        return self.client.services.get(name_or_id)

    def tasks(self, service=None, **filters) -> list[dict]:
        """``GET /tasks`` on the manager with these filters (``desired-state="running"``...)."""
        if service is not None:
            filters["service"] = service if isinstance(service, str) else service.name
        return self.client.api.tasks(filters=filters)

    def running_tasks(self, service=None) -> list[dict]:
        """The tasks meant to run and running, sorted by slot (then node)."""
        tasks = [task for task in self.tasks(service, **{"desired-state": "running"})
                 if task["Status"]["State"] == "running"]
        return sorted(tasks, key=lambda task: (task.get("Slot", 0), task.get("NodeID", "")))

    def wait_for_tasks(self, service, count: int, timeout: float = 60.0,
                       predicate: Callable[[list[dict]], bool] | None = None) -> list[dict]:
        """Waits until exactly ``count`` tasks of the service run (and ``predicate(tasks)`` holds)."""
        def ready():
            tasks = self.running_tasks(service)
            pending = [t for t in self.tasks(service, **{"desired-state": "running"})
                       if t["Status"]["State"] != "running"]
            if len(tasks) == count and not pending and (predicate is None or predicate(tasks)):
                return tasks
            return None
        return _wait(ready, timeout, f"{count} running tasks of {getattr(service, 'name', service)}",
                     lambda: [(t["Slot"] if "Slot" in t else t["NodeID"][:6], t["Status"]["State"],
                               t["Status"].get("Err")) for t in self.tasks(service)])

    def scale(self, service, replicas: int, wait: bool = True, timeout: float = 60.0) -> None:
        service = self.service(service) if isinstance(service, str) else service
        service.reload()
        service.scale(replicas)
        if wait:
            self.wait_for_tasks(service, replicas, timeout=timeout)

    def remove_service(self, service, wait: bool = True, timeout: float = 30.0) -> None:
        name = service if isinstance(service, str) else service.name
        self.service(name).remove()
        if wait:
            _wait(lambda: not any(
                c for node in self.nodes for c in node.client.containers.list(
                    all=True, filters={"label": f"com.docker.swarm.service.name={name}"})) or None,
                timeout, f"the containers of {name} to go")

    def deploy_stack(self, name: str, compose: str, wait: dict[str, int] | None = None, timeout: float = 60.0) -> str:
        """``docker stack deploy --resolve-image never -c COMPOSE NAME`` on the manager (Debian's docker CLI);
        then waits for ``wait`` = {service name without the stack prefix: running tasks}. Returns the CLI output."""
        stack_dir = self.root / "stacks" / name
        stack_dir.mkdir(parents=True, exist_ok=True)
        (stack_dir / "docker-compose.yml").write_text(compose)
        output = self.docker_cli("stack", "deploy", "--resolve-image", "never",
                                 "-c", str(stack_dir / "docker-compose.yml"), name)
        for service, count in (wait or {}).items():
            self.wait_for_tasks(f"{name}_{service}", count, timeout=timeout)
        return output

    def remove_stack(self, name: str) -> str:
        return self.docker_cli("stack", "rm", name)

    def docker_cli(self, *args: str, node: SwarmNode | None = None) -> str:
        """Runs the docker CLI (Debian's, which matches the engine) against a node (the manager by default)."""
        cli = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else shutil.which("docker")
        if cli is None:
            raise SwarmUnavailable("the docker CLI is not installed (apt-get install docker.io)")
        config = self.root / "cli"
        config.mkdir(exist_ok=True)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(config),
               "DOCKER_HOST": (node or self.manager).url, "DOCKER_CONFIG": str(config)}
        result = subprocess.run([cli, *args], env=env, capture_output=True, text=True, timeout=120,
                                stdin=subprocess.DEVNULL, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"docker {shlex.join(args)}: {result.stderr.strip() or result.stdout.strip()}")
        return result.stdout + result.stderr

    # -- tasks and containers --

    def task_node(self, task: dict) -> SwarmNode:
        return self.node_of(task["NodeID"])

    def task_container(self, task: dict):
        """The container of a task, from the engine of the node it runs on."""
        node = self.task_node(task)
        return node.client.containers.get(task["Status"]["ContainerStatus"]["ContainerID"])

    def kill_task(self, task: dict) -> None:
        """SIGKILLs a task's container through its node's engine (swarm then starts a new task)."""
        self.task_container(task).kill()

    @staticmethod
    def task_address(task: dict, network: str) -> str:
        """A task's address (without prefix length) on the named network."""
        for attachment in task.get("NetworksAttachments", []):
            if attachment["Network"]["Spec"]["Name"] == network:
                return attachment["Addresses"][0].split("/")[0]
        raise KeyError(f"task {task['ID']} has no address on {network}")

    def run_attached(self, network: str, name: str | None = None, node: SwarmNode | None = None, **kwargs):
        """A sleeping busybox container on an attachable overlay, on node 1 unless told (node 2 works too)."""
        node = node or self.node1
        kwargs.setdefault("dns", [self.nameserver])
        return node.run(BUSYBOX_IMAGE, name=name, network=network, **kwargs)

    def container_node(self, container) -> SwarmNode:
        for node in self.nodes:
            if container.client.api.base_url == node.client.api.base_url:
                return node
        raise KeyError(container.id)

    def embedded_dns(self, container, name: str, rdtype: str = "A") -> list[str]:
        """What Docker's embedded DNS (127.0.0.11 in the container's network namespace) answers
        for ``name``, asked by the host's ``dig`` from inside that namespace: sorted addresses
        (or names, for CNAME/SRV). The reference to compare dnscock's answers with."""
        reply = self.embedded_dns_reply(container, name, rdtype)
        lines = [line.split()[-1] for line in reply.splitlines() if line and not line.startswith(";")]
        records = [r for r in lines if r]
        try:
            return sorted(records, key=ipaddress.ip_address)
        except ValueError:
            return sorted(records)

    def settled_embedded_dns(self, container, name: str, expected: list[str], timeout: float = 20.0) -> list[str]:
        """What the embedded DNS answers for ``name`` once it equals ``expected``, or what it answered
        last when ``timeout`` runs out (for the caller's assert to show). Tasks on another node reach
        a node's embedded DNS by gossip, a moment after they run."""
        deadline = time.monotonic() + timeout
        while True:
            answer = self.embedded_dns(container, name)
            if answer == expected or time.monotonic() > deadline:
                return answer
            time.sleep(0.25)

    def embedded_dns_reply(self, container, name: str, rdtype: str = "A", *dig_options: str,
                           check: bool = True) -> str:
        """``dig @127.0.0.11 NAME RDTYPE +noall +answer`` from inside the container's network namespace.

        A name the embedded DNS does not know (not a service, task or container on one of the
        container's networks) is forwarded to the container's nameservers; the helpers give it
        node 1's bridge address, where nothing answers, so dig times out (an error unless
        ``check=False``)."""
        container.reload()
        pid = container.attrs["State"]["Pid"]
        if not pid:
            raise RuntimeError(f"container {container.name} is not running")
        options = dig_options or ("+noall", "+answer")
        result = _run(["nsenter", "--target", str(pid), "--net", "dig", "@127.0.0.11", "+time=1", "+tries=2",
                       *options, name, rdtype], check=check)
        return result.stdout


def _remove_containers(node: SwarmNode) -> None:
    """Every container of the node, gone; ones the swarm is removing itself meanwhile (404, 409) are fine."""
    try:
        ids = [summary["Id"] for summary in node.client.api.containers(all=True)]  # ids only: no inspect
    except docker.errors.DockerException:
        return
    for container_id in ids:
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            node.client.api.remove_container(container_id, force=True)


def _leave(node: SwarmNode) -> None:
    with contextlib.suppress(Exception):
        node.client.swarm.leave(force=True)


def _wait(probe: Callable, timeout: float, what: str, describe: Callable | None = None, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            detail = ""
            if describe is not None:
                with contextlib.suppress(Exception):
                    detail = f": {describe()}"
            raise TimeoutError(f"waited {timeout:.0f}s for {what}{detail}")
        time.sleep(interval)


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in ("up", "down") or (argv[0] == "up" and len(argv) > 3):
        print("usage: python -m tests.support.swarm up DIR [MANAGERS] | down DIR", file=sys.stderr)
        return 2
    root = Path(argv[1]).resolve()
    if argv[0] == "up":
        swarm = PrivateSwarm(root, managers=int(argv[2]) if len(argv) > 2 else 1)
        swarm.start()
        for node in swarm.nodes:
            print(node.hostname, node.url, node.address, node.netns or "")
        return 0
    swarm = PrivateSwarm.attach(root)
    # Not our child processes any more: stop the dockerds by their pidfiles.
    for node in swarm.nodes:
        with contextlib.suppress(Exception):
            node.client.swarm.leave(force=True)
        pid_file = node.root / "dockerd.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text())
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 30
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        node.wait_for_containerd()
    swarm.stop()
    left = swarm.leftovers()
    for line in left:
        print("left:", line)
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
