"""The Engine API's query parameters: ``filters`` (list and event filter rules), booleans, integers.

A parameter the API would refuse raises ``BadRequest``, which the routes
answer with a 400 and the message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from tests.support.fake_engine.fixtures import FakeContainer, Json


class BadRequest(Exception):
    """A 400 answer; the message goes to the client."""


def bool_param(query: Mapping[str, list[str]], name: str) -> bool:
    # Docker's httputils.BoolValue.
    value = (query.get(name) or [""])[0].strip().lower()
    return value not in ("", "0", "no", "false", "none")


def int_param(query: Mapping[str, list[str]], name: str, default: int) -> int:
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
