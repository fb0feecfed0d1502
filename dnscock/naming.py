"""Container inspect data -> the names dnscock serves it under (pure functions).

A container is served as ``<container-name>.<image-name>.<environment>.<domain>``:

* container-name: its name without the leading ``/``;
* image-name: the last ``/`` part of the image reference it was created
  with, without ``:tag`` or ``@digest``; none when created from an image ID.

Per-container env vars override them, as in the Go dnsdock and dnscock:
``DNSDOCK_NAME``, ``DNSDOCK_IMAGE``, ``DNSDOCK_TTL``, ``DNSDOCK_ALIAS``
(comma-separated full names), ``DNSDOCK_IGNORE``, and registrator's
``SERVICE_NAME`` (image), ``SERVICE_TAGS`` (the first tag is the name),
``SERVICE_REGION`` (appended to the image) and ``SERVICE_IGNORE``.
A ``DNSDOCK_*`` variable wins over its ``SERVICE_*`` twin.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

from dnscock.dnsname import is_valid_name, split_name
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


def container_addresses(inspect: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(IPv4, IPv6) addresses on every network the container is attached to.

    A container only on a user-defined network has an empty top-level
    ``IPAddress``; its addresses are under ``NetworkSettings.Networks``.
    """
    settings = inspect.get("NetworkSettings") or {}
    candidates = [settings.get("IPAddress"), settings.get("GlobalIPv6Address")]
    networks = settings.get("Networks") or {}
    for network in sorted(networks):
        endpoint = networks[network] or {}
        candidates += [endpoint.get("IPAddress"), endpoint.get("GlobalIPv6Address")]
    ipv4: dict[str, None] = {}
    ipv6: dict[str, None] = {}
    for text in candidates:
        if not text:
            continue
        try:
            address = ipaddress.ip_address(text)
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


def _is_set(env: Mapping[str, str], key: str) -> bool:
    return key in env and env[key].strip().lower() not in _FALSE


def _aliases(value: str, container: str) -> tuple[str, ...]:
    aliases: dict[str, None] = {}
    for alias in (part.strip().rstrip(".").lower() for part in value.split(",")):
        if not alias:
            continue
        if is_valid_name(alias):
            aliases[alias] = None
        else:
            log.warning("container %s: skipping invalid alias %r in DNSDOCK_ALIAS", container, alias)
    return tuple(aliases)


def _ttl(value: str, container: str) -> int | None:
    value = value.strip()
    if value.isdigit() and int(value) <= 2**31 - 1:
        return int(value)
    log.warning("container %s: ignoring DNSDOCK_TTL=%r, not a whole number of seconds", container, value)
    return None


def record_from_inspect(inspect: Mapping[str, Any]) -> Record | None:
    """The record for a container, or None when its env vars ask to be ignored."""
    config = inspect.get("Config") or {}
    env = parse_env(config.get("Env"))
    # The README spells it DNSDOCK_alias once: DNSDOCK_ keys are read case-insensitively.
    dnsdock = {key.upper(): value for key, value in env.items() if key.upper().startswith("DNSDOCK_")}
    if _is_set(dnsdock, "DNSDOCK_IGNORE") or _is_set(env, "SERVICE_IGNORE"):
        return None

    container = container_name(inspect)
    name = container
    if "SERVICE_TAGS" in env:
        name = env["SERVICE_TAGS"].split(",")[0].strip()
    if "DNSDOCK_NAME" in dnsdock:
        name = dnsdock["DNSDOCK_NAME"].strip()

    image = image_name(str(config.get("Image") or ""), str(inspect.get("Image") or "")) or ""
    if "SERVICE_NAME" in env:
        image = env["SERVICE_NAME"].strip()
    if "DNSDOCK_IMAGE" in dnsdock:
        image = dnsdock["DNSDOCK_IMAGE"].strip()
    region = env.get("SERVICE_REGION", "").strip()
    if region:
        image = f"{image}.{region}" if image else region

    ttl = _ttl(dnsdock["DNSDOCK_TTL"], container) if "DNSDOCK_TTL" in dnsdock else None
    aliases = _aliases(dnsdock.get("DNSDOCK_ALIAS", ""), container)
    ipv4, ipv6 = container_addresses(inspect)
    labels = config.get("Labels") or {}
    name_labels = tuple(label for label in split_name(name) + split_name(image) if label)
    return Record(
        id=str(inspect.get("Id") or ""),
        container=container,
        labels=name_labels,
        aliases=aliases,
        ipv4=ipv4,
        ipv6=ipv6,
        ttl=ttl,
        image=str(config.get("Image") or ""),
        ports=exposed_ports(inspect),
        metadata=tuple(
            (key, str(labels[label])) for key, label in COMPOSE_LABELS if labels.get(label)
        ),
    )


def matches(query: tuple[str, ...], labels: tuple[str, ...]) -> bool:
    """The original program's rule, label by label from the right, for reference and tests.

    ``*`` in the query matches any one label; a query shorter than the name
    matches (parts left out on the left); extra query labels on the left match.
    """
    for asked, have in zip(reversed(query), reversed(labels)):
        if asked != have and asked != "*":
            return False
    return True
