"""Option values: the parsers that turn the text of a flag, env var or config line into a value.

Each raises ``argparse.ArgumentTypeError`` with a message for humans, which
the parser prints on one line after the option's name.
"""

from __future__ import annotations

import argparse
import ipaddress
from collections.abc import Callable
from typing import Any

from dnscock.addresses import PUBLISHED, Address, Engine, IPNetwork, Nameserver
from dnscock.dnsname import is_valid_label, is_valid_name, split_name

DEFAULT_RESOLV_CONF = "/etc/resolv.conf"
DEFAULT_QUERY_LOG = 1000  # queries -query-log keeps when given without a number


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


def number(kind: type[int] | type[float], unit: str, low: float = 0, high: float | None = None,
           above_low: bool = False) -> Callable[[str], Any]:
    """A parser of numbers of ``kind`` from ``low`` (excluded with ``above_low``) to ``high`` (or no end), whose
    error says the range: ``'x' is not a whole number of seconds (0 to 2147483647)``."""
    def shown(bound: float) -> str:
        return str(int(bound)) if float(bound).is_integer() else str(bound)

    if above_low:
        span = f"more than {shown(low)}"
    elif high is None:
        span = f"{shown(low)} or more"
    else:
        span = f"{shown(low)} to {shown(high)}"

    def parse(text: str) -> Any:
        try:
            value = kind(text.strip()) if kind is float or text.strip().isdigit() else None
        except ValueError:
            value = None
        if (value is None or value != value or value in (float("inf"), float("-inf"))
                or value < low or (above_low and value == low) or (high is not None and value > high)):
            raise argparse.ArgumentTypeError(f"{text!r} is not a {unit} ({span})")
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


parse_ttl = number(int, "whole number of seconds", 0, 2**31 - 1)
parse_whole = number(int, "whole number")
parse_count = number(int, "whole number", above_low=True)
parse_seconds = number(float, "number of seconds", above_low=True)
parse_nonnegative_seconds = number(float, "number of seconds")
parse_udp_payload = number(int, "number of bytes", 512, 4096)


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
