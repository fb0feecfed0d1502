"""The ``local`` case: names of ``--containers`` real containers on the private engine.

The containers also carry ``--proxy-names`` names in Traefik rules, which a
container tagged ``traefik`` serves: dnscock keeps them in its table (a few
are checked) while it answers the containers' own names, the query mix.

dnscock against dnsmasq answering the same names from a hosts file (the
ratio and the bar), and against ``bench.ceiling answer`` reading that file
(the least a Python server can do; no bar). Both dnsmasq's and dnscock's
answers are checked alike first: exactly; or, for an answer too long for a
512-byte UDP reply (``<image>.docker`` of many containers), where each
server keeps the addresses it likes, the same rcode and number of
addresses, dnscock's all among the hosts file's.
"""

from __future__ import annotations

import concurrent.futures
import logging
import random
from dataclasses import dataclass

import dns.message
import dns.name

from bench import compare
from bench.contenders import AnsweringServer, Ceiling, Dnsmasq
from bench.dnsclient import addresses, ask, truncated
from bench.errors import BenchError
from bench.processes import SERVER_CPU
from bench.session import Session
from tests.support.dnscock_process import rcode

log = logging.getLogger(__name__)

UDP_LIMIT = 512  # the check's queries have no EDNS
A_RECORD_SIZE = 16  # a compressed owner (2), type, class, TTL, length (10), the address (4)


PROXY_IMAGE = "traefik:latest"


@dataclass
class LocalNames:
    """The containers' names: the hosts file's lines, each name's addresses, the query mix, and the proxy names
    (with the proxy's address)."""

    hosts: list[str]
    addresses: dict[str, set[str]]
    queries: list[str]
    proxy_names: list[str]
    proxy_address: str


def traefik_rules(count: int, containers: int) -> list[dict[str, str]]:
    """``count`` names in Traefik rules, spread over ``containers`` containers' labels."""
    rules: list[list[str]] = [[] for _ in range(containers)]
    for index in range(count):
        rules[index % containers].append(f"Host(`p{index}.proxied.test`)")
    return [{"traefik.http.routers.bench.rule": " || ".join(hosts)} if hosts else {} for hosts in rules]


def prepare(session: Session) -> LocalNames:
    """Starts ``--containers`` containers, half redis and half web, every 5th with an alias."""
    engine = session.require_engine()
    count = session.options.containers
    log.info("local: starting %s containers", count)
    specs = []
    rules = traefik_rules(session.options.proxy_names, count)
    for index in range(1, count + 1):
        image = "redis" if index % 2 else "web"
        env = {"DNSDOCK_ALIAS": f"alias{index}.example.test"} if index % 5 == 0 else {}
        specs.append((f"bench{index}", image, env, rules[index - 1]))

    def start(spec: tuple[str, str, dict[str, str], dict[str, str]]) -> tuple[tuple, str]:
        name, image, env, labels = spec
        container = engine.run(f"{image}:latest", name=name, environment=env, labels=labels)
        container.reload()
        return spec, container.attrs["NetworkSettings"]["IPAddress"]

    proxy_address = ""
    if session.options.proxy_names:
        proxy = engine.run(PROXY_IMAGE, name="bench-traefik")
        proxy.reload()
        proxy_address = proxy.attrs["NetworkSettings"]["IPAddress"]

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        started = list(pool.map(start, specs))
    hosts, full, images, aliases = [], [], set(), []
    by_name: dict[str, set[str]] = {}
    for (name, image, env, _), ip in started:
        if not ip:
            raise BenchError(f"container {name} has no IPv4 address")
        alias = env.get("DNSDOCK_ALIAS")
        names = [f"{name}.{image}.docker", f"{image}.docker", *([alias] if alias else [])]
        hosts.append(" ".join([ip, *names]))
        for each in names:
            by_name.setdefault(each, set()).add(ip)
        full.append(names[0])
        images.add(names[1])
        if alias:
            aliases.append(alias)
    # The mix: every container's full name, every alias, and the image names as often as the aliases.
    mixed = full + aliases + [sorted(images)[i % len(images)] for i in range(max(len(aliases), len(images)))]
    random.Random(7).shuffle(mixed)
    proxied = [f"p{index}.proxied.test" for index in range(session.options.proxy_names)]
    return LocalNames(hosts, by_name, mixed, proxied, proxy_address)


def fits(name: str, count: int) -> bool:
    """Whether ``count`` A records of ``name`` fit in a 512-byte reply (header, question, answers)."""
    question = len(dns.name.from_text(name).to_wire()) + 4
    return 12 + question + count * A_RECORD_SIZE <= UDP_LIMIT


def difference(name: str, expected: set[str], ours: dns.message.Message,
               theirs: dns.message.Message) -> str | None:
    """How dnscock's answer (``ours``) to ``name`` differs from dnsmasq's (``theirs``), or None."""
    mine, other = addresses(ours), addresses(theirs)
    said = f"{name}: dnscock {rcode(ours)} {mine}, dnsmasq {rcode(theirs)} {other}"
    if rcode(ours) != "NOERROR" or not mine:
        return f"{name}: dnscock {rcode(ours)} {mine}"
    if truncated(ours) or truncated(theirs) or not fits(name, len(expected)):
        if rcode(ours) != rcode(theirs) or len(mine) != len(other):
            return f"{said} (truncated: the same number of addresses expected)"
        if not set(mine) <= expected:
            return f"{said} (truncated: dnscock's {sorted(set(mine) - expected)} are not {name}'s)"
        return None
    return None if (rcode(ours), mine) == (rcode(theirs), other) else said


def check_answers(session: Session, local: LocalNames, reference: Dnsmasq, ceiling: AnsweringServer) -> int:
    """dnscock and dnsmasq answer every name alike, the ceiling with as many of that name's addresses as dnsmasq;
    the names checked."""
    main = session.require_main()
    unique = sorted(set(local.queries))
    differences, wrong = [], []
    for name in unique:
        theirs = ask(reference.port, name)
        found = difference(name, local.addresses[name], ask(main.port, name), theirs)
        if found:
            differences.append(found)
        answer = ask(ceiling.port, name)
        if rcode(answer) != "NOERROR" or len(addresses(answer)) != len(addresses(theirs)) \
                or not set(addresses(answer)) <= local.addresses[name]:
            wrong.append(f"{name}: {rcode(answer)} {addresses(answer)}")
    if differences:
        raise BenchError(f"dnscock and dnsmasq answer differently ({len(differences)} of {len(unique)} "
                         "names):\n  " + "\n  ".join(differences[:10]))
    if wrong:
        raise BenchError(f"the ceiling answers {len(wrong)} of {len(unique)} names wrongly:\n  "
                         + "\n  ".join(wrong[:10]))
    sample = local.proxy_names[::max(1, len(local.proxy_names) // 10)]
    unserved = [name for name in sample if addresses(ask(main.port, name)) != [local.proxy_address]]
    if unserved:
        raise BenchError(f"dnscock does not answer {len(unserved)} of {len(sample)} proxy names checked with the "
                         f"proxy's address {local.proxy_address}: {', '.join(unserved[:5])}")
    too_long = [name for name in unique if not fits(name, len(local.addresses[name]))]
    log.info("local: %s names answered alike by dnscock and dnsmasq (%s too long for 512 bytes, compared by count: "
             "%s), and by the ceiling", len(unique), len(too_long), ", ".join(too_long) or "none")
    return len(unique)


def run(session: Session, local: LocalNames) -> None:
    main = session.require_main()
    hosts_file = session.write("local.hosts", local.hosts)
    reference = ceiling = None
    try:
        reference = Dnsmasq(session.processes, session.tmp, "local", SERVER_CPU,
                            [f"--addn-hosts={hosts_file}", "--cache-size=10000"], probe=local.queries[0],
                            name="dnsmasq (hosts file)")
        ceiling = Ceiling(session.processes, session.tmp, "answer", hosts_file, probe=local.queries[0])
        for server in (reference, ceiling):
            log.info("local: %s on 127.0.0.1:%s (PID %s, CPU %s)", server.name, server.port, server.pid, SERVER_CPU)
        checked = check_answers(session, local, reference, ceiling)
        query_file = session.write("local.queries", (f"{name} A" for name in local.queries))
        contenders = [("dnscock", main.port, main.pid), (reference.name, reference.port, reference.pid),
                      (ceiling.name, ceiling.port, ceiling.pid)]
        runs = compare.alternate(session.options.rounds, [
            (name, compare.dnsperf_run(session, f"local: {name}", port, pid, [query_file]))
            for name, port, pid in contenders])
        result = compare.compared(session, "local", runs, "dnscock", [reference.name, ceiling.name])
        session.results["local"] = {**result, "containers": session.options.containers, "names": checked,
                                    "proxy_names": len(local.proxy_names)}
    finally:
        for server in (reference, ceiling):
            if server is not None:
                server.stop()
