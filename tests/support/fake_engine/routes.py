"""The endpoints: what the fake engine answers to a method and a target.

With or without a ``/v1.NN`` prefix (400 for a version outside
``MIN_API_VERSION``..``API_VERSION``): ``GET|HEAD /_ping``, ``GET /version``,
``GET /info``, ``GET /containers/json`` (filters id, name, status, label;
``limit``, ``size``), ``GET /containers/{id}/json`` (full id, name or unique
prefix), ``GET /events`` (an ``EventStream``: the server streams it), and a
swarm manager's ``/services``, ``/tasks``, ``/nodes``, ``/networks``.
"""

from __future__ import annotations

import functools
import re
from http import HTTPStatus
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlsplit

from tests.support.fake_engine.filters import LIST_FILTERS, BadRequest, bool_param, int_param, parse_filters
from tests.support.fake_engine.fixtures import (
    API_VERSION,
    MIN_API_VERSION,
    json_bytes,
    local_networks,
    version_document,
)
from tests.support.fake_engine.protocol import PING_HEADERS, EventStream, Response, json_response
from tests.support.fake_engine.swarm import NOT_A_MANAGER

if TYPE_CHECKING:
    from tests.support.fake_engine.engine import FakeEngine

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
    return json_bytes(version_document())


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
    body = engine.list_json(filters, int_param(query, "limit", -1), bool_param(query, "size"))
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
            return Response(HTTPStatus.OK, b"[]\n" if scope and "local" not in scope else json_bytes(local_networks()))
        if scope == ["local"]:
            return Response(HTTPStatus.OK, json_bytes(local_networks()))
        return engine.swarm_response("networks-swarm" if scope == ["swarm"] else "networks")
    if swarm is None:
        return json_response(HTTPStatus.SERVICE_UNAVAILABLE, {"message": NOT_A_MANAGER})
    if path == "/tasks":
        desired = filters.get("desired-state")
        if desired and "running" not in desired:
            return Response(HTTPStatus.OK, b"[]\n")
        return engine.swarm_response("tasks")
    return engine.swarm_response(path.lstrip("/"))


def _inspect(engine: FakeEngine, ref: str) -> Response:
    try:
        container = engine.find(ref)
    except KeyError:
        return json_response(HTTPStatus.NOT_FOUND, {"message": f"No such container: {ref}"})
    return Response(HTTPStatus.OK, container.inspect_json())
