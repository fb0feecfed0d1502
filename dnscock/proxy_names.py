"""Names from the reverse proxy the user runs: Traefik rules, nginx-proxy's VIRTUAL_HOST, caddy-docker-proxy labels.

Pure: ``facts_from`` reads what one container says (which proxy it is, which
names it asks a proxy to serve), ``proxy_records`` turns the facts of one
source's records into records of their own (kind ``proxy``), each name
answering the address of the proxy that serves it, not the app's.

* Traefik v2/v3: each ``traefik.http.routers.<router>.rule`` label; every
  ``Host(`a`)`` in it (``Host(`a`, `b`)`` too, in rules joined with ``||``,
  ``&&`` and parentheses) is a name. ``HostRegexp``, ``HostSNI``, a negated
  ``!Host`` and rules without a host are not names. ``traefik.enable=false``
  keeps a container out; with a Traefik started with
  ``--providers.docker.exposedbydefault=false`` only containers labelled
  ``traefik.enable=true`` are in.
* nginx-proxy (and acme-companion): ``VIRTUAL_HOST=a.example.test,b.example.test``;
  regular expressions (``~...``) are not names.
* caddy-docker-proxy: ``caddy`` and ``caddy_N`` labels holding site addresses
  (``a.example.test b.example.test``, with or without scheme, port or path).

``*.example.test`` is a wildcard name (RFC 4592, as wildcard aliases). A
proxy is recognised by its image (``traefik``, ``nginxproxy/nginx-proxy`` or
``jwilder/nginx-proxy``, ``lucaslorentz/caddy-docker-proxy``, from any
registry, any tag) or the label ``com.dnscock.proxy=traefik|nginx-proxy|caddy``.
When no proxy of the kind runs on the same engine, the name answers the host
(its ``host.<domain>`` record: the proxy publishes its ports there).
"""

from __future__ import annotations

import ipaddress
import logging
import re
import sys
from collections.abc import Iterable, Mapping, Sequence

import gevent

from dnscock.dnsname import is_valid_name
from dnscock.records import ProxyFacts, ProxyName, Record, RecordStore

log = logging.getLogger("dnscock.proxy")

TRAEFIK, NGINX_PROXY, CADDY = "traefik", "nginx-proxy", "caddy"
KINDS = (TRAEFIK, NGINX_PROXY, CADDY)
PROXY_LABEL = "com.dnscock.proxy"
# Image repositories (the part before any tag or digest, without the registry), by proxy kind.
_IMAGES = {"traefik": TRAEFIK, "library/traefik": TRAEFIK, "nginxproxy/nginx-proxy": NGINX_PROXY,
           "jwilder/nginx-proxy": NGINX_PROXY, "lucaslorentz/caddy-docker-proxy": CADDY}
_TRAEFIK_RULE = re.compile(r"^traefik\.http\.routers\.([^.]+)\.rule$")
_CADDY_LABEL = re.compile(r"^caddy(_\d+)?$")
# A Host(...) matcher not negated: "Host" as a whole word (not HostRegexp, HostSNI, HostHeader).
_HOST_MATCHER = re.compile(r"(!\s*)?\bHost\s*\(")
_QUOTED = re.compile(r"\s*(`[^`]*`|\"[^\"]*\")\s*(,|\))")
_OPT_IN = re.compile(r"--providers\.docker\.exposedbydefault(=|\s+)false\b", re.IGNORECASE)


def image_repository(reference: str) -> str:
    """``registry.example.com:5000/nginxproxy/nginx-proxy:1.6@sha256:...`` -> ``nginxproxy/nginx-proxy``."""
    path = reference.strip().lower().split("@", 1)[0]
    parts = path.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        parts = parts[1:]  # a registry
    path = "/".join(parts)
    return path.rsplit(":", 1)[0] if ":" in path.rsplit("/", 1)[-1] else path


def proxy_kind(image: str, labels: Mapping[str, str]) -> str:
    """The kind of proxy a container is: its ``com.dnscock.proxy`` label, else its image; "" for none."""
    label = str(labels.get(PROXY_LABEL) or "").strip().lower()
    if label in KINDS:
        return label
    return _IMAGES.get(image_repository(image), "")


def traefik_hosts(rule: str) -> list[str] | None:
    """The host names a Traefik rule matches with ``Host``; None when a ``Host(...)`` in it cannot be read."""
    hosts: list[str] = []
    for matcher in _HOST_MATCHER.finditer(rule):
        position, found = matcher.end(), []
        while True:
            argument = _QUOTED.match(rule, position)
            if argument is None:
                return None
            found.append(argument.group(1)[1:-1])
            position = argument.end()
            if argument.group(2) == ")":
                break
        if not matcher.group(1):  # a negated Host serves nothing
            hosts += found
    return hosts


def virtual_hosts(value: str) -> tuple[list[str], list[str]]:
    """nginx-proxy's VIRTUAL_HOST: (the host names, the entries that are not: regular expressions)."""
    entries = [entry.strip() for entry in value.split(",") if entry.strip()]
    return [entry for entry in entries if not entry.startswith("~")], [entry for entry in entries
                                                                       if entry.startswith("~")]


def caddy_hosts(value: str) -> list[str]:
    """The host names of a caddy site address list (scheme, port and path dropped; snippets and bare ports not)."""
    hosts = []
    for address in re.split(r"[\s,]+", value.strip()):
        if not address or address.startswith(("(", "{", ":")):
            continue
        host = address.split("://", 1)[-1].split("/", 1)[0]
        host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        hosts.append(host)
    return hosts


def host_name(text: str) -> str | None:
    """A host as a DNS name dnscock can serve (lower case, a leading ``*.`` kept); None for addresses and junk."""
    name = text.strip().rstrip(".").lower()
    try:
        ipaddress.ip_address(name.strip("[]"))
        return None
    except ValueError:
        pass
    rest = name[2:] if name.startswith("*.") else name
    return name if is_valid_name(rest) and "." in rest else None


def facts_from(image: str, labels: Mapping[str, str], env: Mapping[str, str],
               command: Sequence[str] = ()) -> ProxyFacts | None:
    """What a container's image, labels, env and command say about proxies; None when nothing."""
    serves = proxy_kind(image, labels)
    names: list[ProxyName] = []
    problems: list[str] = []

    def add(hosts: Iterable[str], kind: str, origin: str) -> None:
        for text in hosts:
            host = host_name(text)
            if host is None:
                problems.append(f"{origin}: {text!r} is not a host name")
            else:
                names.append(ProxyName(host, kind, origin))

    for label, value in sorted(labels.items()):
        if _TRAEFIK_RULE.match(label):
            hosts = traefik_hosts(str(value))
            if hosts is None:
                problems.append(f"{label}: cannot read the rule {value!r}")
            else:
                add(hosts, TRAEFIK, label)
        elif _CADDY_LABEL.match(label):
            add(caddy_hosts(str(value)), CADDY, label)
    if env.get("VIRTUAL_HOST"):
        hosts, expressions = virtual_hosts(env["VIRTUAL_HOST"])
        add(hosts, NGINX_PROXY, "VIRTUAL_HOST")
        problems += [f"VIRTUAL_HOST: {expression!r} is a regular expression, not a name" for expression in expressions]
    enable = str(labels.get("traefik.enable", "")).strip().lower()
    opt_in = serves == TRAEFIK and (any(_OPT_IN.search(part) for part in _joined(command))
                                    or str(env.get("TRAEFIK_PROVIDERS_DOCKER_EXPOSEDBYDEFAULT", "")).lower() == "false")
    if not serves and not names and not problems:
        return None
    return ProxyFacts(serves, opt_in, tuple(dict.fromkeys(names)), {"true": True, "false": False}.get(enable),
                      tuple(problems))


def _joined(command: Sequence[str]) -> list[str]:
    """The command's words, and the pairs of them (``--flag value`` given as two words)."""
    words = [str(word) for word in command]
    return words + [f"{first} {second}" for first, second in zip(words, words[1:])]


def serves_app(kind: str, proxies: Sequence[Record], app: ProxyFacts) -> bool:
    """Does a proxy of ``kind`` serve the app's names? Traefik's opt-in and traefik.enable decide for Traefik."""
    if kind != TRAEFIK or app.traefik_enable is True:
        return True
    if app.traefik_enable is False:
        return False
    return not any(proxy.proxy is not None and proxy.proxy.opt_in for proxy in proxies)


def proxy_records(records: Iterable[Record], source: str) -> list[Record]:
    """The proxy names of one source's ``records``, one record a name, answering the proxy (or the host)."""
    live = [record for record in records if not record.stopped]
    proxies = {kind: [record for record in live if record.proxy is not None and record.proxy.serves == kind]
               for kind in KINDS}
    host = next((record for record in live if record.kind == "host"), None)
    wanted: dict[str, list[tuple[ProxyName, Record]]] = {}
    for app in live:
        facts = app.proxy
        if facts is None:
            continue
        for name in facts.names:
            if serves_app(name.kind, proxies[name.kind], facts):
                wanted.setdefault(name.host, []).append((name, app))
    made = []
    for host_text, claims in sorted(wanted.items()):
        kinds = list(dict.fromkeys(name.kind for name, _ in claims))
        targets = [proxy for kind in kinds for proxy in proxies[kind]] or ([host] if host is not None else [])
        if not targets:
            continue
        made.append(_record(host_text, source, claims, targets))
    return made


def _record(host: str, source: str, claims: list[tuple[ProxyName, Record]], targets: list[Record]) -> Record:
    def union(values: Iterable[tuple[str, ...]]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(value for group in values for value in group))

    metadata = tuple(dict.fromkeys(
        [("proxy", name.kind) for name, _ in claims]
        + [("from", f"{app.container}: {name.origin}") for name, app in claims]))
    return Record(
        id=f"proxy:{source}:{host}",
        container=",".join(dict.fromkeys(target.container for target in targets)),
        labels=(),
        aliases=(host,),
        ipv4=union(target.ipv4 for target in targets),
        ipv6=union(target.ipv6 for target in targets),
        places=union(target.places for target in targets),
        gateways=union(target.gateways for target in targets),
        ttl=min((target.ttl for target in targets if target.ttl is not None), default=None),
        metadata=metadata,
        name=host,
        image_name=sys.intern(",".join(dict.fromkeys(name.kind for name, _ in claims))),
        networks=union(target.networks for target in targets),
        source=proxy_source(source),
        kind="proxy",
        fqdn=host,
    )


def proxy_source(source: str) -> str:
    """The source the proxy names of an engine's (or a swarm's) records are kept under in the store."""
    return f"proxy:{source}"


class ProxyNames:
    """Keeps the proxy names in the store: made again from the records they come from after each change.

    Each source's proxy names are kept under a source of their own
    (``proxy_source``), changed only where they differ: the work after a
    change of the table grows with the records that say something about
    proxies, not with the table. A label or variable that could not be read
    is logged once per container and skipped.
    """

    def __init__(self, store: RecordStore, enabled: bool = True) -> None:
        self.store = store
        self.enabled = enabled
        self._made: dict[str, Record] = {}  # the proxy names in the store now, by id
        # The records they were made from, the very objects: a change elsewhere in the table (a container that says
        # nothing about proxies starting) leaves these as they are, and costs no remaking.
        self._made_from: list[Record] = []
        self._logged: set[tuple[str, str]] = set()
        self._greenlet: gevent.Greenlet | None = None

    def start(self) -> None:
        if self.enabled:
            self._greenlet = gevent.spawn(self._follow)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)

    def _follow(self) -> None:
        while True:
            try:
                self.refresh()
            except Exception:  # a bug here must not cost the names every other part serves
                log.exception("failed to make the proxy names")
            self.store.wait_changed()

    def refresh(self) -> None:
        """Makes the proxy names again when what they are made from changed; changes the store (once) only where
        they differ."""
        related = self.store.proxy_related()
        if len(related) == len(self._made_from) and all(a is b for a, b in zip(related, self._made_from)):
            return
        self._made_from = related
        by_source: dict[str, list[Record]] = {}
        for record in related:
            by_source.setdefault(record.source, []).append(record)
            self._log_problems(record)
        made = {record.id: record for source, records in by_source.items()
                for record in proxy_records(records, source)}
        removed = [record_id for record_id in self._made if record_id not in made]
        added = [record for record_id, record in made.items() if self._made.get(record_id) != record]
        if removed or added:
            self.store.change(removed, added)
        self._made = made
        present = {record.id for records in by_source.values() for record in records}
        self._logged = {logged for logged in self._logged if logged[0] in present}

    def _log_problems(self, record: Record) -> None:
        for problem in record.proxy.problems if record.proxy is not None else ():
            if (record.id, problem) not in self._logged:
                self._logged.add((record.id, problem))
                log.warning("container %s: %s: skipped", record.container, problem)
