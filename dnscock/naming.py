"""Container inspect data -> the names dnscock serves it under (pure functions).

A container is served as ``<container-name>.<image-name>.<environment>.<domain>``:

* container-name: its name without the leading ``/``;
* image-name: the last ``/`` part of the image reference it was created
  with, without ``:tag`` or ``@digest``; none when created from an image ID.

Per-container env vars override them, as in the Go dnsdock and dnscock:
``DNSDOCK_NAME``, ``DNSDOCK_IMAGE``, ``DNSDOCK_TTL``, ``DNSDOCK_ALIAS``
(comma-separated full names), ``DNSDOCK_IGNORE``, and registrator's
``SERVICE_NAME`` (image), ``SERVICE_TAGS`` (the first tag is the name),
``SERVICE_REGION`` (appended to the image) and ``SERVICE_IGNORE``; so do
the maintained dnsdock's labels ``com.dnsdock.name``, ``.image``, ``.ttl``,
``.alias``, ``.ignore``, ``.tags``, ``.region``, ``.ip_addr``, ``.prefix``.
Env vars win over labels, and a ``DNSDOCK_*`` variable over its
``SERVICE_*`` twin.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dnscock.dnsname import is_valid_name, split_name
from dnscock.options import default
from dnscock.proxy_names import facts_from
from dnscock.records import Record

log = logging.getLogger("dnscock.naming")

_HEX_ID = re.compile(r"^(sha256:)?[0-9a-f]{12,64}$")
_FALSE = ("false", "0", "no", "off")


def container_name(inspect: Mapping[str, Any]) -> str:
    return str(inspect.get("Name") or "").lstrip("/")


def image_name(reference: str, image_id: str = "") -> str | None:
    """``registry.example.com/team/bar.baz:v1`` -> ``bar.baz``; an image ID -> None."""
    reference = reference.strip()
    if not reference or is_image_id(reference, image_id):
        return None
    reference = reference.split("@", 1)[0]  # a digest
    last = reference.rsplit("/", 1)[-1]  # a registry's ":port" is left of the last "/"
    return last.split(":", 1)[0] or None


def is_image_id(reference: str, image_id: str = "") -> bool:
    """Was the container created from an image ID (full or short) rather than a name?"""
    reference = reference.lower()
    if not _HEX_ID.match(reference):
        return False
    if not image_id:
        return True
    return image_id.lower().removeprefix("sha256:").startswith(reference.removeprefix("sha256:"))


def parse_env(env: Iterable[str] | None) -> dict[str, str]:
    """Docker's ``["KEY=value", ...]`` -> a dict; items without ``=`` are unset."""
    result: dict[str, str] = {}
    for item in env or ():
        key, sep, value = item.partition("=")
        if sep:
            result[key] = value
    return result


def container_addresses(
    inspect: Mapping[str, Any], only: frozenset[str] = frozenset(),
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(IPv4, IPv6) addresses on every network the container is attached to (or those in ``only``).

    A container only on a user-defined network has an empty top-level
    ``IPAddress``; its addresses are under ``NetworkSettings.Networks``.
    """
    settings = inspect.get("NetworkSettings") or {}
    candidates = [] if only else [settings.get("IPAddress"), settings.get("GlobalIPv6Address")]
    networks = settings.get("Networks") or {}
    for network in sorted(networks):
        if only and network not in only:
            continue
        endpoint = networks[network] or {}
        candidates += [endpoint.get("IPAddress"), endpoint.get("GlobalIPv6Address")]
    return split_addresses(text for text in candidates if text)


def address_places(inspect: Mapping[str, Any]) -> tuple[tuple[str, str, str], ...]:
    """(address, its subnet, its network) for each address on each network the container is on."""
    networks = (inspect.get("NetworkSettings") or {}).get("Networks") or {}
    found: dict[tuple[str, str, str], None] = {}
    for network in sorted(networks):
        endpoint = networks[network] or {}
        for address_key, length_key in (("IPAddress", "IPPrefixLen"), ("GlobalIPv6Address", "GlobalIPv6PrefixLen")):
            place = place_of(f"{endpoint.get(address_key)}/{endpoint.get(length_key)}", network)
            if place is not None:
                found[place] = None
    return tuple(found)


def gateways_of(inspect: Mapping[str, Any]) -> tuple[str, ...]:
    """The gateway addresses of the container's networks: addresses of the host its engine runs on.

    Interned, tuple and strings: containers share a few networks.
    """
    networks = (inspect.get("NetworkSettings") or {}).get("Networks") or {}
    endpoints = [networks[network] for network in sorted(networks) if networks[network]]
    found = split_addresses(str(endpoint[key]) for endpoint in endpoints for key in ("Gateway", "IPv6Gateway")
                            if endpoint.get(key))
    gateways = tuple(sys.intern(address) for address in found[0] + found[1])
    return _GATEWAY_SETS.setdefault(gateways, gateways)


_GATEWAY_SETS: dict[tuple[str, ...], tuple[str, ...]] = {}


def place_of(cidr: str, network: str) -> tuple[str, str, str] | None:
    """``"10.0.1.3/24"`` on ``front`` -> ("10.0.1.3", "10.0.1.0/24", "front"); None when not an address/length."""
    try:
        interface = ipaddress.ip_interface(cidr)
    except ValueError:
        return None
    if "/" not in cidr:
        return None
    return str(interface.ip), str(interface.network), network


def published_addresses(inspect: Mapping[str, Any], host_address: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The host addresses a container's published ports are bound to: each binding's host IP, the host's own
    address (``host_address``) for one bound to every address (``-p 8080:80``); none when nothing is published."""
    bindings = (inspect.get("NetworkSettings") or {}).get("Ports") or {}
    found = []
    for hosts in bindings.values():
        for host in hosts or ():
            if not str((host or {}).get("HostPort") or "").isdigit():
                continue
            address = str((host or {}).get("HostIp") or "")
            found.append(host_address if address in ("", "0.0.0.0", "::") else address)
    return split_addresses(address for address in found if address)


def published_ports(inspect: Mapping[str, Any]) -> tuple[tuple[int, str, int], ...]:
    """(container port, protocol, host port) for each port published on the host (``-p``)."""
    bindings = (inspect.get("NetworkSettings") or {}).get("Ports") or {}
    published = set()
    for key, hosts in bindings.items():
        port, _, protocol = str(key).partition("/")
        for host in hosts or ():
            host_port = str((host or {}).get("HostPort") or "")
            if port.isdigit() and host_port.isdigit() and 0 < int(host_port) < 65536:
                published.add((int(port), protocol or "tcp", int(host_port)))
    return tuple(sorted(published))


def split_addresses(addresses: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Addresses, plain or CIDR (``10.0.1.3/24``) -> (IPv4, IPv6), in order, canonical, without duplicates."""
    ipv4: dict[str, None] = {}
    ipv6: dict[str, None] = {}
    for text in addresses:
        try:
            address = ipaddress.ip_address(str(text).split("/", 1)[0])
        except ValueError:
            continue
        (ipv4 if address.version == 4 else ipv6)[str(address)] = None
    return tuple(ipv4), tuple(ipv6)


def exposed_ports(inspect: Mapping[str, Any]) -> tuple[tuple[int, str], ...]:
    """(port, protocol) pairs the container exposes, from its image, ``--expose`` and ``-p``."""
    config = inspect.get("Config") or {}
    settings = inspect.get("NetworkSettings") or {}
    keys = list(config.get("ExposedPorts") or {}) + list(settings.get("Ports") or {})
    ports = set()
    for key in keys:
        port, _, protocol = str(key).partition("/")
        if port.isdigit() and 0 < int(port) < 65536 and (protocol or "tcp") in ("tcp", "udp"):
            ports.add((int(port), protocol or "tcp"))
    return tuple(sorted(ports))


COMPOSE_LABELS = (("compose_project", "com.docker.compose.project"), ("compose_service", "com.docker.compose.service"))


def is_set(settings: Mapping[str, str], key: str) -> bool:
    return key in settings and settings[key].strip().lower() not in _FALSE


def aliases_from(value: str, container: str) -> tuple[str, ...]:
    aliases: dict[str, None] = {}
    for alias in (part.strip().rstrip(".").lower() for part in value.split(",")):
        if not alias:
            continue
        if is_valid_name(alias.removeprefix("*.")):  # "*.app.test": every name below app.test (RFC 4592)
            aliases[alias] = None
        else:
            log.warning("container %s: skipping invalid alias %r", container, alias)
    return tuple(aliases)


def ttl_from(value: str, container: str) -> int | None:
    value = value.strip()
    if value.isdigit() and int(value) <= 2**31 - 1:
        return int(value)
    log.warning("container %s: ignoring DNSDOCK_TTL (or com.dnsdock.ttl) %r, not a whole number of seconds",
                container, value)
    return None


@dataclass(frozen=True)
class NamingOptions:
    """The options that change what a container is served as."""

    networks: frozenset[str] = frozenset()  # only addresses on these networks; empty: all
    host_ip: str = default("host-ip")  # what containers in network mode "host" answer with; "": skip them
    compose_names: bool = default("compose-names")  # also <service>.<project>.<zone> for compose containers
    container_names: bool = default("container-names")  # also <container-name>.<zone>, whatever the image
    network_aliases: bool = default("network-aliases")  # a container's aliases on user-defined networks as aliases
    hostnames: bool = default("hostnames")  # a container's explicit hostname as an alias
    engine: str = ""  # the engine's URL: the records' source
    engine_address: str = ""  # where the engine's host is reached: containers that publish ports answer it
    # Published-address mode (rootless engines, Docker Desktop): containers answer the host addresses their ports
    # are published on, and nothing when they publish none; host_address stands for "every address".
    published: bool = False
    host_address: str = ""
    several_engines: bool = False  # TXT names the engine
    proxy_names: bool = default("proxy-names")  # read what a container says about reverse proxies (proxy_names)


DEFAULT_OPTIONS = NamingOptions()
POD_LABEL = "pod"  # a Podman pod's name answers as <pod>.pod.<domain>
DNSDOCK_LABEL = "com.dnsdock."


def override_layers(env: Mapping[str, str], labels: Mapping[str, str]) -> list[dict[str, str]]:
    """Per-container settings, weakest first: dnsdock labels, registrator env vars, DNSDOCK_* env vars.

    Keys are the label suffixes: name, image, ttl, alias, ignore, tags, region, ip_addr, prefix.
    """
    from_labels = {key[len(DNSDOCK_LABEL):]: str(value) for key, value in labels.items()
                   if key.startswith(DNSDOCK_LABEL)}
    registrator = {setting: env[variable] for variable, setting in (
        ("SERVICE_NAME", "image"), ("SERVICE_TAGS", "tags"), ("SERVICE_REGION", "region"), ("SERVICE_IGNORE", "ignore"),
    ) if variable in env}
    # The README spells it DNSDOCK_alias once: DNSDOCK_ keys are read case-insensitively.
    dnsdock = {key[len("DNSDOCK_"):].lower(): value for key, value in env.items()
               if key.upper().startswith("DNSDOCK_")}
    return [from_labels, registrator, dnsdock]


def record_from_inspect(
    inspect: Mapping[str, Any],
    options: NamingOptions = DEFAULT_OPTIONS,
    network_source: Mapping[str, Any] | None = None,
    pod: str = "",
) -> Record | None:
    """The record for a container, or None when it asks to be ignored or has nothing to serve.

    ``network_source`` is the inspect data of the container whose network
    namespace it shares (a ``container:<id>`` network mode, a Podman pod's
    infra container); ``pod`` the Podman pod it is in
    (its name answers too: ``<pod>.pod.<domain>``).
    """
    config = inspect.get("Config") or {}
    labels = config.get("Labels") or {}
    env = parse_env(config.get("Env"))
    layers = override_layers(env, labels)
    if any(is_set(layer, "ignore") for layer in layers):
        return None

    container = container_name(inspect)
    name = container
    image = image_name(str(config.get("Image") or ""), str(inspect.get("Image") or "")) or ""
    region, ttl_text, alias_text = "", None, ""
    for layer in layers:  # a stronger layer overrides a weaker one, setting by setting
        if "tags" in layer:
            name = layer["tags"].split(",")[0].strip()
        if "name" in layer:
            name = layer["name"].strip()
        image = layer.get("image", image).strip()
        region = layer.get("region", region).strip()
        ttl_text = layer.get("ttl", ttl_text)
        alias_text = layer.get("alias", alias_text)
    if region:
        image = f"{image}.{region}" if image else region

    # A container sharing another's network namespace has that one's addresses and published ports.
    source = network_source if network_source is not None and network_mode(inspect) != "host" else inspect
    ipv4, ipv6 = _served_addresses(inspect, options, source, layers[0], container)
    published = published_ports(source) if options.engine_address or options.published else ()
    if options.published:
        # Its own address lives in a namespace no one else reaches: only what it publishes on the host is.
        ipv4, ipv6 = published_addresses(source, options.host_ip or options.host_address)
    elif published:
        # On another host its bridge address is out of reach: the engine's host, and the port published there.
        host = ipaddress.ip_address(options.engine_address)
        ipv4, ipv6 = ((str(host),), ()) if host.version == 4 else ((), (str(host),))
    aliases = aliases_from(alias_text, container) + _engine_aliases(inspect, options)
    served = {} if options.published else {address: address for address in ipv4 + ipv6}
    # The address strings are the ones in ipv4/ipv6, subnets and network names interned: with 10,000
    # containers on a few networks, places cost a tuple each and little more.
    places = tuple((served[address], sys.intern(subnet), sys.intern(network))
                   for address, subnet, network in address_places(source) if address in served)
    gateways = gateways_of(source) if places else ()
    metadata = tuple((key, str(labels[label])) for key, label in COMPOSE_LABELS if labels.get(label))
    if options.several_engines:
        metadata += (("engine", options.engine),)
    return Record(
        id=str(inspect.get("Id") or ""),
        container=container,
        # The image's labels interned: 10,000 containers share a few images.
        labels=tuple(label for label in split_name(name) if label) + tuple(
            sys.intern(label) for label in split_name(image) if label),
        aliases=tuple(dict.fromkeys(aliases)),
        ipv4=ipv4,
        ipv6=ipv6,
        ttl=None if ttl_text is None else ttl_from(ttl_text, container),
        image=str(config.get("Image") or ""),
        ports=exposed_ports(inspect),
        published=published,
        places=places,
        gateways=gateways,
        metadata=metadata,
        extra_names=(_compose_names(labels) if options.compose_names else ())
        + ((split_name(name),) if options.container_names and split_name(name) else ())
        + ((split_name(pod) + (POD_LABEL,),) if split_name(pod) else ()),
        # Interned: 10,000 containers share a few image and network names (their own names are their own).
        name=".".join(split_name(name)),
        image_name=sys.intern(".".join(split_name(image))),
        networks=tuple(sys.intern(str(network)) for network in sorted(
            (inspect.get("NetworkSettings") or {}).get("Networks") or {})),
        health=sys.intern(health(inspect)),
        source=options.engine,
        proxy=facts_from(str(config.get("Image") or ""), labels, env, command_of(inspect))
        if options.proxy_names else None,
    )


def command_of(inspect: Mapping[str, Any]) -> list[str]:
    """What the container runs: its entrypoint's path and arguments (and the image's Cmd, when inspect lacks them)."""
    config = inspect.get("Config") or {}
    words = [inspect.get("Path") or "", *(inspect.get("Args") or ())]
    if not any(words):
        words = [*(config.get("Entrypoint") or ()), *(config.get("Cmd") or ())]
    return [str(word) for word in words if word]


def network_mode(inspect: Mapping[str, Any]) -> str:
    return str((inspect.get("HostConfig") or {}).get("NetworkMode") or "")


def _served_addresses(
    inspect: Mapping[str, Any], options: NamingOptions, network_source: Mapping[str, Any],
    from_labels: Mapping[str, str], container: str,
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``network_source``: the inspect data of whoever's network namespace the container is in (itself, mostly)."""
    if network_mode(inspect) == "host":
        if not options.host_ip:
            return (), ()
        host = ipaddress.ip_address(options.host_ip)
        return ((str(host),), ()) if host.version == 4 else ((), (str(host),))
    ipv4, ipv6 = container_addresses(network_source, options.networks)
    fixed = from_labels.get("ip_addr", "").strip()
    if fixed:
        try:
            address = ipaddress.ip_address(fixed)
        except ValueError:
            log.warning("container %s: ignoring com.dnsdock.ip_addr=%r, not an IP address", container, fixed)
        else:
            ipv4, ipv6 = ((str(address),), ()) if address.version == 4 else ((), (str(address),))
    prefix = from_labels.get("prefix", "").strip()
    if prefix:
        ipv4 = tuple(address for address in ipv4 if address.startswith(prefix))
        ipv6 = tuple(address for address in ipv6 if address.startswith(prefix))
        if not ipv4 and not ipv6:
            log.warning("container %s: com.dnsdock.prefix %r matches none of its addresses", container, prefix)
    return ipv4, ipv6


def _engine_aliases(inspect: Mapping[str, Any], options: NamingOptions) -> tuple[str, ...]:
    """Network aliases and the explicit hostname, when the options ask for them."""
    names: list[str] = []
    if options.network_aliases:
        networks = (inspect.get("NetworkSettings") or {}).get("Networks") or {}
        for network in sorted(networks):
            if options.networks and network not in options.networks:
                continue
            names += [str(alias) for alias in (networks[network] or {}).get("Aliases") or ()]
    if options.hostnames:
        config = inspect.get("Config") or {}
        hostname = str(config.get("Hostname") or "")
        if hostname and not str(inspect.get("Id") or "").startswith(hostname):  # the default is the short id
            domain = str(config.get("Domainname") or "")
            names.append(f"{hostname}.{domain}" if domain else hostname)
    valid = (name.rstrip(".").lower() for name in names)
    return tuple(name for name in valid if is_valid_name(name))


def _compose_names(labels: Mapping[str, Any]) -> tuple[tuple[str, ...], ...]:
    project = str(labels.get("com.docker.compose.project") or "")
    service = str(labels.get("com.docker.compose.service") or "")
    if not project or not service:
        return ()
    name = split_name(service) + split_name(project)
    return (name,) if all(name) else ()


def health(inspect: Mapping[str, Any]) -> str:
    """The container's health status ("healthy", "unhealthy", "starting"), or "" without a healthcheck."""
    return str(((inspect.get("State") or {}).get("Health") or {}).get("Status") or "")
