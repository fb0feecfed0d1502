"""The HTTP API (``-http``): dnsdock's ``/services`` and ``/set/ttl``, ``/health``, ``/metrics``, and the page.

The page (``GET /``, ``page.py``) reads ``/state``, ``/explain`` and
``/queries``, which are endpoints of their own for scripts too.

A plain WSGI application served by gevent's WSGI server in the same
process as the DNS servers; it reads and writes the record store directly.

Writes (PUT, PATCH, DELETE) are guarded: with ``-http-token`` they need
``Authorization: Bearer <token>``; without one they are accepted only when
the HTTP server listens on a loopback address. Every error is JSON,
``{"error": "...", "field": "..."}``, and a write that fails changes nothing.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from gevent.pywsgi import LoggingLogAdapter, WSGIServer
from prometheus_client import CollectorRegistry

from dnscock import metrics
from dnscock.addresses import Address
from dnscock.answers import DefaultTtl
from dnscock.docker_watcher import DockerWatcher
from dnscock.explain import ExplainError
from dnscock.listeners import Listeners
from dnscock.page import PageParts, page_html
from dnscock.records import Record, RecordStore
from dnscock.services import (
    ServiceError,
    looks_like_prefix,
    manual_record,
    parse_changes,
    parse_default_ttl,
    service_json,
)
from dnscock.sockets import bound_address
from dnscock.swarm_watcher import Swarms

if TYPE_CHECKING:
    from dnscock.resolved import Registration
from dnscock.upstream import Upstream

log = logging.getLogger("dnscock.http")

MAX_BODY = 64 * 1024
StartResponse = Callable[..., Any]
_REASONS = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 401: "Unauthorized",
            403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 409: "Conflict",
            413: "Payload Too Large", 500: "Internal Server Error", 503: "Service Unavailable"}


class HttpError(Exception):
    def __init__(self, status: int, message: str, field: str | None = None, headers: Iterable[tuple[str, str]] = ()):
        super().__init__(message)
        self.status, self.message, self.field, self.headers = status, message, field, list(headers)


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


def _json(status: int, document: Any) -> Response:
    return Response(status, json.dumps(document, indent=1).encode() + b"\n")


def _number(query: dict[str, list[str]], field: str, default: float) -> float:
    """A number from the query string; 400 naming the field when it is not one."""
    text = (query.get(field) or [""])[0]
    if not text:
        return default
    try:
        return float(text)
    except ValueError:
        raise HttpError(400, f"{field} must be a number", field) from None


# The page runs its own script and style only, and talks to this origin only.
PAGE_POLICY = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
               "img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


class HttpApi:
    """The WSGI application."""

    def __init__(self, store: RecordStore, zone: str, default_ttl: DefaultTtl,
                 health: Callable[[], tuple[bool, dict[str, Any]]], registry: CollectorRegistry, token: str,
                 loopback_only: bool, page: PageParts | None = None) -> None:
        self.store, self.zone, self.default_ttl, self.health = store, zone, default_ttl, health
        self.registry = registry
        self.token = token
        self.loopback_only = loopback_only
        self.page = page
        self.routes: list[tuple[re.Pattern[str], dict[str, Callable[..., Response]]]] = [
            (re.compile(r"^/$"), {"GET": self.get_page}),
            (re.compile(r"^/state/?$"), {"GET": self.get_state}),
            (re.compile(r"^/explain/?$"), {"GET": self.get_explain}),
            (re.compile(r"^/queries/?$"), {"GET": self.get_queries}),
            (re.compile(r"^/services/?$"), {"GET": self.list_services}),
            (re.compile(r"^/services/(?P<service_id>[^/]+)$"), {
                "GET": self.get_service, "PUT": self.put_service, "PATCH": self.patch_service,
                "DELETE": self.delete_service,
            }),
            (re.compile(r"^/set/ttl/?$"), {"PUT": self.set_ttl}),
            (re.compile(r"^/health/?$"), {"GET": self.get_health}),
            (re.compile(r"^/metrics/?$"), {"GET": self.get_metrics}),
        ]

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        try:
            response = self.dispatch(method, environ.get("PATH_INFO") or "/", environ)
        except HttpError as error:
            document = {"error": error.message}
            if error.field:
                document["field"] = error.field
            response = _json(error.status, document)
            response.headers = tuple(error.headers)
        except Exception:
            log.exception("failed to serve %s %s", method, environ.get("PATH_INFO"))
            response = _json(500, {"error": "internal error (see dnscock's log)"})
        headers = [("Content-Type", response.content_type), ("Content-Length", str(len(response.body))),
                   *response.headers]
        start_response(f"{response.status} {_REASONS.get(response.status, '')}".strip(), headers)
        return [b""] if method == "HEAD" else [response.body]

    def dispatch(self, method: str, path: str, environ: dict[str, Any]) -> Response:
        for pattern, handlers in self.routes:
            match = pattern.match(path)
            if match is None:
                continue
            handler = handlers.get("GET" if method == "HEAD" else method)
            if handler is None:
                allowed = ", ".join(sorted(handlers))
                raise HttpError(405, f"{method} is not allowed on {path} (allowed: {allowed})",
                                headers=[("Allow", allowed)])
            if method in ("PUT", "PATCH", "DELETE", "POST"):
                self._authorize(environ)
            return handler(environ, **match.groupdict())
        raise HttpError(404, f"no such endpoint: {path}")

    # -- write protection --

    def _authorize(self, environ: dict[str, Any]) -> None:
        if self.token:
            given = environ.get("HTTP_AUTHORIZATION", "")
            scheme, _, credentials = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(credentials.strip().encode(), self.token.encode()):
                raise HttpError(401, "writes need 'Authorization: Bearer <the -http-token>'",
                                headers=[("WWW-Authenticate", 'Bearer realm="dnscock"')])
        elif not self.loopback_only:
            raise HttpError(403, "writes are refused: set -http-token, or serve -http on a loopback address")

    # -- dnsdock's services --

    def _view(self, record: Record) -> dict[str, Any]:
        return service_json(record, self.default_ttl.value, self.zone)

    def _find(self, service_id: str) -> Record:
        """The record with this id, or the one container whose id starts with it (>= 4 hex digits)."""
        record = self.store.get(service_id)
        if record is not None:
            return record
        if looks_like_prefix(service_id):
            found = [record for record in self.store if not record.manual and record.id.startswith(service_id)]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise HttpError(409, f"{service_id!r} is the start of {len(found)} container ids; give more of it",
                                "id")
        raise HttpError(404, f"no service {service_id!r}", "id")

    def list_services(self, environ: dict[str, Any]) -> Response:
        return _json(200, {record.id: self._view(record) for record in self.store})

    def get_service(self, environ: dict[str, Any], service_id: str) -> Response:
        return _json(200, self._view(self._find(service_id)))

    def put_service(self, environ: dict[str, Any], service_id: str) -> Response:
        document = self._body_json(environ)
        existing = self.store.get(service_id)
        if existing is None and looks_like_prefix(service_id):
            try:
                existing = self._find(service_id)
            except HttpError:
                existing = None
        if existing is not None and not existing.manual:
            _refuse_swarm_writes(existing)
            raise HttpError(409, f"{service_id!r} is container {existing.container}: PATCH it instead", "id")
        try:
            record = manual_record(service_id, document)
        except ServiceError as error:
            raise HttpError(400, str(error), error.field) from None
        old = self.store.put_manual(record)
        log.info("manual service %s %s: %s -> %s", service_id, "replaced" if old else "added",
                 ".".join(record.labels), ", ".join(record.ipv4 + record.ipv6) or "no address")
        return _json(200 if old else 201, self._view(self.store.get(service_id) or record))

    def patch_service(self, environ: dict[str, Any], service_id: str) -> Response:
        document = self._body_json(environ)
        record = self._find(service_id)
        _refuse_swarm_writes(record)
        try:
            changes = parse_changes(document, record)
        except ServiceError as error:
            raise HttpError(400, str(error), error.field) from None
        patched = self.store.patch(record.id, changes)
        log.info("service %s patched: %s", record.id[:12], ", ".join(sorted(changes)) or "nothing")
        return _json(200, self._view(patched))

    def delete_service(self, environ: dict[str, Any], service_id: str) -> Response:
        record = self._find(service_id)
        _refuse_swarm_writes(record)
        if not record.manual:
            raise HttpError(409, f"{service_id!r} is container {record.container}: stop it, or label it "
                            "com.dnsdock.ignore, to take its names away", "id")
        self.store.remove_manual(record.id)
        log.info("manual service %s removed", record.id)
        return _json(200, self._view(record))

    def set_ttl(self, environ: dict[str, Any]) -> Response:
        try:
            ttl = parse_default_ttl(self._body(environ))
        except ServiceError as error:
            raise HttpError(400, str(error), error.field) from None
        self.default_ttl.set(ttl)
        log.info("default TTL set to %d", ttl)
        return _json(200, {"TTL": ttl})

    # -- health and metrics --

    def get_health(self, environ: dict[str, Any]) -> Response:
        healthy, document = self.health()
        return _json(200 if healthy else 503, document)

    def get_metrics(self, environ: dict[str, Any]) -> Response:
        return Response(200, metrics.render(self.registry), metrics.CONTENT_TYPE)

    # -- the page, and what it reads --

    def _parts(self) -> PageParts:
        if self.page is None:
            raise HttpError(404, "no page here")
        return self.page

    @property
    def writes(self) -> str:
        """Whether the page may offer writes: "open" (loopback, no token), "token" (with it), "closed"."""
        return "token" if self.token else "open" if self.loopback_only else "closed"

    def get_page(self, environ: dict[str, Any]) -> Response:
        self._parts()
        return Response(200, page_html(), "text/html; charset=utf-8",
                        (("Content-Security-Policy", PAGE_POLICY), ("X-Content-Type-Options", "nosniff")))

    def get_state(self, environ: dict[str, Any]) -> Response:
        parts = self._parts()
        query = parse_qs(environ.get("QUERY_STRING", ""))
        since = _number(query, "since", -1)
        queries_after = int(_number(query, "queries_after", 0))
        generation = self.store.generation
        document: dict[str, Any] = {"generation": generation, "health": self.health()[1],
                                    "rates": parts.rates.rates(), "query_log": parts.query_log is not None
                                    and parts.query_log.keeps, "ttl": self.default_ttl.value, "writes": self.writes}
        if generation != since:
            document["services"] = {record.id: self._view(record) for record in self.store}
        if document["query_log"]:
            document["queries"] = parts.query_log.entries(queries_after)
        return _json(200, document)

    def get_explain(self, environ: dict[str, Any]) -> Response:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        name = (query.get("name") or [""])[0]
        if not name:
            raise HttpError(400, "give the name to explain: /explain?name=NAME&type=A", "name")
        client = (query.get("client") or [""])[0]
        try:
            return _json(200, self._parts().explainer.explain(name, (query.get("type") or ["A"])[0], client))
        except ExplainError as error:
            raise HttpError(400, str(error), error.field) from None

    def get_queries(self, environ: dict[str, Any]) -> Response:
        query_log = self._parts().query_log
        if query_log is None or not query_log.keeps:
            raise HttpError(404, "the query log is off: start dnscock with -query-log")
        return _json(200, query_log.entries(int(_number(parse_qs(environ.get("QUERY_STRING", "")), "after", 0))))

    # -- bodies --

    def _body(self, environ: dict[str, Any]) -> bytes:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise HttpError(400, "Content-Length is not a number") from None
        if length > MAX_BODY:
            raise HttpError(413, f"the body is larger than {MAX_BODY} bytes")
        return environ["wsgi.input"].read(length) if length > 0 else b""

    def _body_json(self, environ: dict[str, Any]) -> Any:
        body = self._body(environ)
        try:
            return json.loads(body.decode("utf-8") or "null")
        except (UnicodeDecodeError, ValueError) as error:
            raise HttpError(400, f"the body is not JSON: {error}") from None


class Health:
    """``/health``: healthy while the DNS listeners are up and the table follows every engine."""

    def __init__(self, listeners: Listeners, store: RecordStore, watchers: Sequence[DockerWatcher],
                 swarms: Swarms | None = None, upstreams: Sequence[Upstream] = (),
                 registration: Registration | None = None) -> None:
        self.listeners, self.store, self.watchers, self.swarms = listeners, store, list(watchers), swarms
        self.upstreams = list(upstreams)
        self.registration = registration

    def __call__(self) -> tuple[bool, dict[str, Any]]:
        reasons = []
        listening: dict[str, str | None] = {"udp": None, "tcp": None}
        for kind, server in self.listeners.servers.items():
            up = bool(server.started) and not server.closed
            listening[kind] = str(bound_address(server.socket)) if up else None
        if not self.listeners.servers:
            reasons.append("not listening yet: waiting for the default bridge's address (-dns=bridge)")
        reasons += [f"the DNS {kind} listener is down" for kind, address in listening.items()
                    if address is None and self.listeners.servers]
        engines = []
        for watcher in self.watchers:
            synced = self.store.has_synced(watcher.source)
            if not synced:
                reasons.append(f"not synced yet with the Docker engine at {watcher.url}")
            elif not watcher.connected:
                reasons.append(f"the Docker engine at {watcher.url} cannot be reached: serving the last known table")
            engines.append({"url": watcher.url, "product": watcher.product, "connected": watcher.connected,
                            "synced": synced})
            if self.swarms is not None:
                engines[-1]["swarm"] = self.swarms.engine_modes.get(watcher.url, "")
        swarms = self.swarms.status() if self.swarms is not None else []
        for swarm in swarms:
            if not swarm["reading"]:
                reasons.append(f"swarm {swarm['swarm']}: no engine of it answers ({swarm.get('failure', '')}): "
                               "serving the last known table")
        host_resolver = self.registration.health() if self.registration is not None else None
        if host_resolver is not None and host_resolver["mode"] == "resolved" and not host_resolver["registered"]:
            reasons.append(f"not registered with systemd-resolved: {host_resolver['problem'] or 'not yet'}")
        document = {
            "status": "ok" if not reasons else "unavailable",
            "dns": listening,
            "engine": engines[0] if engines else None,
            "engines": engines,
            "swarms": swarms,
            "upstreams": [{"nameserver": str(upstream.address), "domain": upstream.domain or ".",
                           "up": not upstream.down} for upstream in self.upstreams],
            "records": len(self.store),
            "host_resolver": host_resolver,
        }
        if reasons:
            document["reasons"] = reasons
        return not reasons, document


def _refuse_swarm_writes(record: Record) -> None:
    """A swarm's tasks and VIPs are read-only here: the swarm's managers own them."""
    if record.kind in ("task", "vip"):
        raise HttpError(409, f"{record.id!r} is a {record.kind} of swarm service {record.container}: change the "
                        "service (docker service update, its com.dnsdock.* labels) instead", "id")


def is_loopback(address: Address) -> bool:
    try:
        return ipaddress.ip_address(address.host).is_loopback
    except ValueError:
        return False  # "" is every address


def wsgi_server(sock: Any, app: HttpApi) -> WSGIServer:
    """gevent's WSGI server for ``app`` on the bound ``sock`` (not started); access lines at debug level.

    SERVER_NAME is given: otherwise gevent asks the host's resolver for the
    name of the bound address (socket.getfqdn) at the first request, a
    query that leaves the machine.
    """
    return WSGIServer(sock, app, log=LoggingLogAdapter(log, logging.DEBUG), error_log=LoggingLogAdapter(log),
                      environ={"SERVER_NAME": bound_address(sock).host})
