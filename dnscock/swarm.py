"""Docker Swarm services -> records (pure functions): what a manager, or a worker's networks, say.

For a service S of a stack K (its ``com.docker.stack.namespace`` label; no
K for a plain ``docker service create``), each running task is a record named

* ``<slot>.S.K`` for a replicated service, ``<node>.S.K`` for a global one
  (the node's host name, its first label), and ``tasks.S.K``, Docker's own
  spelling; so ``S.K`` answers every task, parts left out on the left as
  for containers;

and the service's virtual IPs are ``vip.S.K``, matched in full only (so
that ``S.K`` answers the tasks alone). A task's addresses are those on the
service's networks, never the ingress network; ``-network`` keeps those
named. The service's ``com.dnsdock.*`` labels (``Spec.Labels``, which never
reach its task containers) and the ``DNSDOCK_*`` env of its task template
set the name (instead of S), aliases, TTL, and ignore, as for containers.

A manager knows every service, task and node (``GET /services``,
``/tasks``, ``/nodes``, ``/networks``). A worker's API refuses those; it
knows the services and tasks on the swarm networks present on it
(``GET /networks/<id>?verbose=true``), by name and address only: there S is
the service's full name (``K_S`` for a stack's), with no labels.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dnscock.dnsname import split_name
from dnscock.naming import (
    DEFAULT_OPTIONS,
    NamingOptions,
    aliases_from,
    is_set,
    override_layers,
    parse_env,
    place_of,
    split_addresses,
    ttl_from,
)
from dnscock.proxy_names import facts_from
from dnscock.records import ProxyFacts, Record

Json = Mapping[str, Any]
STACK_LABEL = "com.docker.stack.namespace"
TASKS_LABEL = "tasks"  # Docker's own name for "every task of the service"
VIP_LABEL = "vip"


@dataclass(frozen=True)
class SwarmState:
    """What a manager says: services, running tasks, node host names, networks (id -> name, ingress)."""

    services: Sequence[Json] = ()
    tasks: Sequence[Json] = ()
    nodes: Mapping[str, str] = field(default_factory=dict)  # node id -> host name
    networks: Mapping[str, tuple[str, bool]] = field(default_factory=dict)  # network id -> (name, is ingress)


def node_names(nodes: Iterable[Json]) -> dict[str, str]:
    return {str(node.get("ID") or ""): str(((node.get("Description") or {}).get("Hostname")) or "")
            for node in nodes}


def network_names(networks: Iterable[Json]) -> dict[str, tuple[str, bool]]:
    return {str(network.get("Id") or network.get("ID") or ""):
            (str(network.get("Name") or ""), bool(network.get("Ingress")) or network.get("Name") == "ingress")
            for network in networks}


@dataclass(frozen=True)
class _Service:
    """A service's names and the settings its labels and env give its tasks."""

    id: str
    full_name: str  # Spec.Name: K_S for a stack's
    labels: tuple[str, ...]  # S.K, or S without a stack; the name override applied
    name: str
    stack: str
    aliases: tuple[str, ...]
    ttl: int | None
    image: str
    global_mode: bool
    vip_mode: bool
    ports: tuple[tuple[int, str], ...]
    proxy: ProxyFacts | None = None  # what its labels say about reverse proxies (names, or being one)


def _service(service: Json) -> _Service | None:
    """The service's naming facts, or None when its labels or env ask to be ignored."""
    spec = service.get("Spec") or {}
    labels = spec.get("Labels") or {}
    container_spec = (spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}
    env = parse_env(container_spec.get("Env"))
    layers = override_layers(env, labels)
    if any(is_set(layer, "ignore") for layer in layers):
        return None
    full_name = str(spec.get("Name") or "")
    stack = str(labels.get(STACK_LABEL) or "")
    name = full_name[len(stack) + 1:] if stack and full_name.startswith(stack + "_") else full_name
    ttl_text, alias_text = None, ""
    for layer in layers:  # a stronger layer overrides a weaker one, setting by setting
        if "tags" in layer:
            name = layer["tags"].split(",")[0].strip()
        name = layer.get("name", name).strip()
        ttl_text = layer.get("ttl", ttl_text)
        alias_text = layer.get("alias", alias_text)
    endpoint = service.get("Endpoint") or {}
    endpoint_spec = spec.get("EndpointSpec") or endpoint.get("Spec") or {}
    ports = {(int(port["TargetPort"]), str(port.get("Protocol") or "tcp"))
             for port in (endpoint.get("Ports") or endpoint_spec.get("Ports") or ())
             if str(port.get("TargetPort") or "").isdigit() and str(port.get("Protocol") or "tcp") in ("tcp", "udp")}
    return _Service(
        id=str(service.get("ID") or ""),
        full_name=full_name,
        labels=tuple(label for label in split_name(name) + split_name(stack) if label),
        name=name,
        stack=stack,
        aliases=aliases_from(alias_text, full_name),
        ttl=None if ttl_text is None else ttl_from(ttl_text, full_name),
        image=str(container_spec.get("Image") or "").split("@", 1)[0],
        global_mode="Global" in (spec.get("Mode") or {}),
        vip_mode=str(endpoint_spec.get("Mode") or "vip") != "dnsrr",
        ports=tuple(sorted(ports)),
        # Traefik and caddy-docker-proxy read a swarm service's own labels; a proxy service's tasks are the proxy.
        proxy=facts_from(str(container_spec.get("Image") or ""), labels, env,
                         [*(container_spec.get("Command") or ()), *(container_spec.get("Args") or ())]),
    )


def manager_records(state: SwarmState, options: NamingOptions = DEFAULT_OPTIONS, source: str = "") -> list[Record]:
    """Every running task of every service, and every service's virtual IPs."""
    services = {service.id: service for service in (_service(raw) for raw in state.services) if service is not None}
    records: list[Record] = []
    for task in state.tasks:
        service = services.get(str(task.get("ServiceID") or ""))
        if service is None or ((task.get("Status") or {}).get("State")) != "running":
            continue
        node = state.nodes.get(str(task.get("NodeID") or ""), "")
        place = (split_name(node)[:1] or (str(task.get("NodeID") or "")[:12],))[0] if service.global_mode \
            else str(task.get("Slot") or 0)
        networks: list[str] = []
        addresses: list[str] = []
        places = []
        for attachment in task.get("NetworksAttachments") or ():
            network = attachment.get("Network") or {}
            network_spec = network.get("Spec") or {}
            name = str(network_spec.get("Name") or "")
            if network_spec.get("Ingress") or name == "ingress":
                continue
            if options.networks and name not in options.networks:
                continue
            networks.append(name)
            addresses += attachment.get("Addresses") or ()
            places += [place_of(str(cidr), name) for cidr in attachment.get("Addresses") or ()]
        records.append(_task_record(service, str(task.get("ID") or ""), place, node, split_addresses(addresses),
                                    tuple(networks), source, tuple(place for place in places if place)))
    for raw in state.services:
        service = services.get(str(raw.get("ID") or ""))
        if service is None or not service.vip_mode:
            continue
        virtual = []
        places = []
        for vip in (raw.get("Endpoint") or {}).get("VirtualIPs") or ():
            name, ingress = state.networks.get(str(vip.get("NetworkID") or ""), ("", False))
            if ingress or (options.networks and name not in options.networks):
                continue
            virtual.append(str(vip.get("Addr") or ""))
            places.append(place_of(str(vip.get("Addr") or ""), name))
        ipv4, ipv6 = split_addresses(virtual)
        if ipv4 or ipv6:
            records.append(_vip_record(service, ipv4, ipv6, source, tuple(place for place in places if place)))
    return records


def worker_records(networks: Iterable[Json], options: NamingOptions = DEFAULT_OPTIONS,
                   source: str = "") -> list[Record]:
    """The services and tasks a worker sees on its swarm networks (``GET /networks/<id>?verbose=true``)."""
    tasks: dict[str, dict[str, Any]] = {}  # task name -> its service, place and addresses
    vips: dict[str, list[str]] = {}
    for network in networks:
        name = str(network.get("Name") or "")
        if network.get("Ingress") or name == "ingress" or (options.networks and name not in options.networks):
            continue
        subnets = [str(config.get("Subnet") or "") for config in (network.get("IPAM") or {}).get("Config") or ()]
        for service_name, service in (network.get("Services") or {}).items():
            if not service_name:
                continue
            if service.get("VIP"):
                vips.setdefault(service_name, []).append(str(service["VIP"]))
            for task in service.get("Tasks") or ():
                task_name = str(task.get("Name") or "")
                parts = task_name.split(".")
                place = parts[1] if len(parts) >= 3 and parts[0] == service_name else ""
                entry = tasks.setdefault(task_name, {"service": service_name, "place": place, "addresses": [],
                                                     "networks": [], "places": []})
                address = str(task.get("EndpointIP") or "")
                entry["addresses"].append(address)
                entry["networks"].append(name)
                for subnet in subnets:  # the network's subnet that holds the address
                    place = place_of(f"{address}/{subnet.partition('/')[2]}", name)
                    if place is not None and place[1] == subnet:
                        entry["places"].append(place)
    records = []
    for task_name, entry in sorted(tasks.items()):
        service = _named_service(entry["service"])
        task_id = task_name.rsplit(".", 1)[-1]
        records.append(_task_record(service, task_id, entry["place"] or task_id[:12], "",
                                    split_addresses(entry["addresses"]), tuple(entry["networks"]), source,
                                    tuple(entry["places"])))
    for service_name, addresses in sorted(vips.items()):
        ipv4, ipv6 = split_addresses(addresses)  # a dnsrr service's VIP is "<nil>"
        if ipv4 or ipv6:
            records.append(_vip_record(_named_service(service_name), ipv4, ipv6, source))
    return records


def _named_service(full_name: str) -> _Service:
    return _Service(id=f"service:{full_name}", full_name=full_name, labels=split_name(full_name), name=full_name,
                    stack="", aliases=(), ttl=None, image="", global_mode=False, vip_mode=True, ports=())


def _task_record(service: _Service, task_id: str, place: str, node: str,
                 addresses: tuple[tuple[str, ...], tuple[str, ...]], networks: tuple[str, ...],
                 source: str, places: tuple[tuple[str, str, str], ...] = ()) -> Record:
    metadata = [("service", service.name)]
    if service.stack:
        metadata.append(("stack", service.stack))
    metadata.append(("task", task_id))
    if node:
        metadata.append(("node", node))
    return Record(
        id=task_id,
        container=f"{service.full_name}.{place}.{task_id}",
        labels=(place.lower(),) + service.labels,
        extra_names=((TASKS_LABEL,) + service.labels,),
        aliases=service.aliases,
        ipv4=addresses[0],
        ipv6=addresses[1],
        places=places,
        ttl=service.ttl,
        image=service.image,
        ports=service.ports,
        metadata=tuple(metadata),
        name=place.lower(),
        image_name=sys.intern(".".join(service.labels)),
        networks=networks,
        source=source,
        kind="task",
        # The proxy a task is, not the names its service asks for (its VIP record carries those, once).
        proxy=service.proxy._replace(names=(), problems=()) if service.proxy and service.proxy.serves else None,
    )


def _vip_record(service: _Service, ipv4: tuple[str, ...], ipv6: tuple[str, ...], source: str,
                places: tuple[tuple[str, str, str], ...] = ()) -> Record:
    return Record(
        id=f"vip:{service.id}",
        container=service.full_name,
        labels=(VIP_LABEL,) + service.labels,
        ipv4=ipv4,
        ipv6=ipv6,
        places=places,
        ttl=service.ttl,
        image=service.image,
        metadata=(("service", service.name),) + ((("stack", service.stack),) if service.stack else ()),
        name=VIP_LABEL,
        image_name=".".join(service.labels),
        source=source,
        kind="vip",
        exact=True,
        proxy=service.proxy._replace(serves="") if service.proxy and service.proxy.names else None,
    )
