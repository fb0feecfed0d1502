"""The Docker Engine API, as dnscock uses it: events, the running containers, inspect.

docker-py does the connecting (unix socket, TCP, TLS), lists and reads the
event stream; the API version used is the one the engine reports, asked
with the environment's proxy and CA bundle settings ignored, like every
later call. Inspect is where the time goes: start-up calls it once per
container. A single inspect goes through docker-py's own urllib3 pool but
skips the requests session around it (which scans the environment for
proxies on every call and, for a unix socket, opens a new connection pool
for every URL). Many inspects at once, over a unix socket, plain TCP or
TLS, are pipelined: a few keep-alive connections each carry batches of
requests sent in one write, and the responses are read back in order
(HTTP/1.1 §9.3.2). At 10,000 containers that turns over ten seconds of
request overhead into about one.

TLS (docker's ``--tlsverify``): ``TlsSettings`` holds the CA, the client
certificate and its key. docker-py gets them as a ``TLSConfig`` (so a
``tcp://`` URL becomes ``https://``), and the pipelined inspects wrap their
raw connections in an ``ssl.SSLContext`` built from the same files, checking
the engine's certificate and host name the same way.
"""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO, NamedTuple, TypeVar
from urllib.parse import quote, urlsplit

import docker
import docker.constants
import docker.errors
import docker.tls
import gevent.pool
import requests
from gevent import socket as gsocket
from gevent import ssl as gssl

from dnscock.config import Config
from dnscock.errors import ConfigError, EngineError

API_TIMEOUT = 10.0  # seconds for one API call (not the event stream)
INSPECT_CONNECTIONS = 4  # connections inspecting at once while listing the engine's containers
PIPELINE_DEPTH = 32  # requests sent together on one connection
_MAX_LINE = 65536

Inspect = Mapping[str, Any]
T = TypeVar("T")


@dataclass(frozen=True)
class TlsSettings:
    """TLS to the engine, as docker's ``--tlsverify --tlscacert --tlscert --tlskey``."""

    ca: str  # the CA the engine's certificate must chain to
    cert: str  # the client certificate shown to the engine
    key: str  # its private key
    verify: bool = True  # check the engine's certificate (and host name) against ``ca``

    def docker_tls(self) -> docker.tls.TLSConfig:
        """The same settings for docker-py."""
        return docker.tls.TLSConfig(client_cert=(self.cert, self.key), ca_cert=self.ca, verify=self.verify)

    def ssl_context(self) -> ssl.SSLContext:
        """A client context for raw connections to the engine (gevent's, so it yields)."""
        context = gssl.SSLContext(gssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = gssl.TLSVersion.TLSv1_2  # as dockerd's own minimum
        if self.verify:
            context.load_verify_locations(cafile=self.ca)
        else:
            context.check_hostname = False
            context.verify_mode = gssl.CERT_NONE
        context.load_cert_chain(self.cert, self.key)
        return context


def tls_settings(config: Config) -> TlsSettings | None:
    """The TLS settings the options ask for; None without ``-tlsverify``.

    Raises ConfigError, naming the option and the path, when a file is
    missing or unusable, so that dnscock stops at start rather than failing
    every reconnect.
    """
    if not config.tlsverify:
        return None
    settings = TlsSettings(ca=config.tlscacert, cert=config.tlscert, key=config.tlskey)
    for option, path in (("tlscacert", settings.ca), ("tlscert", settings.cert), ("tlskey", settings.key)):
        if not os.path.isfile(path):
            why = "no such file" if not os.path.exists(path) else "not a file"
            raise ConfigError(f"argument -{option}/--{option}: {path}: {why} (needed by -tlsverify)")
        if not os.access(path, os.R_OK):
            raise ConfigError(f"argument -{option}/--{option}: {path}: cannot be read (needed by -tlsverify)")
    context = gssl.SSLContext(gssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_verify_locations(cafile=settings.ca)
    except (ssl.SSLError, OSError) as error:
        raise ConfigError(f"argument -tlscacert/--tlscacert: {settings.ca}: not a CA certificate "
                          f"in PEM ({_ssl_reason(error)})") from None
    try:
        context.load_cert_chain(settings.cert, settings.key)
    except (ssl.SSLError, OSError) as error:
        raise ConfigError(f"argument -tlscert/--tlscert, -tlskey/--tlskey: {settings.cert}, {settings.key}: "
                          f"not a certificate and its key in PEM ({_ssl_reason(error)})") from None
    return settings


def is_rootless(info: Mapping[str, Any]) -> bool:
    """``GET /info``: does the engine run rootless (Podman's compatible ``Rootless``, Docker's security options)?"""
    return info.get("Rootless") is True or any("name=rootless" in str(option)
                                               for option in info.get("SecurityOptions") or ())


class PodMember(NamedTuple):
    """A Podman container's pod: its name, whether the container is the pod's infra (pause) container, and
    the infra container's id (whose network namespace the pod's containers share)."""

    pod: str
    infra: bool
    infra_id: str = ""


def product_of(version: Mapping[str, Any]) -> str:
    """``GET /version`` -> ``Docker 28.2.2`` or ``Podman 4.3.1`` (whose compatible API has a "Podman Engine")."""
    for component in version.get("Components") or ():
        if str(component.get("Name") or "").startswith("Podman"):
            return f"Podman {component.get('Version') or version.get('Version') or ''}".strip()
    return f"Docker {version.get('Version') or ''}".strip()


class EngineClient:
    """One connection to one engine; ``close()`` it when done."""

    def __init__(self, url: str, tls: TlsSettings | None = None, timeout: float = API_TIMEOUT) -> None:
        self.url = url
        self.tls = tls
        self.timeout = timeout
        self._ssl_context = _load_ssl_context(tls) if tls is not None else None
        # A placeholder version: with "auto", docker-py would ask the engine before trust_env
        # could be turned off, and REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE would then replace
        # -tlscacert (docker/docker-py#2433).
        self._api = docker.APIClient(base_url=url, version=docker.constants.MINIMUM_DOCKER_API_VERSION,
                                     timeout=timeout, tls=tls.docker_tls() if tls is not None else False)
        self._api.trust_env = False  # no proxy or CA bundle look-ups in the environment per request
        try:
            version = self._api.version(api_version=False)
            self._api._version = str(version["ApiVersion"])
        except (docker.errors.DockerException, requests.exceptions.RequestException, KeyError) as error:
            self._api.close()
            failure = _ssl_failure(error)
            if failure is not None:
                raise EngineError(_explain_tls_failure(failure)) from error
            raise EngineError(f"fetching the engine's API version: {error}") from error
        self._pool = self._connection_pool()
        self.product = product_of(version)

    @property
    def api_version(self) -> str:
        return str(self._api.api_version)

    @property
    def is_podman(self) -> bool:
        return self.product.startswith("Podman")

    def pods(self) -> dict[str, PodMember]:
        """Podman: the running containers that belong to a pod (libpod's listing: the compatible API has no
        pods), by id."""
        summaries = [summary for summary in self._api._result(
            self._api._get(self._api._url("/libpod/containers/json")), json=True) or () if summary.get("Pod")]
        infra = {str(summary["Pod"]): str(summary.get("Id") or "") for summary in summaries if summary.get("IsInfra")}
        return {str(summary.get("Id") or ""): PodMember(str(summary.get("PodName") or ""), bool(summary.get("IsInfra")),
                                                        infra.get(str(summary["Pod"]), ""))
                for summary in summaries}

    def _connection_pool(self):
        """docker-py's urllib3 pool for this engine, set up for its transport and TLS."""
        base = self._api.base_url.rstrip("/") + "/"
        adapter = self._api.get_adapter(base)
        request = requests.Request("GET", base).prepare()
        return adapter.get_connection_with_tls_context(request, self._api.verify, cert=self._api.cert)

    def events(self, since: int | None = None) -> Iterator[Mapping[str, Any]]:
        """Container and network events from ``since`` (engine time, seconds) or now on.

        The request is made (subscribed) before this returns.
        """
        return self._api.events(since=since, decode=True, filters={"type": ["container", "network"]})

    def info(self) -> Mapping[str, Any]:
        """``GET /info``: its ``Swarm`` part says whether the engine is a swarm manager, a worker, or neither."""
        return self._api.info()

    def default_bridge(self) -> Mapping[str, Any]:
        """``GET /networks/bridge``: the default bridge, whose gateway is the host as containers see it."""
        return self._api.inspect_network("bridge")

    def swarm_events(self) -> Iterator[Mapping[str, Any]]:
        """Service, node and network events from now on (a manager emits them for the whole swarm)."""
        return self._api.events(decode=True, filters={"type": ["service", "node", "network"]})

    def services(self) -> list[Mapping[str, Any]]:
        return self._api.services()

    def running_tasks(self) -> list[Mapping[str, Any]]:
        """The tasks meant to run (their own state may be starting, running, ...)."""
        return self._api.tasks(filters={"desired-state": "running"})

    def nodes(self) -> list[Mapping[str, Any]]:
        return self._api.nodes()

    def swarm_networks(self) -> list[Mapping[str, Any]]:
        """The swarm-scoped networks this engine knows (GET /networks), without their details."""
        return self._api.networks(filters={"scope": "swarm"})

    def network_in_detail(self, network_id: str) -> Mapping[str, Any]:
        """``GET /networks/<id>?verbose=true``: on a swarm network, every service's VIP and tasks, cluster-wide."""
        return self._api.inspect_network(network_id, verbose=True)

    def running_container_ids(self) -> list[str]:
        return [summary["Id"] for summary in self._api.containers()]

    def inspect(self, container_id: str) -> Inspect | None:
        """The container's inspect document, or None when it no longer exists."""
        path = urlsplit(self._api._url("/containers/{0}/json", container_id)).path
        response = self._pool.urlopen(
            "GET", path, retries=False, timeout=self.timeout, preload_content=True,
        )
        if response.status == 404:
            return None
        return _inspect_document(container_id, response.status, response.data)

    def inspect_many(self, ids: list[str], convert: Callable[[Inspect | None], T]) -> Iterator[T]:
        """``convert(inspect document or None when gone)`` for each container, in no particular order.

        Each document is converted as soon as it is read, so that thousands of
        them are never held at once.
        """
        inspectors = gevent.pool.Pool(INSPECT_CONNECTIONS)
        if self._raw_address() is None:  # a transport of docker-py's own (ssh, npipe)
            yield from inspectors.imap_unordered(lambda container_id: convert(self.inspect(container_id)), ids)
            return
        slices = [ids[start::INSPECT_CONNECTIONS] for start in range(INSPECT_CONNECTIONS)]
        for converted in inspectors.imap_unordered(lambda part: self._inspect_pipelined(part, convert), slices):
            yield from converted

    def _raw_address(self) -> tuple[int, Any, str | None] | None:
        """(family, address, TLS server name or None) to open a raw connection to, for HTTP or HTTPS."""
        base = urlsplit(self._api.base_url)
        if base.scheme == "http+docker":
            return gsocket.AF_UNIX, self._api.get_adapter(self._api.base_url + "/").socket_path, None
        if base.scheme not in ("http", "https") or not base.hostname:
            return None
        if base.scheme == "https" and self._ssl_context is None:
            return None  # TLS set up by docker-py alone: leave it to its pool
        family = gsocket.AF_INET6 if ":" in base.hostname else gsocket.AF_INET
        if base.scheme == "https":
            return family, (base.hostname, base.port or 443), base.hostname
        return family, (base.hostname, base.port or 80), None

    def _inspect_pipelined(self, ids: list[str], convert: Callable[[Inspect | None], T]) -> list[T]:
        if not ids:
            return []
        address = self._raw_address()
        assert address is not None
        family, target, server_name = address
        sock = gsocket.socket(family, gsocket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        reader = None
        try:
            sock.connect(target)
            if server_name is not None:
                assert self._ssl_context is not None
                sock = self._ssl_context.wrap_socket(sock, server_hostname=server_name)
            reader = sock.makefile("rb", buffering=_MAX_LINE)
            converted = []
            for start in range(0, len(ids), PIPELINE_DEPTH):
                batch = ids[start:start + PIPELINE_DEPTH]
                sock.sendall(b"".join(self._inspect_request(container_id) for container_id in batch))
                for container_id in batch:
                    status, body = _read_response(reader)
                    converted.append(convert(_inspect_document(container_id, status, body)))
            return converted
        except ssl.SSLError as error:
            raise EngineError(f"inspecting containers: {_explain_tls_failure(error)}") from error
        except (OSError, ValueError) as error:
            raise EngineError(f"inspecting containers: {error}") from error
        finally:
            if reader is not None:
                reader.close()
            sock.close()

    def _inspect_request(self, container_id: str) -> bytes:
        path = f"/v{self.api_version}/containers/{quote(container_id, safe='')}/json"
        return f"GET {path} HTTP/1.1\r\nHost: docker\r\nUser-Agent: dnscock\r\n\r\n".encode()

    def close(self) -> None:
        self._api.close()


def _load_ssl_context(tls: TlsSettings) -> ssl.SSLContext:
    """``tls.ssl_context()``; an EngineError naming the files that cannot be read now (after -user, say)."""
    try:
        return tls.ssl_context()
    except OSError as error:
        unreadable = [f"-{option} {path}" for option, path in
                      (("tlscacert", tls.ca), ("tlscert", tls.cert), ("tlskey", tls.key))
                      if not os.access(path, os.R_OK)]
        what = ", ".join(unreadable) if unreadable else f"{tls.ca}, {tls.cert}, {tls.key}"
        raise EngineError(f"cannot load the TLS files ({what}) as uid {os.geteuid()}: "
                          f"{getattr(error, 'strerror', None) or _ssl_reason(error)}") from error


def _ssl_failure(error: BaseException) -> ssl.SSLError | None:
    """The ssl.SSLError somewhere inside docker-py's, requests' and urllib3's wrappings, if any."""
    seen: set[int] = set()
    pending: list[object] = [error]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLError):
            return current
        pending.extend((current.__cause__, current.__context__, getattr(current, "reason", None), *current.args))
    return None


def _ssl_reason(error: BaseException) -> str:
    if isinstance(error, ssl.SSLCertVerificationError) and error.verify_message:
        return f"certificate verify failed: {error.verify_message}"
    if isinstance(error, ssl.SSLEOFError):
        return "the engine closed the connection"
    if isinstance(error, ssl.SSLError) and error.reason:
        return str(error.reason).replace("_", " ").lower()
    return str(error) or type(error).__name__


_TLS_HINTS = {
    "CERTIFICATE_VERIFY_FAILED": "is -tlscacert the CA that signed the engine's certificate, "
                                 "and is the engine's address among its names?",
    "WRONG_VERSION_NUMBER": "does the engine speak TLS on this port?",
}


def _explain_tls_failure(error: ssl.SSLError) -> str:
    """One line for the log: what failed in the TLS handshake, and what to check."""
    reason = str(error.reason or "")
    if "ALERT" in reason or isinstance(error, ssl.SSLEOFError) or "EOF" in reason:
        # With TLS 1.3 the engine checks our certificate after the handshake looks done to us:
        # its refusal comes as an alert or, as often, as the connection simply closing.
        hint = ("did the engine refuse the client certificate? -tlscert must be signed by the CA "
                "the engine trusts (its --tlscacert)")
    else:
        hint = _TLS_HINTS.get(reason, "check -tlscacert, -tlscert and -tlskey")
    return f"TLS with the engine failed: {_ssl_reason(error)} ({hint})"


def _inspect_document(container_id: str, status: int, body: bytes) -> Inspect | None:
    if status == 404:
        return None
    if status != 200:
        raise EngineError(f"inspect {container_id[:12]}: HTTP {status} {body[:200]!r}")
    return json.loads(body)


def _read_response(reader: BinaryIO) -> tuple[int, bytes]:
    """One HTTP/1.1 response: (status, body), for a body with a length or chunked."""
    status_line = reader.readline(_MAX_LINE)
    fields = status_line.split(None, 2)
    if len(fields) < 2 or not fields[0].startswith(b"HTTP/"):
        raise ValueError(f"not an HTTP response: {status_line[:80]!r}")
    status = int(fields[1])
    length, chunked = None, False
    while True:
        line = reader.readline(_MAX_LINE)
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
    if chunked:
        chunks = []
        while True:
            size = int(reader.readline(_MAX_LINE).split(b";", 1)[0], 16)
            if size == 0:
                while reader.readline(_MAX_LINE) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return status, b"".join(chunks)
            chunks.append(_read_exactly(reader, size))
            _read_exactly(reader, 2)  # the CRLF after each chunk
    if length is None:
        raise ValueError("a response without a length cannot be pipelined")
    return status, _read_exactly(reader, length)


def _read_exactly(reader: BinaryIO, size: int) -> bytes:
    data = reader.read(size)
    if len(data) != size:
        raise ValueError("the connection closed in the middle of a response")
    return data
