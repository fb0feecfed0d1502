"""The made-up swarm: what a manager of a two-node swarm lists (``--swarm-tasks N --swarm-services M``).

Its services, tasks, nodes and networks, in the shapes of a real 20.10
manager's (tests/support/swarm_samples/), unique overlay addresses, nothing
ever changing; ``FakeSwarm.bodies()`` builds the listings once, as bytes.
"""

from __future__ import annotations

from typing import NamedTuple

from tests.support.fake_engine.fixtures import (
    ENGINE_VERSION,
    SWARM_TIME,
    Json,
    hex_id,
    json_bytes,
    local_networks,
)

SWARM_NETWORK = "bench"  # the overlay every service is on
SWARM_SUBNET = (10, 200)  # 10.200.0.0/16: the overlay (gateway .0.1); services' VIPs first, then the tasks
INGRESS_SUBNET = (10, 255)  # 10.255.0.0/16: the ingress network (VIPs and tasks of publishing services)
SWARM_IMAGE = "local/busybox:latest"
PUBLISHING_EVERY = 10  # every 10th service publishes a port (through the ingress network)
NOT_A_MANAGER = ("This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect "
                 "this node to swarm and try again.")


def swarm_id(seed: str) -> str:
    """A swarm object ID (25 lower-case letters and digits, as swarmkit makes them) that depends only on ``seed``."""
    number = int(hex_id("swarm " + seed), 16)
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
                "services": json_bytes([self.service_document(s) for s in range(self.service_count)]),
                "tasks": json_bytes([self.task_document(self.task(i)) for i in range(self.task_count)]),
                "nodes": json_bytes([self.node_document(n) for n in range(2)]),
                "networks-swarm": json_bytes(swarm_networks),
                "networks": json_bytes([*swarm_networks, *local_networks()]),
            }
        return self._bodies

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
                "ContainerStatus": {"ContainerID": hex_id(f"task container {task.index}"), "PID": 20_000 + task.index,
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
