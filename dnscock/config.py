"""Options: flags, ``DNSCOCK_*`` env vars and a config file -> a frozen ``Config``.

This is the only module that reads argv, the environment and config files.
Every option has three spellings (``--ttl 5`` / ``DNSCOCK_TTL=5`` /
``ttl = 5``) and the Go program's single-dash form (``-ttl=5``) keeps working.
Precedence: flag > env var > config file > default.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import sys
from dataclasses import dataclass, fields
from typing import NamedTuple, NoReturn, Sequence

import configargparse

from dnscock import __version__
from dnscock.dnsname import is_valid_label, is_valid_name, split_name

DEFAULT_CONFIG_FILE = "/etc/dnscock/dnscock.conf"
DEFAULT_DOCKER_URL = "unix:///var/run/docker.sock"
DEFAULT_RESOLV_CONF = "/etc/resolv.conf"
ENV_PREFIX = "DNSCOCK_"
# Who may query by default: loopback, RFC 1918, RFC 4193 and link-local; never the open internet.
DEFAULT_QUERY_LOG = 1000  # queries -query-log keeps when given without a number
DEFAULT_ALLOW_FROM = "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7,169.254.0.0/16,fe80::/10"

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Address(NamedTuple):
    """A host and a port; host "" means every local address."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def family(self) -> socket.AddressFamily:
        return socket.AF_INET6 if ":" in self.host else socket.AF_INET

    @property
    def is_wildcard(self) -> bool:
        """Does it stand for every local address?"""
        return self.host in ("", "0.0.0.0", "::")

    def reachable(self) -> Address:
        """Where a client on this host reaches a server listening here: loopback for a wildcard address."""
        if not self.is_wildcard:
            return self
        return Address("::1" if self.host == "::" else "127.0.0.1", self.port)


DEFAULT_NAMESERVER = Address("8.8.8.8", 53)


PUBLISHED = "published"  # ?address=published: containers answer the host addresses they publish ports on


class Engine(NamedTuple):
    """A Docker engine to watch, and perhaps the address its host is reached at from elsewhere."""

    url: str
    # With several hosts: what this engine's containers that publish ports answer; PUBLISHED: each answers the host
    # addresses its ports are published on (rootless engines, Docker Desktop, WSL).
    address: str = ""


@dataclass(frozen=True)
class Config:
    listen: Address
    engines: tuple[Engine, ...]
    domain: str
    environment: str
    nameservers: tuple[Address, ...]
    domain_nameservers: tuple[tuple[str, tuple[Address, ...]], ...]  # domain -> its own servers (dnsmasq's /d/ip)
    ttl: int
    debug: bool
    verbose: bool
    timeout: float
    forward_pool: int
    sync_timeout: float
    udp_payload: int
    tcp_idle_timeout: float
    tcp_connections: int
    max_fails: int
    cache_size: int
    local_cache_size: int
    networks: frozenset[str]
    host_ip: str
    compose_names: bool
    container_names: bool
    proxy_names: bool
    host_name: str
    records: tuple[str, ...]
    split_horizon: bool
    network_aliases: bool
    hostnames: bool
    serve_unhealthy: bool
    grace: float
    resync_interval: float
    http: Address | None
    http_token: str
    query_log: int
    log_queries: bool
    allow_from: tuple[IPNetwork, ...]
    rate_limit: int
    rate_limit_slip: int
    tlsverify: bool
    tlscacert: str
    tlscert: str
    tlskey: str
    user: str
    ns_address: tuple[str, ...]
    swarm: str
    swarm_poll: float
    host_resolver: str
    host_resolver_address: str

    @property
    def docker_url(self) -> str:
        """The first engine's URL (the only one, usually)."""
        return self.engines[0].url

    @property
    def zone(self) -> str:
        """The suffix every local name ends with: ``<environment>.<domain>``."""
        return ".".join(part for part in (self.environment, self.domain) if part)


# -- value parsers: each raises ArgumentTypeError with a message for humans --


def parse_bool(text: str | bool) -> bool:
    if isinstance(text, bool):
        return text
    value = text.strip().lower()
    if value in ("1", "t", "true", "yes", "on"):
        return True
    if value in ("0", "f", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not true or false")


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"port {text!r} in {whole!r} is not a number from 0 to 65535")
    return int(text)


def _ip(text: str, whole: str) -> str:
    if text == "localhost":
        return "127.0.0.1"
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} in {whole!r} is not an IP address") from None


def split_host_port(text: str, default_port: int | None) -> Address:
    """``"1.2.3.4:53"``, ``"[::1]:53"``, ``":53"``, and without a port when a default is given."""
    whole = text
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise argparse.ArgumentTypeError(f"{whole!r} is not an address like [::1]:53")
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    elif text.count(":") > 1:  # a bare IPv6 address
        host, port_text = text, None
    else:
        host, port_text = text, None
    if port_text is None:
        if default_port is None:
            raise argparse.ArgumentTypeError(f"{whole!r} has no port (write it as host:port)")
        port = default_port
    else:
        port = _port(port_text, whole)
    return Address(_ip(host, whole) if host else "", port)


def parse_listen(text: str) -> Address:
    """``host:port``, or ``bridge[:port]`` for the first engine's default bridge's gateway (port 53 by default)."""
    host, _, port = text.strip().partition(":")
    if host == "bridge" and (not port or port.isdigit()):
        return Address("bridge", _port(port, text) if port else 53)
    return split_host_port(text, default_port=None)


def parse_optional_listen(text: str) -> Address | None:
    """An address like ``-dns``'s, or "" for none (the listener is off)."""
    return split_host_port(text, default_port=None) if text.strip() else None


def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    """``"10.0.0.0/8, ::1"`` -> networks; ``any`` is every address."""
    networks: list[IPNetwork] = []
    for item in text.replace(" ", ",").split(","):
        if not item:
            continue
        if item.lower() == "any":
            networks += [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")]
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{item!r} is not a network like 10.0.0.0/8 or fd00::/8") from None
    if not networks:
        raise argparse.ArgumentTypeError("no network given (write 'any' to allow every address)")
    return tuple(networks)


def parse_user(text: str) -> str:
    """A user name or uid, optionally ``:group``; checked when dnscock drops to it."""
    text = text.strip()
    if text and not all(part and all(c.isalnum() or c in "._-" for c in part) for part in text.split(":", 1)):
        raise argparse.ArgumentTypeError(f"{text!r} is not a user name or uid (optionally user:group)")
    return text


def read_resolv_conf(path: str) -> list[Address]:
    """The ``nameserver`` lines of a resolv.conf file."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError as error:
        raise argparse.ArgumentTypeError(f"cannot read {path}: {error.strerror}") from None
    servers = []
    for line in lines:
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            address = fields[1].split("%", 1)[0]  # drop an IPv6 zone index
            servers.append(Address(_ip(address, line.strip()), 53))
    if not servers:
        raise argparse.ArgumentTypeError(f"{path} lists no nameserver")
    return servers


class Nameserver(NamedTuple):
    """An upstream nameserver, for every name or only for names in ``domains``."""

    address: Address
    domains: tuple[str, ...] = ()


def _server_address(text: str, whole: str) -> Address:
    """``host[:port]``, or dnsmasq's ``host#port``."""
    address = split_host_port(text.replace("#", ":") if text.count("#") == 1 else text, default_port=53)
    if not address.host:
        raise argparse.ArgumentTypeError(f"{whole!r} names no host")
    return address


def _domain_server(item: str) -> Nameserver | None:
    """dnsmasq's ``/domain/[domain/...]server[:port]``, or None when ``item`` is not of that form (a path)."""
    parts = item.split("/")
    if len(parts) < 3 or parts[0]:
        return None
    try:
        address = _server_address(parts[-1], item)
    except argparse.ArgumentTypeError:
        return None
    domains = [part for part in parts[1:-1] if part]
    if not domains:
        raise argparse.ArgumentTypeError(f"{item!r} names no domain (write /corp.example/10.0.0.1)")
    return Nameserver(address, tuple(parse_domain(domain) for domain in domains))


def parse_nameservers(text: str) -> list[Nameserver]:
    """Comma-separated ``host[:port]`` items, ``/domain/host[:port]`` for one domain's names (dnsmasq's
    form), or ``resolv.conf`` / a path to such a file."""
    servers: list[Nameserver] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        if item == "resolv.conf":
            servers += [Nameserver(address) for address in read_resolv_conf(DEFAULT_RESOLV_CONF)]
        elif "/" in item:
            domain_server = _domain_server(item)
            if domain_server is not None:
                servers.append(domain_server)
            else:
                servers += [Nameserver(address) for address in read_resolv_conf(item)]
        else:
            servers.append(Nameserver(_server_address(item, item)))
    if not servers:
        raise argparse.ArgumentTypeError(f"{text!r} names no nameserver")
    return servers


def parse_domain(text: str) -> str:
    labels = split_name(text)
    if not labels or not is_valid_name(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a domain name")
    return ".".join(labels)


def parse_environment(text: str) -> str:
    labels = split_name(text)
    if labels and not is_valid_name(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a domain name")
    return ".".join(labels)


def parse_ttl(text: str) -> int:
    text = text.strip()
    if not text.isdigit() or int(text) > 2**31 - 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds (0 to 2147483647)")
    return int(text)


def _positive(kind: type[int] | type[float], unit: str):
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not value > 0 or value != value or value == float("inf"):
            raise argparse.ArgumentTypeError(f"{text!r} is not a positive {unit}")
        return value

    return parse


def parse_query_log(text: str | bool) -> int:
    """-query-log: on (the last 1,000), off, or how many queries to keep."""
    if isinstance(text, bool):
        return DEFAULT_QUERY_LOG if text else 0
    if text.strip().isdigit():
        return int(text)
    try:
        return DEFAULT_QUERY_LOG if parse_bool(text) else 0
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not true, false or a number of queries") from None


def parse_whole(text: str) -> int:
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number (0 or more)")
    return int(text)


parse_seconds = _positive(float, "number of seconds")
parse_count = _positive(int, "whole number")


def parse_udp_payload(text: str) -> int:
    if not text.strip().isdigit() or not 512 <= int(text) <= 4096:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of bytes from 512 to 4096")
    return int(text)


def parse_names(text: str) -> list[str]:
    """Comma-separated names; "" is none (so that an empty config line means the default)."""
    return [name.strip() for name in text.split(",") if name.strip()]


def parse_host_ip(text: str) -> str:
    return _ip(text.strip(), text) if text.strip() else ""


def parse_swarm_mode(text: str) -> str:
    mode = text.strip().lower()
    if mode not in ("auto", "off"):
        raise argparse.ArgumentTypeError(f"{text!r} is not auto or off")
    return mode


def parse_host_resolver(text: str) -> str:
    mode = text.strip().lower()
    if mode not in ("none", "resolved", "auto"):
        raise argparse.ArgumentTypeError(f"{text!r} is not none, resolved or auto")
    return mode


def parse_interface(text: str) -> str:
    """An IP address with an optional /prefix (a /32 or /128 without one)."""
    try:
        return str(ipaddress.ip_interface(text.strip()))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IP address (with an optional /prefix)") from None


def parse_label(text: str) -> str:
    """One DNS label, or "" for none."""
    label = text.strip().lower()
    if label and not is_valid_label(label):
        raise argparse.ArgumentTypeError(f"{text!r} is not a DNS label (letters, digits, '-', '_')")
    return label


def parse_ips(text: str) -> list[str]:
    """Comma-separated IP addresses; "" is none."""
    return [_ip(item.strip(), text) for item in text.split(",") if item.strip()]


def parse_nonnegative_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (0 or more)")
    return value


def normalize_docker_url(url: str) -> str:
    """The Go program's default ``unix://var/run/docker.sock`` meant an absolute path."""
    url = url.strip()
    if url.startswith("unix://") and not url.startswith("unix:///"):
        return "unix:///" + url[len("unix://"):]
    if url.startswith("/"):
        return "unix://" + url
    return url


def parse_engines(text: str) -> list[Engine]:
    """Comma-separated ``URL[?address=IP|published]`` items."""
    engines: list[Engine] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        url, _, query = item.partition("?")
        address = ""
        if query:
            key, sep, value = query.partition("=")
            if key != "address" or not sep or not value:
                raise argparse.ArgumentTypeError(f"{item!r}: an engine takes one option, ?address=IP or "
                                                 "?address=published")
            address = PUBLISHED if value == PUBLISHED else _ip(value, item)
        engines.append(Engine(normalize_docker_url(url), address))
    if not engines:
        raise argparse.ArgumentTypeError(f"{text!r} names no engine")
    return engines


def is_own_address(server: Address, listen: Address) -> bool:
    """Would forwarding to ``server`` send the query back to dnscock itself?"""
    if server.port != listen.port:
        return False
    if server.host == listen.host:
        return True
    address = ipaddress.ip_address(server.host)
    return listen.is_wildcard and (address.is_loopback or address.is_unspecified)


# -- the parser --


class _Parser(configargparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line that names the option, exit code 2 (as argparse), no usage dump.
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(2)


def _option(parser: _Parser, name: str, help_text: str, shown_default: str = "%(default)s", **kwargs) -> None:
    """Adds ``-name``, ``--name``, ``DNSCOCK_NAME`` and the config key ``name``."""
    env_var = ENV_PREFIX + name.upper().replace("-", "_")
    parser.add_argument(f"-{name}", f"--{name}", env_var=env_var, help=f"{help_text} (default: {shown_default})",
                        **kwargs)


def _flag(parser: _Parser, name: str, help_text: str, default: bool) -> None:
    # nargs="?" takes the Go forms -debug, -debug=true, -debug=false and --debug.
    _option(parser, name, help_text, type=parse_bool, nargs="?", const=True, default=default, metavar="BOOL")


def build_parser(environ: dict[str, str]) -> _Parser:
    parser = _Parser(
        prog="dnscock",
        description="DNS server for automatic Docker container discovery.",
        epilog="'dnscock records [--http ADDR] [--json]' prints the live table of a running dnscock "
               "(one started with -http); 'dnscock host-setup [--apply|--remove]' sets the host's resolvers and "
               "Docker up to ask it.",
        add_help=False,
        allow_abbrev=False,
        default_config_files=[DEFAULT_CONFIG_FILE],
        ignore_unknown_config_file_keys=False,
        args_for_setting_config_path=[],
    )
    parser.add_argument("-h", "-help", "--help", action="help", help="show this message and exit")
    parser.add_argument(
        "-version", "--version", action="version", version=f"dnscock {__version__}",
        help="print the version and exit",
    )
    parser.add_argument(
        "-config", "--config", is_config_file=True, env_var="DNSCOCK_CONFIG", metavar="FILE",
        help=f"read options from this file of 'name = value' lines (default: {DEFAULT_CONFIG_FILE} when present)",
    )
    _option(parser, "dns", "listen for DNS requests on this address; bridge[:PORT]: on the gateway of the first "
            "engine's default bridge, followed when it changes", type=parse_listen, default=":53", metavar="ADDR")
    _option(
        parser, "docker", "Docker or Podman engine(s) to watch: unix:///path or tcp://host:port, with ?address=IP "
        "where its host is reached from elsewhere, or ?address=published to answer the host addresses containers "
        "publish ports on (rootless engines: by itself; Docker Desktop, WSL) (repeatable, or comma-separated)",
        shown_default=f"$DOCKER_HOST, else $CONTAINER_HOST, else {DEFAULT_DOCKER_URL}", type=parse_engines, action="append", default=None,
        metavar="URL",
    )
    _option(parser, "domain", "domain that is appended to all local names", type=parse_domain, default="docker")
    _option(parser, "environment", "optional context before the domain suffix", type=parse_environment, default="")
    _option(
        parser, "nameserver",
        "DNS server(s) for unmatched requests: host[:port], comma-separated or repeated, or resolv.conf / a path; "
        "/domain/host[:port] for one domain's names (more /domain/ before one server; the longest match wins)",
        shown_default=str(DEFAULT_NAMESERVER), type=parse_nameservers, action="append", default=None, metavar="ADDR",
    )
    _option(parser, "ttl", "TTL in seconds of local answers", type=parse_ttl, default=0, metavar="SECONDS")
    _flag(parser, "debug", "log every query and its answer", default=False)
    _flag(parser, "verbose", "log containers added and removed, and engine (dis)connects", default=True)
    _option(parser, "timeout", "seconds to wait for an upstream answer before SERVFAIL",
            type=parse_seconds, default=2.0, metavar="SECONDS")
    _option(parser, "forward-pool", "most queries forwarded at once; more get SERVFAIL at once",
            type=parse_count, default=1000, metavar="N")
    _option(parser, "sync-timeout", "seconds a local query waits for the first sync with the engine",
            type=parse_seconds, default=3.0, metavar="SECONDS")
    _option(parser, "udp-payload", "largest UDP reply dnscock offers in EDNS0 (512 to 4096 bytes)",
             type=parse_udp_payload, default=1232, metavar="BYTES")
    _option(parser, "tcp-idle-timeout", "seconds an idle DNS-over-TCP connection stays open",
            type=parse_seconds, default=10.0, metavar="SECONDS")
    _option(parser, "tcp-connections", "most DNS-over-TCP connections served at once; more wait",
            type=parse_count, default=256, metavar="N")
    _option(parser, "max-fails", "unanswered queries in a row after which an upstream is skipped "
            "until a background probe gets an answer (0: never skip)", type=parse_whole, default=3, metavar="N")
    _option(parser, "cache-size", "forwarded answers kept in the cache (0: no forward cache)",
            type=parse_whole, default=10000, metavar="N")
    _option(parser, "local-cache-size", "local answers kept ready as bytes until a container changes (0: none)",
            type=parse_whole, default=10000, metavar="N")
    _option(parser, "network", "only answer with addresses on this network (repeatable, or comma-separated)",
            shown_default="every network", type=parse_names, action="append", default=None, metavar="NAME")
    _option(parser, "host-ip", "the address containers in network mode host answer with (else they are skipped)",
            type=parse_host_ip, default="", metavar="IP")
    _flag(parser, "compose-names", "also answer <service>.<project>.<domain> for compose containers", default=True)
    parser.add_argument("-no-compose-names", "--no-compose-names", dest="compose_names", action="store_const",
                        const=False, help="same as -compose-names=false")
    _option(parser, "host-name", "<NAME>.<domain> answers the host as containers reach it (-host-ip, else the "
            "default bridge's gateway); empty: none", type=parse_label, default="host", metavar="NAME")
    _option(parser, "records", "read static records from this file (repeatable, or comma-separated): hosts-file "
            "lines and 'name [ttl] TYPE value' lines; read again when it changes, and on SIGHUP", shown_default="none",
            type=parse_names, action="append", default=None, metavar="FILE")
    _flag(parser, "split-horizon", "a client in the subnet of some of a container's networks gets its addresses "
          "on those networks only (else every address)", default=True)
    _flag(parser, "container-names", "also answer <container-name>.<domain>, whatever the image", default=False)
    _flag(parser, "proxy-names", "answer the names in reverse proxies' labels (Traefik rules, nginx-proxy's "
          "VIRTUAL_HOST, caddy labels) with the proxy's address", default=True)
    _flag(parser, "network-aliases", "answer a container's aliases on user-defined networks", default=False)
    _flag(parser, "hostnames", "answer a container's explicit hostname", default=False)
    _flag(parser, "serve-unhealthy", "keep serving containers whose healthcheck says unhealthy", default=False)
    _option(parser, "grace", "seconds a stopped container's names answer NOERROR with no records (0: none)",
            type=parse_nonnegative_seconds, default=10.0, metavar="SECONDS")
    _option(parser, "resync-interval", "seconds between full re-listings of the engine's containers (0: never)",
            type=parse_nonnegative_seconds, default=60.0, metavar="SECONDS")
    _option(parser, "http", "serve the HTTP API, /health and /metrics on this address (off when empty)",
            type=parse_optional_listen, default="", metavar="ADDR")
    _option(parser, "http-token", "bearer token HTTP writes (PUT, PATCH, DELETE) must carry; without one, "
            "writes are only accepted when -http is a loopback address", default="", metavar="TOKEN")
    _option(parser, "query-log", "keep the last N queries in memory for GET /queries and the page (alone: "
            f"{DEFAULT_QUERY_LOG}; false or 0: off)", type=parse_query_log, nargs="?", const=DEFAULT_QUERY_LOG,
            default=0, metavar="N")
    _flag(parser, "log-queries", "write a line per query to the log", default=False)
    _option(parser, "allow-from", "clients (CIDR list, or 'any') that get answers; others get REFUSED",
            type=parse_networks, default=DEFAULT_ALLOW_FROM, metavar="CIDRS")
    _option(parser, "rate-limit", "most UDP replies a second to one client /24 (IPv4) or /56 (IPv6); 0: no limit",
            type=parse_whole, default=0, metavar="N")
    _option(parser, "rate-limit-slip", "over the rate limit, every Nth reply goes out truncated (TC) instead of "
            "being dropped, so real clients retry over TCP (0: drop all)", type=parse_whole, default=2, metavar="N")
    _flag(parser, "tlsverify", "talk TLS to the engine and verify its certificate (as docker's --tlsverify)",
          default=bool(environ.get("DOCKER_TLS_VERIFY")))
    cert_path = environ.get("DOCKER_CERT_PATH") or os.path.join(os.path.expanduser("~"), ".docker")
    for name, file_name, what in (("tlscacert", "ca.pem", "CA certificate the engine's certificate must chain to"),
                                  ("tlscert", "cert.pem", "client certificate shown to the engine"),
                                  ("tlskey", "key.pem", "private key of the client certificate")):
        _option(parser, name, f"{what}, for -tlsverify", default=os.path.join(cert_path, file_name), metavar="FILE")
    _option(parser, "user", "started as root, switch to this user (name or uid[:gid]) once the ports are bound",
            type=parse_user, default="", metavar="USER")
    _option(parser, "swarm", "swarm services: auto (read them from a manager among the engines, else from a "
            "worker's swarm networks) or off (each engine's own containers only)", type=parse_swarm_mode,
            default="auto", metavar="MODE")
    _option(parser, "swarm-poll", "seconds between two listings of a swarm's tasks (Docker has no task events)",
            type=parse_seconds, default=1.0, metavar="SECONDS")
    _option(parser, "host-resolver", "register the domain with the host's resolver: resolved (systemd-resolved, "
            "over D-Bus), auto (when systemd-resolved runs) or none", type=parse_host_resolver, default="none",
            metavar="MODE")
    _option(parser, "host-resolver-address", "address of the link dnscock makes for systemd-resolved (nothing is "
            "sent to it)", type=parse_interface, default="169.254.53.53/32", metavar="IP[/PREFIX]")
    _option(parser, "ns-address", "address(es) of dnscock's own name, the NS of the zone (repeatable or "
            "comma-separated)", shown_default="the -dns address when it is a specific one, else the host's",
            type=parse_ips, action="append", default=None, metavar="IP")
    return parser


def load_config(argv: Sequence[str] | None = None, environ: dict[str, str] | None = None) -> Config:
    """Parses options; on a bad value prints one line naming the option and exits with code 2."""
    environ = dict(os.environ if environ is None else environ)
    parser = build_parser(environ)
    args = parser.parse_args(args=list(sys.argv[1:] if argv is None else argv), env_vars=environ)
    given = [server for group in (args.nameserver or []) for server in group]
    by_domain: dict[str, list[Address]] = {}
    for server in given:
        for domain in server.domains:
            if not is_own_address(server.address, args.dns):
                by_domain.setdefault(domain, []).append(server.address)
    nameservers = [server.address for server in given if not server.domains] or [DEFAULT_NAMESERVER]
    nameservers = [server for server in dict.fromkeys(nameservers) if not is_own_address(server, args.dns)]
    if not nameservers:
        parser.error(f"argument -nameserver/--nameserver: only dnscock's own address {args.dns} was given")
    if isinstance(args.allow_from, str):  # the default, given as text
        args.allow_from = parse_networks(args.allow_from)
    derived = {
        "listen": args.dns,
        "engines": tuple(dict.fromkeys(engine for group in (args.docker or [parse_engines(
            environ.get("DOCKER_HOST") or environ.get("CONTAINER_HOST") or DEFAULT_DOCKER_URL)]) for engine in group)),
        "nameservers": tuple(nameservers),
        "domain_nameservers": tuple((domain, tuple(dict.fromkeys(servers))) for domain, servers in
                                    sorted(by_domain.items())),
        "networks": frozenset(name for group in (args.network or []) for name in group),
        "ns_address": tuple(dict.fromkeys(address for group in (args.ns_address or []) for address in group)),
        "records": tuple(dict.fromkeys(path for group in (args.records or []) for path in group)),
    }
    # Every other field is the option of the same name.
    return Config(**{field.name: derived[field.name] if field.name in derived else getattr(args, field.name)
                     for field in fields(Config)})
