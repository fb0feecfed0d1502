"""dnsdock's service JSON <-> ``Record`` (pure functions, for the HTTP API).

dnsdock's API speaks of services: ``{"Name": "foo", "Image": "bar",
"IPs": ["192.168.0.1"], "TTL": 30, "Aliases": ["foo.example"]}``. As Go's
JSON decoder did, field names are matched case-insensitively (dnsdock's own
README writes ``{"name": ..., "ips": ...}``), the older single ``"Ip"`` is
accepted, and fields dnscock does not know are ignored. A ``TTL`` of -1 is
dnsdock's "the default". Every field is checked before anything is
applied; the first bad one raises ``ServiceError`` naming it.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from typing import Any

from dnscock.dnsname import is_valid_name, split_name
from dnscock.errors import DnscockError
from dnscock.records import Record, full_name

MAX_TTL = 2**31 - 1
# Ids a manual service may have: what fits a URL path segment without escaping.
_SERVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_HEX = re.compile(r"^[0-9a-f]+$")
MIN_PREFIX = 4  # container ids may be shortened to a unique prefix of at least this many hex digits


class ServiceError(DnscockError):
    """A service document, or one of its fields, that cannot be used."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def service_json(record: Record, default_ttl: int, zone: str) -> dict[str, Any]:
    """The dnsdock view of a record, with dnscock's extra facts after dnsdock's five fields."""
    document = {
        "Name": record.name or (record.labels[0] if record.labels else ""),
        "Image": record.image_name or ".".join(record.labels[1:]),
        "IPs": list(record.ipv4 + record.ipv6),
        "TTL": default_ttl if record.ttl is None else record.ttl,
        "Aliases": list(record.aliases),
        "Manual": record.manual,
        "Id": record.id,
        "Container": record.container,
        "ImageRef": record.image,
        "Names": [full_name(labels, zone) for labels in record.names] or [record.canonical_name(zone)],
        "Networks": list(record.networks),
        "Health": record.health,
        "Stopped": record.stopped,
        "Kind": "manual" if record.manual else record.kind,
        "Source": record.source,
    }
    if record.kind == "proxy":  # which proxy serves the name, and which app's label or variable asked for it
        document["Proxy"] = {"Kinds": [value for key, value in record.metadata if key == "proxy"],
                             "From": [value for key, value in record.metadata if key == "from"]}
    return document


def _lower_keys(document: Any) -> dict[str, Any]:
    if not isinstance(document, Mapping):
        raise ServiceError("the body must be a JSON object")
    return {str(key).lower(): value for key, value in document.items()}


def _name_part(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise ServiceError(f"{field} must be a string", field)
    text = value.strip().rstrip(".").lower()
    if text and not is_valid_name(text):
        raise ServiceError(f"{field} {value!r} is not a valid DNS name", field)
    return text


def _ips(document: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    if "ips" in document:
        field, values = "IPs", document["ips"]
        if values is None:
            values = []
        if not isinstance(values, list):
            raise ServiceError("IPs must be a list of IP addresses", field)
    elif "ip" in document:  # the first dnsdock had one address
        field, values = "Ip", [document["ip"]] if document["ip"] not in (None, "") else []
    else:
        return None
    ipv4: dict[str, None] = {}
    ipv6: dict[str, None] = {}
    for value in values:
        if not isinstance(value, str):
            raise ServiceError(f"{field} must hold IP addresses as strings, not {value!r}", field)
        try:
            address = ipaddress.ip_address(value.strip())
        except ValueError:
            raise ServiceError(f"{field}: {value!r} is not an IP address", field) from None
        (ipv4 if address.version == 4 else ipv6)[str(address)] = None
    return tuple(ipv4), tuple(ipv6)


def _ttl(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise ServiceError(f"TTL must be a whole number of seconds, not {value!r}", "TTL")
    value = int(value)
    if value == -1:
        return None  # dnsdock's "use the default"
    if not 0 <= value <= MAX_TTL:
        raise ServiceError(f"TTL must be from 0 to {MAX_TTL} (or -1 for the default), not {value}", "TTL")
    return value


def _aliases(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ServiceError("Aliases must be a list of names", "Aliases")
    aliases: dict[str, None] = {}
    for alias in value:
        if not isinstance(alias, str) or not is_valid_name(alias):
            raise ServiceError(f"Aliases: {alias!r} is not a valid DNS name", "Aliases")
        aliases[alias.strip().rstrip(".").lower()] = None
    return tuple(aliases)


def parse_changes(document: Any, current: Record | None = None) -> dict[str, Any]:
    """The ``Record`` fields a service document sets (only those it names); raises ServiceError.

    ``current`` is the record a PATCH changes: a new Name keeps its Image and
    the other way round.
    """
    fields = _lower_keys(document)
    changes: dict[str, Any] = {}
    if "name" in fields or "image" in fields:
        name = _name_part(fields["name"], "Name") if "name" in fields else (current.name if current else "")
        image = _name_part(fields["image"], "Image") if "image" in fields else (current.image_name if current else "")
        labels = split_name(name) + split_name(image)
        if not labels:
            raise ServiceError("Name and Image cannot both be empty", "Name")
        if len(".".join(labels)) > 200:
            raise ServiceError("Name and Image together are too long for a DNS name", "Name")
        changes.update(name=name, image_name=image, labels=labels)
    addresses = _ips(fields)
    if addresses is not None:
        changes.update(ipv4=addresses[0], ipv6=addresses[1])
    if "ttl" in fields:
        changes["ttl"] = _ttl(fields["ttl"])
    if "aliases" in fields:
        changes["aliases"] = _aliases(fields["aliases"])
    return changes


def manual_record(service_id: str, document: Any) -> Record:
    """A new manual service from a PUT document; raises ServiceError."""
    if not _SERVICE_ID.match(service_id):
        raise ServiceError(f"{service_id!r} is not a usable id (letters, digits, '.', '_', '-'; at most 128)", "id")
    changes = parse_changes(document)
    if "labels" not in changes:
        raise ServiceError("a service needs a Name or an Image", "Name")
    return Record(id=service_id, container=service_id, manual=True, **changes)


def parse_default_ttl(body: bytes) -> int:
    """``PUT /set/ttl``'s body: a bare number, as dnsdock took it (or ``{"TTL": n}``)."""
    try:
        value = json.loads(body.decode("utf-8").strip() or "null")
    except (UnicodeDecodeError, ValueError):
        raise ServiceError("the body must be a number of seconds", "TTL") from None
    if isinstance(value, Mapping):
        value = _lower_keys(value).get("ttl")
    ttl = _ttl(value)
    if ttl is None:
        raise ServiceError("the default TTL must be from 0 seconds up", "TTL")
    return ttl


def looks_like_prefix(text: str) -> bool:
    """Could ``text`` be a shortened container id (hex, at least MIN_PREFIX digits)?"""
    return len(text) >= MIN_PREFIX and _HEX.match(text) is not None
