"""Swarm services on a real two-node swarm (tests/support/swarm.py), through dnscock queried on the host.

dnscock watches node 1, the manager: ``S.<domain>`` (``S.K`` for a stack)
answers every running task on both nodes, as Docker's embedded DNS answers
``tasks.S`` inside an attachable container (the reference); ``<slot>.S``,
``<node>.S`` (global), ``tasks.S`` and ``vip.S`` as the README says; and the
answers follow scaling, a task killed on node 2, a drain, a partition.
Changes must show within 2 s: dnscock polls the manager's tasks every
second (-swarm-poll) and after each service, node or network event.
"""

from __future__ import annotations

import ipaddress
import time

import pytest
import requests

from tests.docker.conftest import start_swarm, stop_swarm
from tests.support.dnscock_process import DnscockProcess, rcode
from tests.support.swarm import PrivateSwarm

FOLLOW = 2.0  # seconds within which a change on the manager must show in dnscock's answers
STACK = """\
version: "3.8"
services:
  api:
    image: local/busybox:latest
    command: ["sleep", "3600"]
    init: true
    dns: [{nameserver}]
    deploy:
      replicas: 2
      labels:
        com.dnsdock.alias: api.shop.example.test
networks:
  default:
    attachable: true
"""


def sorted_addresses(addresses) -> list[str]:
    return sorted(addresses, key=ipaddress.ip_address)


def task_addresses(swarm: PrivateSwarm, service, network: str) -> list[str]:
    return sorted_addresses(swarm.task_address(task, network) for task in swarm.running_tasks(service))


@pytest.fixture
def dnscock_on(start_dnscock, upstream):
    def start(*urls: str, args: tuple[str, ...] = ()) -> DnscockProcess:
        process = start_dnscock(*(f"-docker={url}" for url in urls), f"-nameserver={upstream.address}",
                                "-http=127.0.0.1:0", *args)
        process.wait_for_log(r"swarm .*: reading ")
        return process

    return start


def settle(dnscock: DnscockProcess, name: str, expected: list[str], timeout: float = FOLLOW) -> float:
    """Seconds until ``name`` answers exactly ``expected``; fails after ``timeout``."""
    start = time.monotonic()
    dnscock.wait_for_answer(name, lambda reply: sorted_addresses(
        rr.address for rrset in reply.answer for rr in rrset) == expected, timeout=timeout)
    return time.monotonic() - start


def test_a_replicated_service_answers_as_dockers_own_dns_from_the_host(swarm_env, dnscock_on):
    swarm = swarm_env
    swarm.create_network("front")
    web = swarm.create_service("web", replicas=3, networks=["front"], ports={8080: 80})
    expected = task_addresses(swarm, web, "front")
    assert {swarm.task_node(task).number for task in swarm.running_tasks(web)} == {1, 2}
    probe = swarm.run_attached("front")
    assert swarm.settled_embedded_dns(probe, "tasks.web", expected) == expected, "the reference"

    dnscock = dnscock_on(swarm.url)
    settle(dnscock, "web.docker", expected)
    assert sorted_addresses(dnscock.addresses("tasks.web.docker")) == expected
    for task in swarm.running_tasks(web):
        assert dnscock.addresses(f"{task['Slot']}.web.docker") == [swarm.task_address(task, "front")]
    web.reload()
    vips = [vip["Addr"].split("/")[0] for vip in web.attrs["Endpoint"]["VirtualIPs"]]
    assert dnscock.addresses("vip.web.docker") == swarm.embedded_dns(probe, "web")
    assert set(dnscock.addresses("vip.web.docker")) < set(vips), "never the ingress network's VIP"

    # PTR, SRV for the published port's target, TXT with service, task and node.
    task = swarm.running_tasks(web)[0]
    address = swarm.task_address(task, "front")
    ptr = dnscock.query(ipaddress.ip_address(address).reverse_pointer, "PTR")
    assert f"{task['Slot']}.web.docker." in [rr.target.to_text() for rr in ptr.answer[0]]
    srv = dnscock.query("_80._tcp.web.docker", "SRV")
    assert sorted(rr.target.to_text() for rr in srv.answer[0]) == sorted(
        f"{t['Slot']}.web.docker." for t in swarm.running_tasks(web))
    txt = dnscock.query(f"{task['Slot']}.web.docker", "TXT")
    strings = {s.decode() for s in txt.answer[0][0].strings}
    assert {"service=web", f"task={task['ID']}", f"node={swarm.task_node(task).hostname}"} <= strings

    # The local node's task containers keep their container names (and their addresses on every network).
    local = next(t for t in swarm.running_tasks(web) if swarm.task_node(t) is swarm.node1)
    container = swarm.task_container(local)
    on_networks = [net["IPAddress"] for net in container.attrs["NetworkSettings"]["Networks"].values()]
    assert dnscock.addresses(f"{container.name}.busybox.docker") == sorted_addresses(on_networks)

    # Scale up and down: the answers follow within FOLLOW seconds.
    swarm.scale(web, 5)
    settle(dnscock, "web.docker", task_addresses(swarm, web, "front"))
    swarm.scale(web, 2)
    settle(dnscock, "web.docker", task_addresses(swarm, web, "front"))
    services = requests.get(f"{dnscock.http_url}/services", timeout=5).json()
    assert sorted(s["Kind"] for s in services.values() if s["Kind"] in ("task", "vip")) == ["task", "task", "vip"]


def test_global_dnsrr_and_stack_services(swarm_env, dnscock_on):
    swarm = swarm_env
    swarm.create_network("front")
    agent = swarm.create_service("agent", mode="global", networks=["front"])
    db = swarm.create_service("db", replicas=2, networks=["front"], endpoint_mode="dnsrr")
    swarm.deploy_stack("shop", STACK.format(nameserver=swarm.nameserver), wait={"api": 2})
    dnscock = dnscock_on(swarm.url)

    settle(dnscock, "agent.docker", task_addresses(swarm, agent, "front"))
    for task in swarm.running_tasks(agent):
        node = swarm.task_node(task)
        assert dnscock.addresses(f"{node.hostname}.agent.docker") == [swarm.task_address(task, "front")]
    settle(dnscock, "db.docker", task_addresses(swarm, db, "front"))
    assert rcode(dnscock.query("vip.db.docker")) == "NXDOMAIN", "a dnsrr service has no virtual IP"
    api = swarm.service("shop_api")
    expected = task_addresses(swarm, api, "shop_default")
    settle(dnscock, "api.shop.docker", expected)
    assert sorted_addresses(dnscock.addresses("api.shop.example.test")) == expected, "com.dnsdock.alias"
    probe = swarm.run_attached("shop_default")
    assert swarm.settled_embedded_dns(probe, "tasks.api", expected) == expected


def test_service_labels_and_task_env_name_and_time_its_tasks(swarm_env, dnscock_on):
    swarm = swarm_env
    swarm.create_network("front")
    named = swarm.create_service("named", replicas=1, networks=["front"],
                                 labels={"com.dnsdock.name": "frontend", "com.dnsdock.alias": "www.example.test"},
                                 env=["DNSDOCK_TTL=42"])
    swarm.create_service("hidden", replicas=1, networks=["front"], env=["DNSDOCK_IGNORE=1"])
    dnscock = dnscock_on(swarm.url)
    expected = task_addresses(swarm, named, "front")
    settle(dnscock, "frontend.docker", expected)
    assert dnscock.query("frontend.docker").answer[0].ttl == 42
    assert dnscock.addresses("www.example.test") == expected
    assert rcode(dnscock.query("named.docker")) == "NXDOMAIN"
    assert rcode(dnscock.query("hidden.docker")) == "NXDOMAIN"


def test_a_killed_task_on_node_2_a_drain_and_a_partition(swarm_env, dnscock_on):
    swarm = swarm_env
    swarm.create_network("front")
    web = swarm.create_service("web", replicas=3, networks=["front"], restart_delay=0)
    dnscock = dnscock_on(swarm.url)
    settle(dnscock, "web.docker", task_addresses(swarm, web, "front"))

    # A task killed on node 2 leaves the answers within FOLLOW seconds of leaving the manager's running set.
    victim = next(task for task in swarm.running_tasks(web) if swarm.task_node(task) is swarm.node2)
    gone = swarm.task_address(victim, "front")
    swarm.kill_task(victim)
    swarm.wait_for_tasks(web, 3, predicate=lambda tasks: victim["ID"] not in {t["ID"] for t in tasks}, timeout=30)
    settle(dnscock, "web.docker", task_addresses(swarm, web, "front"), timeout=FOLLOW)
    assert gone not in dnscock.addresses("web.docker") or gone in task_addresses(swarm, web, "front")

    # Node 2 drained: its tasks move to node 1.
    swarm.drain(swarm.node2)
    swarm.wait_for_tasks(web, 3, predicate=lambda tasks: all(swarm.task_node(t) is swarm.node1 for t in tasks),
                         timeout=30)
    settle(dnscock, "web.docker", task_addresses(swarm, web, "front"))
    swarm.activate(swarm.node2)
    swarm.scale(web, 4)
    swarm.wait_for_tasks(web, 4, predicate=lambda tasks: any(swarm.task_node(t) is swarm.node2 for t in tasks),
                         timeout=30)
    settle(dnscock, "web.docker", task_addresses(swarm, web, "front"))

    # Node 2 cut off: its tasks leave when the manager says the node is down (about 13 s here).
    with swarm.partitioned():
        swarm.wait_for_nodes(lambda nodes: any(n["Status"]["State"] == "down" for n in nodes), timeout=60)
        swarm.wait_for_tasks(web, 4, predicate=lambda tasks: all(swarm.task_node(t) is swarm.node1 for t in tasks),
                             timeout=60)
        settle(dnscock, "web.docker", task_addresses(swarm, web, "front"))


def test_dnscock_on_a_worker_reads_the_swarm_networks(swarm_env, dnscock_on):
    swarm = swarm_env
    swarm.create_network("front")
    web = swarm.create_service("web", replicas=3, networks=["front"])
    swarm.run_attached("front", node=swarm.node2)  # the network must be present on the worker
    dnscock = dnscock_on(swarm.node2.url)
    dnscock.wait_for_log(r"swarm .*\(worker mode\)")
    settle(dnscock, "web.docker", task_addresses(swarm, web, "front"))
    for task in swarm.running_tasks(web):
        assert dnscock.addresses(f"{task['Slot']}.web.docker") == [swarm.task_address(task, "front")]
    health = requests.get(f"{dnscock.http_url}/health", timeout=5).json()
    assert health["swarms"][0]["mode"] == "worker"
    assert health["engines"][0]["swarm"] == "worker"


def test_two_managers_one_down_then_quorum_lost_keeps_the_last_table(dnscock_on):
    swarm = start_swarm("dcs-two-", managers=2)
    dnscock = None
    try:
        swarm.create_network("front")
        web = swarm.create_service("web", replicas=2, networks=["front"])
        expected = task_addresses(swarm, web, "front")
        dnscock = dnscock_on(swarm.node1.url, swarm.node2.url)
        settle(dnscock, "web.docker", expected)
        reading = dnscock.wait_for_log(r"swarm .*: reading services and tasks from (\S+)").group(1)
        first, other = (swarm.node1, swarm.node2) if reading == swarm.node1.url else (swarm.node2, swarm.node1)
        health = requests.get(f"{dnscock.http_url}/health", timeout=5).json()
        assert health["swarms"][0]["mode"] == "manager" and len(health["swarms"][0]["engines"]) == 2

        # The manager read goes away: the other is tried, and read while it can; but one manager of two has
        # no quorum (at once when the leader went, about 15 s later otherwise): a failed source, logged once
        # per outage, the last table kept throughout.
        mark = len(dnscock.lines)
        first.kill()
        dnscock.wait_for_log(rf"swarm .*: cannot read .* from {first.url}", timeout=30, start=mark)
        assert sorted_addresses(dnscock.addresses("web.docker")) == expected
        deadline = time.monotonic() + 60
        while True:  # the other manager tried, and failed: /health says why
            health = requests.get(f"{dnscock.http_url}/health", timeout=5)
            swarm_state = health.json()["swarms"][0]
            if not swarm_state["reading"] and other.url in swarm_state.get("failure", ""):
                break
            assert time.monotonic() < deadline, swarm_state
            time.sleep(0.2)
        assert health.status_code == 503 and any("swarm" in reason for reason in health.json()["reasons"])
        assert sorted_addresses(dnscock.addresses("web.docker")) == expected
        time.sleep(4)  # retries meanwhile, every manager with backoff: they may not add warning lines
        # One line per outage. When the manager killed was not the leader, the other one is read until it
        # notices it has no quorum: a second outage, with its own line.
        lines = dnscock.lines[mark:]
        warnings = [line for line in lines if "WARNING dnscock.swarm" in line]
        other_was_read = any(f"reading services and tasks from {other.url}" in line for line in lines)
        assert [first.url in line for line in warnings] == [True] + [False] * other_was_read, \
            f"one line per outage: {warnings}"

        # The first manager back: quorum again, and dnscock reads the swarm again.
        mark = len(dnscock.lines)
        swarm.restart(first)
        dnscock.wait_for_log(r"swarm .*: reading services and tasks from", timeout=60, start=mark)
        settle(dnscock, "web.docker", task_addresses(swarm, web, "front"), timeout=30)
    finally:
        if dnscock is not None:
            dnscock.stop()
        stop_swarm(swarm)
