"""Wiring: options -> store, authority, watcher, forwarder, pipeline, servers; then serve until a signal.

Each part gets its own options object built here (``PipelineOptions``,
``WatchOptions``), never the whole ``Config``; the HTTP API and the metrics
are handed the objects they read.
"""

from __future__ import annotations

import gc
import logging
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import fields
from typing import TYPE_CHECKING, Any, TypeVar

import gevent
import gevent.event
from gevent.pywsgi import WSGIServer

from dnscock import __version__
from dnscock.addresses import Address, Engine
from dnscock.answers import DefaultTtl
from dnscock.authority import Authority
from dnscock.config import Config, load_config
from dnscock.docker_watcher import DockerWatcher, WatchOptions
from dnscock.engine import TlsSettings, tls_settings
from dnscock.errors import ConfigError
from dnscock.listeners import BRIDGE, Listeners
from dnscock.naming import NamingOptions
from dnscock.notify import Notifier
from dnscock.pipeline import Pipeline, PipelineOptions
from dnscock.privileges import resolve_user, switch_user
from dnscock.proxy_names import ProxyNames
from dnscock.records import RecordStore
from dnscock.sockets import bind_tcp, bound_address, primary_address
from dnscock.static_records import RecordsFileError, StaticFiles
from dnscock.swarm_watcher import SwarmOptions, Swarms
from dnscock.upstream import Forwarder

if TYPE_CHECKING:
    from dnscock.resolved import Registration

log = logging.getLogger("dnscock")
STATUS_INTERVAL = 5.0  # seconds between two looks at what systemctl status should show


def setup_logging(config: Config) -> None:
    level = logging.DEBUG if config.debug else logging.INFO if config.verbose else logging.WARNING
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # urllib3 and docker-py are chatty at debug level; their news is not ours.
    for noisy in ("urllib3", "docker"):
        logging.getLogger(noisy).setLevel(max(level, logging.INFO))


def tune_garbage_collector() -> None:
    """Fewer, cheaper collections on the query path.

    Everything built at start-up is moved out of the collector's sight
    (gc.freeze), and the youngest generation is collected less often: each
    query allocates a few short-lived objects that reference counting frees,
    so frequent young collections cost time and find little (about 7% more
    forwarded queries a second, measured with dnsperf).
    """
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


_Options = TypeVar("_Options")


def options_from(kind: type[_Options], config: Config, **given: Any) -> _Options:
    """An options object of ``kind``: each field named like an option takes that option's value, the others
    are ``given`` (or keep their defaults)."""
    named = {field.name for field in fields(kind)} & {field.name for field in fields(Config)}  # type: ignore[arg-type]
    return kind(**{name: getattr(config, name) for name in named - given.keys()}, **given)


def watch_options(config: Config, engine: Engine, tls: TlsSettings | None) -> WatchOptions:
    naming = options_from(
        NamingOptions, config,
        engine=engine.url,
        engine_address=engine.address,  # an IP, or PUBLISHED (the watcher turns that into published=True)
        several_engines=len(config.engines) > 1,
    )
    return options_from(WatchOptions, config, naming=naming, tls=tls)


def swarm_options(config: Config, tls: TlsSettings | None) -> SwarmOptions:
    naming = NamingOptions(networks=config.networks)
    return SwarmOptions(naming=naming, poll_interval=config.swarm_poll, tls=tls)


def pipeline_options(config: Config) -> PipelineOptions:
    return options_from(PipelineOptions, config, counters=config.http is not None)  # counters: read by /metrics


def ns_addresses(config: Config) -> tuple[str, ...]:
    """The addresses of dnscock's own name (the zone's NS): -ns-address, else a specific -dns, else the host's."""
    if config.ns_address:
        return config.ns_address
    if not config.listen.is_wildcard:
        return (config.listen.host,)
    return (primary_address() or "127.0.0.1",)


def build_pipeline(config: Config, store: RecordStore, forwarder: Forwarder) -> Pipeline:
    """The query path for ``config`` over ``store``: the authority for the zone and the pipeline."""
    default_ttl = DefaultTtl(config.ttl, on_change=store.touch)
    authority = Authority(store, config.zone, default_ttl, ns_addresses(config))
    return Pipeline(pipeline_options(config), store, authority, forwarder)


def check_config(config: Config) -> list[WatchOptions]:
    """What the option parser cannot see: the engines' TLS files and the -user; raises ConfigError.

    Returns the options of each engine's watcher.
    """
    tls = tls_settings(config)
    if config.user:
        resolve_user(config.user)
        if config.listen.host == BRIDGE and config.listen.port < 1024:
            raise ConfigError(f"argument -dns/--dns: {config.listen}: with -user, -dns=bridge needs a port of 1024 or "
                              "more (dnscock binds again, as that user, whenever the bridge's address changes)")
    return [watch_options(config, engine, tls) for engine in config.engines]


def bind_http(config: Config) -> socket.socket | None:
    """The HTTP API's socket (when -http is set); raises OSError naming the address."""
    if config.http is None:
        return None
    try:
        return bind_tcp(config.http)
    except OSError as error:
        raise OSError(f"cannot serve HTTP on {config.http}: {error.strerror or error}") from None


def main(argv: Sequence[str] | None = None) -> int:
    config = load_config(argv)
    store = RecordStore()
    static = StaticFiles(config.records, store)
    try:
        engine_options = check_config(config)
        static.load()
    except RecordsFileError as error:
        print(f"dnscock: error: argument -records/--records: {error}", file=sys.stderr)
        return 2
    except ConfigError as error:
        print(f"dnscock: error: {error}", file=sys.stderr)
        return 2
    setup_logging(config)
    log.info("dnscock %s serving *.%s, forwarding to %s%s", __version__, config.zone,
             ", ".join(str(server) for server in config.nameservers),
             "".join(f"; {domain} to {', '.join(str(server) for server in servers)}"
                     for domain, servers in config.domain_nameservers))

    # Handlers first: a SIGTERM that comes as soon as we listen must still stop us cleanly.
    stopping = gevent.event.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, stopping.set)

    forwarder = Forwarder(config.nameservers, config.timeout, config.max_fails, config.domain_nameservers)
    pipeline = build_pipeline(config, store, forwarder)
    authority = pipeline.authority
    listeners = Listeners(pipeline, config.tcp_idle_timeout, config.tcp_connections)
    try:
        if config.listen.host != BRIDGE:
            listeners.bind(config.listen)
        http_socket = bind_http(config)
    except OSError as error:
        log.error("%s", error)
        return 1
    swarms = Swarms(store, swarm_options(config, engine_options[0].tls), enabled=config.swarm == "auto")
    proxy_names = ProxyNames(store, enabled=config.proxy_names)
    watchers = [DockerWatcher(engine.url, store, config.zone, options, on_info=swarms.engine_info)
                for engine, options in zip(config.engines, engine_options)]
    if config.listen.host == BRIDGE:
        watchers[0].on_bridge = lambda gateway: listeners.move_to(Address(gateway, config.listen.port))
    registration = open_registration(config, listeners, authority) if config.host_resolver != "none" else None
    http_server = None
    if http_socket is not None:
        http_server = build_http_server(http_socket, config, store, authority.default_ttl, pipeline, forwarder,
                                        watchers, swarms, listeners, registration)
    if config.user:
        # Everything is bound and imported: no file needs opening as root from here on.
        try:
            switch_user(config.user)
            tls_settings(config)  # the engine's TLS files, read again as the new user
        except ConfigError as error:
            log.error("%s", error)
            return 2

    if listeners.servers:
        listeners.start()
    else:
        log.info("listening nowhere yet: on the default bridge's gateway once %s says which it is",
                 config.engines[0].url)
    if http_server is not None:
        http_server.start()
    if registration is not None:
        registration.start()
    tune_garbage_collector()
    log.info("authoritative for %s. (NS %s. at %s)", config.zone, authority.server_name,
             ", ".join(authority.ns_addresses))
    if http_server is not None:
        log.info("serving HTTP on http://%s (the page at /; /services, /health, /metrics, /explain, /queries)",
                 bound_address(http_socket))
    for watcher in watchers:
        watcher.start()
    static.start()
    proxy_names.start()
    gevent.signal_handler(signal.SIGHUP, static.reload)
    notifier = Notifier()
    if notifier.enabled:
        gevent.spawn(tell_systemd, notifier, store, watchers, listeners)

    stopping.wait()
    log.info("stopping")
    notifier.stopping()
    if registration is not None:
        registration.stop()  # first: resolved stops sending the host's queries here
    if http_server is not None:
        http_server.stop(timeout=1)
    listeners.stop()
    for watcher in watchers:
        watcher.stop()
    swarms.stop()
    proxy_names.stop()
    static.stop()
    forwarder.close()
    return 0


def open_registration(config: Config, listeners: Listeners, authority: Authority) -> Registration | None:
    """-host-resolver: the bus connection and the link, made as root (before -user); None when not registering."""
    from dnscock.resolved import Registration

    registration = Registration(config.host_resolver, config.zone, config.host_resolver_address,
                                server=lambda: listeners.address,
                                reverse_zones=lambda: authority.reverse_zones().names)
    return registration if registration.open() else None


def tell_systemd(notifier: Notifier, store: RecordStore, watchers: list[DockerWatcher], listeners: Listeners) -> None:
    """READY=1 once the first sync is in (and dnscock listens), then a STATUS line whenever it changes."""
    def status() -> str:
        connected = sum(1 for watcher in watchers if watcher.connected)
        return (f"listening on {listeners.address or 'nothing yet'}, {len(store)} records, {connected} of "
                f"{len(watchers)} Docker engine(s) connected")

    store.synced.wait()
    notifier.ready(status())
    while True:
        gevent.sleep(STATUS_INTERVAL)
        notifier.status(status())


def build_http_server(sock: socket.socket, config: Config, store: RecordStore, default_ttl: DefaultTtl,
                      pipeline: Pipeline, forwarder: Forwarder, watchers: list[DockerWatcher], swarms: Swarms,
                      listeners: Listeners, registration: Registration | None) -> WSGIServer:
    # Imported here: prometheus_client and the WSGI server cost memory only when -http is on.
    from dnscock.explain import Explainer
    from dnscock.http_api import Health, HttpApi, is_loopback, wsgi_server
    from dnscock.metrics import QueryPathView, build_registry
    from dnscock.page import PageParts, RateHistory

    if not config.http_token and not is_loopback(bound_address(sock)):
        log.warning("HTTP on %s without -http-token: the API is read-only", bound_address(sock))
    health = Health(listeners, store, watchers, swarms, forwarder.upstreams, registration)
    query_path = QueryPathView(
        stats=pipeline.stats, upstreams=forwarder.upstreams,
        caches={"local": pipeline.caches.local, "forward": pipeline.caches.forward},
        busy=lambda: pipeline.busy, pool_size=config.forward_pool,
    )
    registry = build_registry(query_path, store, watchers, swarms)
    rates = RateHistory(pipeline.stats)
    rates.start()
    page = PageParts(Explainer(pipeline.authority, forwarder, pipeline.views), pipeline.query_log, rates)
    app = HttpApi(store, config.zone, default_ttl, health, registry, config.http_token,
                  is_loopback(bound_address(sock)), page)
    return wsgi_server(sock, app)
