"""Options: flags, ``DNSCOCK_*`` env vars and a config file -> a frozen ``Config``.

This is the only module that reads argv, the environment and config files.
The options themselves (names, defaults, help, value parsers) are the table
in ``options.py``; this module makes the parser from it. Every option has
three spellings (``--ttl 5`` / ``DNSCOCK_TTL=5`` / ``ttl = 5``) and the Go
program's single-dash form (``-ttl=5``) keeps working.
Precedence: flag > env var > config file > default.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, NoReturn

import configargparse

from dnscock import __version__
from dnscock.addresses import Address, Engine, IPNetwork
from dnscock.options import (
    DEFAULT_CONFIG_FILE,
    DEFAULT_DOCKER_URL,
    DEFAULT_NAMESERVER,
    FLAG,
    LIST,
    OPTIONAL_NUMBER,
    OPTIONS,
)
from dnscock.values import DEFAULT_QUERY_LOG, parse_bool, parse_engines, split_host_port

__all__ = ["Address", "Config", "Engine", "build_parser", "is_own_address", "load_config"]


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


# -- the parser --


class _Parser(configargparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line that names the option, exit code 2 (as argparse), no usage dump.
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(2)


class _Help(argparse.Action):
    """``-help`` (``-h``, ``--help``, ``-help=true``): the options, then exit. The Go program's ``-help=false``, its
    default spelled out on a command line, is accepted and does nothing."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs="?", const=True, default=argparse.SUPPRESS, type=parse_bool,
                         metavar="BOOL", **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        if values:
            parser.print_help()
            parser.exit()


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
    parser.add_argument("-h", "-help", "--help", action=_Help, help="show this message and exit (-help=false: "
                        "nothing, as in the Go program)")
    parser.add_argument(
        "-version", "--version", action="version", version=f"dnscock {__version__}",
        help="print the version and exit",
    )
    parser.add_argument(
        "-config", "--config", is_config_file=True, env_var="DNSCOCK_CONFIG", metavar="FILE",
        help=f"read options from this file of 'name = value' lines (default: {DEFAULT_CONFIG_FILE} when present)",
    )
    for option in OPTIONS:
        spelled = {"env_var": option.env_var, "metavar": option.metavar, "type": option.parse,
                   "help": f"{option.help} (default: {option.shown_default or '%(default)s'})"}
        if option.kind == LIST:
            # Each use is a list of its own (comma-separated); load_config joins them.
            spelled.update(action="append", default=None)
        elif option.kind in (FLAG, OPTIONAL_NUMBER):
            # nargs="?" takes the Go forms -debug, -debug=true, -debug=false and --debug.
            const = True if option.kind == FLAG else DEFAULT_QUERY_LOG
            spelled.update(nargs="?", const=const, default=option.parse(option.default_text(environ)))
        else:
            spelled.update(default=option.parse(option.default_text(environ)))
        parser.add_argument(f"-{option.name}", f"--{option.name}", **spelled)
    parser.add_argument("-no-compose-names", "--no-compose-names", dest="compose_names", action="store_const",
                        const=False, help="same as -compose-names=false")
    return parser


def is_own_address(server: Address, listen: Address) -> bool:
    """Would forwarding to ``server`` send the query back to dnscock itself?"""
    if server.port != listen.port:
        return False
    if server.host == listen.host:
        return True
    address = ipaddress.ip_address(server.host)
    return listen.is_wildcard and (address.is_loopback or address.is_unspecified)



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
    nameservers = [server.address for server in given if not server.domains] or [split_host_port(
        DEFAULT_NAMESERVER, 53)]
    nameservers = [server for server in dict.fromkeys(nameservers) if not is_own_address(server, args.dns)]
    if not nameservers:
        parser.error(f"argument -nameserver/--nameserver: only dnscock's own address {args.dns} was given")
    derived = {
        "listen": args.dns,
        "engines": tuple(dict.fromkeys(engine for group in (args.docker or [parse_engines(
            environ.get("DOCKER_HOST") or environ.get("CONTAINER_HOST") or DEFAULT_DOCKER_URL)])
            for engine in group)),
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
