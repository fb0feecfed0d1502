"""The table of options: each one's name, default, help and value parser, written once.

Everything else reads it: the parser (``config.py``: ``-name``, ``--name``,
``DNSCOCK_NAME`` and ``name = value`` in a config file), ``--help``, the
defaults of the ``*Options`` objects (``default("grace")``), the sample
``conf/dnscock.conf`` and ``docs/options.md``. The last two are generated
(``python -m dnscock.options conf|docs``), and a test fails when a file and
the table differ.
"""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from dnscock import values

ENV_PREFIX = "DNSCOCK_"
DEFAULT_CONFIG_FILE = "/etc/dnscock/dnscock.conf"
DEFAULT_DOCKER_URL = "unix:///var/run/docker.sock"
DEFAULT_NAMESERVER = "8.8.8.8:53"
# Who may query by default: loopback, RFC 1918, RFC 4193 and link-local; never the open internet.
DEFAULT_ALLOW_FROM = "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7,169.254.0.0/16,fe80::/10"

VALUE, FLAG, LIST, OPTIONAL_NUMBER = "value", "flag", "list", "optional number"


def _cert_default(file_name: str) -> Callable[[Mapping[str, str]], str]:
    def default(environ: Mapping[str, str]) -> str:
        return os.path.join(environ.get("DOCKER_CERT_PATH") or os.path.join(os.path.expanduser("~"), ".docker"),
                            file_name)

    return default


@dataclass(frozen=True)
class Option:
    """One option. ``default`` is text, read by ``parse`` like a given value (what the docs show);
    ``from_environ`` computes it from docker's own variables where docker does (the TLS options)."""

    name: str
    help: str
    default: str = ""
    parse: Callable[[str], Any] = str
    metavar: str = "VALUE"
    kind: str = VALUE  # VALUE; FLAG: true/false, alone means true; LIST: repeatable or comma-separated
    shown_default: str = ""  # what --help and the docs say when the default is not one value
    details: str = ""  # more for the sample config and the docs
    from_environ: Callable[[Mapping[str, str]], str] | None = None

    @property
    def env_var(self) -> str:
        return ENV_PREFIX + self.name.upper().replace("-", "_")

    @property
    def attribute(self) -> str:
        return self.name.replace("-", "_")

    def default_text(self, environ: Mapping[str, str] | None = None) -> str:
        return self.from_environ(os.environ if environ is None else environ) if self.from_environ else self.default

    def default_value(self) -> Any:
        """The parsed default, without the environment: what the ``*Options`` objects start from."""
        if self.kind == LIST and not self.default:
            return ()
        return self.parse(self.default_text({}))

    @property
    def shown(self) -> str:
        """The default as a person reads it."""
        return self.shown_default or self.default or "none"


def _flag(name: str, help_text: str, default: bool, details: str = "") -> Option:
    return Option(name, help_text, "true" if default else "false", values.parse_bool, "BOOL", FLAG, details=details)


OPTIONS: tuple[Option, ...] = (
    Option("dns", "listen for DNS requests on this address; bridge[:PORT]: on the gateway of the first engine's "
           "default bridge, followed when it changes", ":53", values.parse_listen, "ADDR",
           details='":53" is every address. "bridge" (or bridge:PORT) is where containers reach the host: give them '
                   "--dns with it."),
    Option("docker", "Docker or Podman engine(s) to watch: unix:///path or tcp://host:port, with ?address=IP where "
           "its host is reached from elsewhere, or ?address=published to answer the host addresses containers "
           "publish ports on (rootless engines: by itself; Docker Desktop, WSL)", DEFAULT_DOCKER_URL,
           values.parse_engines, "URL", LIST,
           shown_default=f"$DOCKER_HOST, else $CONTAINER_HOST, else {DEFAULT_DOCKER_URL}",
           details="Several engines: each host's engine, or several managers of a swarm. With ?address=IP, the "
                   "containers of that engine that publish ports answer IP, and SRV gives the published port. A "
                   "Podman socket works too (unix:///run/podman/podman.sock)."),
    Option("domain", "domain that is appended to all local names", "docker", values.parse_domain, "DOMAIN"),
    Option("environment", "optional context before the domain suffix", "", values.parse_environment, "NAME",
           details="Names are then <name>.<image>.<environment>.<domain>."),
    Option("nameserver", "DNS server(s) for unmatched requests: host[:port], comma-separated or repeated, or "
           "resolv.conf / a path; /domain/host[:port] for one domain's names (more /domain/ before one server; "
           "the longest match wins)", DEFAULT_NAMESERVER, values.parse_nameservers, "ADDR", LIST,
           details="Tried in order; resolv.conf uses the nameservers listed in /etc/resolv.conf."),
    Option("ttl", "TTL in seconds of local answers", "0", values.parse_ttl, "SECONDS",
           details="A container's DNSDOCK_TTL overrides it."),
    _flag("debug", "log every query and its answer", False),
    _flag("verbose", "log containers added and removed, and engine (dis)connects", True),
    Option("timeout", "seconds to wait for an upstream answer before SERVFAIL", "2.0", values.parse_seconds,
           "SECONDS"),
    Option("forward-pool", "most queries forwarded at once; more get SERVFAIL at once", "1000", values.parse_count,
           "N"),
    Option("sync-timeout", "seconds a local query waits for the first sync with the engine", "3.0",
           values.parse_seconds, "SECONDS"),
    Option("udp-payload", "largest UDP reply dnscock offers in EDNS0 (512 to 4096 bytes)", "1232",
           values.parse_udp_payload, "BYTES",
           details="A larger answer is truncated (TC) and the client asks again over TCP."),
    Option("tcp-idle-timeout", "seconds an idle DNS-over-TCP connection stays open", "10.0", values.parse_seconds,
           "SECONDS", details="RFC 7766."),
    Option("tcp-connections", "most DNS-over-TCP connections served at once; more wait", "256", values.parse_count,
           "N"),
    Option("max-fails", "unanswered queries in a row after which an upstream is skipped until a background probe "
           "gets an answer (0: never skip)", "3", values.parse_whole, "N",
           details='The probe asks ". NS", one at a time.'),
    Option("cache-size", "forwarded answers kept in the cache (0: no forward cache)", "10000", values.parse_whole,
           "N", details="Each for its TTL (negative answers for their SOA minimum); served TTLs count down."),
    Option("local-cache-size", "local answers kept ready as bytes until a container changes (0: none)", "10000",
           values.parse_whole, "N"),
    Option("network", "only answer with addresses on this network (repeatable, or comma-separated)", "",
           values.parse_names, "NAME", LIST, shown_default="every network"),
    Option("host-ip", "the address containers in network mode host answer with (else they are skipped)", "",
           values.parse_host_ip, "IP"),
    _flag("compose-names", "also answer <service>.<project>.<domain> for compose containers (-no-compose-names: "
          "false)", True),
    Option("host-name", "<NAME>.<domain> answers the host as containers reach it (-host-ip, else the default "
           "bridge's gateway); empty: none", "host", values.parse_label, "NAME",
           details="The gateway of each engine's default bridge, and its IPv6 gateway when the bridge has IPv6."),
    Option("records", "read static records from this file (repeatable, or comma-separated): hosts-file lines and "
           "'name [ttl] TYPE value' lines; read again when it changes, and on SIGHUP", "", values.parse_names,
           "FILE", LIST,
           details='Hosts-file lines are "IP name [name...]"; one-record lines "name [ttl] TYPE value" for A, AAAA, '
                   'CNAME, TXT, SRV, MX, PTR; "*." in front of a name for a wildcard. A file with a bad line is '
                   "rejected whole (its last version keeps serving)."),
    _flag("split-horizon", "a client in the subnet of some of a container's networks gets its addresses on those "
          "networks only (else every address)", True,
          details="Every other client (the host, loopback, a network the container is not on) gets all of them."),
    _flag("container-names", "also answer <container-name>.<domain>, whatever the image", False),
    _flag("proxy-names", "answer the names in reverse proxies' labels (Traefik rules, nginx-proxy's VIRTUAL_HOST, "
          "caddy labels) with the proxy's address", True,
          details="The proxy container that serves them, else the host."),
    _flag("network-aliases", "answer a container's aliases on user-defined networks", False),
    _flag("hostnames", "answer a container's explicit hostname", False),
    _flag("serve-unhealthy", "keep serving containers whose healthcheck says unhealthy", False),
    Option("grace", "seconds a stopped container's names answer NOERROR with no records (0: none)", "10.0",
           values.parse_nonnegative_seconds, "SECONDS",
           details='With TTL 0, instead of NXDOMAIN, so that a restart is not cached as "no such name".'),
    Option("resync-interval", "seconds between full re-listings of the engine's containers (0: never)", "60.0",
           values.parse_nonnegative_seconds, "SECONDS"),
    Option("http", "serve the HTTP API, /health and /metrics on this address (off when empty)", "",
           values.parse_optional_listen, "ADDR", details="E.g. 127.0.0.1:8080; also the page, at /."),
    Option("http-token", "bearer token HTTP writes (PUT, PATCH, DELETE) must carry; without one, writes are only "
           "accepted when -http is a loopback address", "", str, "TOKEN"),
    Option("query-log", "keep the last N queries in memory for GET /queries and the page (alone: "
           f"{values.DEFAULT_QUERY_LOG}; false or 0: off)", "0", values.parse_query_log, "N", OPTIONAL_NUMBER),
    _flag("log-queries", "write a line per query to the log", False),
    Option("allow-from", "clients (CIDR list, or 'any') that get answers; others get REFUSED", DEFAULT_ALLOW_FROM,
           values.parse_networks, "CIDRS"),
    Option("rate-limit", "most UDP replies a second to one client /24 (IPv4) or /56 (IPv6); 0: no limit", "0",
           values.parse_whole, "N"),
    Option("rate-limit-slip", "over the rate limit, every Nth reply goes out truncated (TC) instead of being "
           "dropped, so real clients retry over TCP (0: drop all)", "2", values.parse_whole, "N"),
    Option("tlsverify", "talk TLS to the engine and verify its certificate (as docker's --tlsverify)", "false",
           values.parse_bool, "BOOL", FLAG, shown_default="whether $DOCKER_TLS_VERIFY is set",
           from_environ=lambda environ: "true" if environ.get("DOCKER_TLS_VERIFY") else "false"),
    Option("tlscacert", "CA certificate the engine's certificate must chain to, for -tlsverify", "", str, "FILE",
           shown_default="$DOCKER_CERT_PATH (else ~/.docker)/ca.pem", from_environ=_cert_default("ca.pem")),
    Option("tlscert", "client certificate shown to the engine, for -tlsverify", "", str, "FILE",
           shown_default="$DOCKER_CERT_PATH (else ~/.docker)/cert.pem", from_environ=_cert_default("cert.pem")),
    Option("tlskey", "private key of the client certificate, for -tlsverify", "", str, "FILE",
           shown_default="$DOCKER_CERT_PATH (else ~/.docker)/key.pem", from_environ=_cert_default("key.pem")),
    Option("user", "started as root, switch to this user (name or uid[:gid]) once the ports are bound", "",
           values.parse_user, "USER"),
    Option("swarm", "swarm services: auto (read them from a manager among the engines, else from a worker's swarm "
           "networks) or off (each engine's own containers only)", "auto", values.parse_swarm_mode, "MODE"),
    Option("swarm-poll", "seconds between two listings of a swarm's tasks (Docker has no task events)", "1.0",
           values.parse_seconds, "SECONDS", details="And soon after a service, node or network event."),
    Option("host-resolver", "register the domain with the host's resolver: resolved (systemd-resolved, over "
           "D-Bus), auto (when systemd-resolved runs) or none", "none", values.parse_host_resolver, "MODE",
           details="With the containers' reverse zones, on a link of dnscock's own. Needs root (-user drops it "
                   "after)."),
    Option("host-resolver-address", "address of the link dnscock makes for systemd-resolved (nothing is sent to "
           "it)", "169.254.53.53/32", values.parse_interface, "IP[/PREFIX]"),
    Option("ns-address", "address(es) of dnscock's own name, the NS of the zone (repeatable or comma-separated)", "",
           values.parse_ips, "IP", LIST,
           shown_default="the -dns address when it is a specific one, else the host's"),
)

BY_NAME: dict[str, Option] = {option.name: option for option in OPTIONS}


@cache
def default(name: str) -> Any:
    """The parsed default of option ``name`` (``default("grace") == 10.0``)."""
    return BY_NAME[name].default_value()


# -- the generated files --


CONFIG_HEADER = """\
# dnscock configuration file: "name = value" lines, named like the flags.
#
# dnscock reads /etc/dnscock/dnscock.conf when it exists, or the file given
# with --config FILE (or DNSCOCK_CONFIG=FILE). Every option can also be set
# by a flag (-ttl=5, --ttl 5) or an env var (DNSCOCK_TTL=5);
# precedence: flag > env var > this file > default.
# The values below are the defaults; uncomment a line to change it.
#
# Generated from dnscock/options.py (python -m dnscock.options conf).
"""


def _sentence(text: str) -> str:
    text = text[0].upper() + text[1:]
    return text if text.endswith(".") else text + "."


def sample_config() -> str:
    """``conf/dnscock.conf``: every option, commented out at its default, with what it does."""
    parts = [CONFIG_HEADER]
    for option in OPTIONS:
        about = _sentence(option.help) + (" " + option.details if option.details else "")
        if option.shown_default:
            about += f" Default: {option.shown_default}."
        lines = textwrap.wrap(about, 77, break_on_hyphens=False)
        parts.append("\n".join(f"# {line}" for line in lines) + f"\n# {option.name} = {option.default}".rstrip()
                     + "\n")
    return "\n".join(parts)


def _cell(text: str) -> str:
    """Table cell text: a "|" would end the cell, a "<name>" would be taken for HTML."""
    return text.replace("|", "\\|").replace("<", "\\<")


def options_markdown() -> str:
    """``docs/options.md``: every option in one table, with its three spellings."""
    rows = [
        "# Options",
        "",
        "Every option has three spellings: a flag (`-ttl=5`, `--ttl 5`, or the Go program's `-ttl 5`), an env var",
        "(`DNSCOCK_TTL=5`) and a line of the config file (`ttl = 5` in `/etc/dnscock/dnscock.conf`, or the file of",
        "`-config FILE` / `DNSCOCK_CONFIG`). Precedence: flag > env var > config file > default. A flag that is",
        "true or false also takes `-debug` alone (true) and `-debug=false`. Repeatable options take several",
        "values comma-separated, or the flag again. A bad value stops dnscock with one line naming the option.",
        "",
        "Generated from `dnscock/options.py` (`python -m dnscock.options docs`); a test fails when they differ.",
        "",
        "| flag | env var | config file | default | what it does |",
        "|---|---|---|---|---|",
    ]
    for option in OPTIONS:
        value = "BOOL" if option.kind == FLAG else option.metavar
        flag = f"`-{option.name}={value}`" + (" (repeatable)" if option.kind == LIST else "")
        about = _sentence(option.help) + (" " + option.details if option.details else "")
        rows.append(f"| {flag} | `{option.env_var}` | `{option.name} = {value}` | {_cell(option.shown)} | "
                    f"{_cell(about)} |")
    rows += ["", "`-config FILE` (`DNSCOCK_CONFIG`): the config file to read (default: "
             f"`{DEFAULT_CONFIG_FILE}` when present). `-h`, `-help`, `--help`: the options; `-version`.", ""]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    what = (argv if argv is not None else sys.argv[1:]) or [""]
    if what[0] == "conf":
        sys.stdout.write(sample_config())
    elif what[0] == "docs":
        sys.stdout.write(options_markdown())
    else:
        sys.stderr.write("usage: python -m dnscock.options conf|docs\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
