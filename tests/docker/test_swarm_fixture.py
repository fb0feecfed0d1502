"""The private two-node swarm the swarm tests use (tests/support/swarm.py), and Docker's embedded
DNS in it: the reference dnscock's swarm answers are compared with."""

from __future__ import annotations

import ipaddress
import subprocess

from tests.docker.conftest import start_swarm, stop_swarm
from tests.support.swarm import PrivateSwarm, _wait

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
"""


def addresses(tasks: list[dict], network: str) -> list[str]:
    return sorted((PrivateSwarm.task_address(task, network) for task in tasks), key=ipaddress.ip_address)


def test_two_nodes_ready_each_with_its_hostname(swarm):
    nodes = swarm.swarm_nodes()
    assert sorted(n["Description"]["Hostname"] for n in nodes) == sorted(node.hostname for node in swarm.nodes)
    assert [n["Status"]["State"] for n in nodes] == ["ready", "ready"]
    assert {n["Status"]["Addr"] for n in nodes} == {swarm.node1.address, swarm.node2.address}
    assert {n["ID"]: n["Spec"]["Role"] for n in nodes} == {swarm.node1.node_id: "manager",
                                                           swarm.node2.node_id: "worker"}
    assert swarm.node1.client.info()["Swarm"]["ControlAvailable"] is True
    assert swarm.node2.client.info()["Swarm"]["ControlAvailable"] is False


def test_the_swarm_ranges_go_nowhere_but_node_1s_bridges(swarm):
    """Node 2's ranges and the overlays are unreachable from the root namespace (never the default route)."""
    subnet = ipaddress.ip_network(swarm.subnet)
    for inside in (subnet[1 << 8], subnet[128 << 8] + 5, subnet[-2]):  # node 2's bridge, an overlay, the end
        result = subprocess.run(["ip", "route", "get", str(inside)], capture_output=True, text=True, check=False)
        assert result.returncode != 0 or "unreachable" in result.stdout, result.stdout
    route = subprocess.run(["ip", "route", "get", swarm.node2.address], capture_output=True, text=True,
                           check=False).stdout
    assert f"dev {swarm.node1.bridge}" in route


def test_replicated_service_over_both_nodes_embedded_dns_and_drain(swarm_env):
    swarm = swarm_env
    swarm.create_network("front")
    web = swarm.create_service("web", replicas=3, networks=["front"])
    tasks = swarm.running_tasks(web)
    assert len(tasks) == 3
    assert {swarm.task_node(task).number for task in tasks} == {1, 2}, "spread over both nodes"

    # A task on node 2: an address on the overlay, from the swarm's pool; its container, through node 2's engine.
    on_node2 = next(task for task in tasks if swarm.task_node(task) is swarm.node2)
    address = swarm.task_address(on_node2, "front")
    assert ipaddress.ip_address(address) in ipaddress.ip_network(swarm.addr_pool)
    container = swarm.task_container(on_node2)
    assert container.attrs["NetworkSettings"]["Networks"]["front"]["IPAddress"] == address
    assert container.labels["com.docker.swarm.service.name"] == "web"
    assert container.labels["com.docker.swarm.node.id"] == swarm.node2.node_id

    # Docker's embedded DNS in an attachable container: every task, wherever it runs; the VIP for the name.
    probe = swarm.run_attached("front")
    assert swarm.settled_embedded_dns(probe, "tasks.web", addresses(tasks, "front")) == addresses(tasks, "front")
    web.reload()
    vip = next(v["Addr"].split("/")[0] for v in web.attrs["Endpoint"]["VirtualIPs"])
    assert swarm.embedded_dns(probe, "web") == [vip]

    # Node 2 drained: its tasks move to node 1, and the embedded DNS follows.
    swarm.drain(swarm.node2)
    moved = swarm.wait_for_tasks(web, 3, predicate=lambda ts: all(swarm.task_node(t) is swarm.node1 for t in ts))
    _wait(lambda: swarm.embedded_dns(probe, "tasks.web") == addresses(moved, "front"), 20,
          "the embedded DNS to answer the moved tasks")


def test_stack_deploy_with_debians_cli(swarm_env):
    swarm = swarm_env
    swarm.deploy_stack("shop", STACK.format(nameserver=swarm.nameserver), wait={"api": 2})
    service = swarm.service("shop_api")
    assert service.attrs["Spec"]["Labels"]["com.docker.stack.namespace"] == "shop"
    tasks = swarm.running_tasks("shop_api")
    container = swarm.task_container(tasks[0])
    assert container.labels["com.docker.stack.namespace"] == "shop"
    expected = addresses(tasks, "shop_default")
    assert swarm.settled_embedded_dns(container, "tasks.api", expected) == expected


def test_two_managers_and_nothing_left_after_stop():
    swarm = start_swarm("dcs-two-", managers=2)
    try:
        nodes = swarm.node2.client.api.nodes()  # a manager answers /nodes
        assert sorted(n["Spec"]["Role"] for n in nodes) == ["manager", "manager"]
        assert sorted(n["ManagerStatus"]["Reachability"] for n in nodes) == ["reachable", "reachable"]
        swarm.create_network("front")
        swarm.create_service("web", replicas=2, networks=["front"], max_per_node=1, restart_delay=0)
        victim = next(t for t in swarm.running_tasks("web") if swarm.task_node(t) is swarm.node2)
        swarm.kill_task(victim)
        swarm.wait_for_tasks("web", 2, timeout=20, predicate=lambda ts: victim["ID"] not in {t["ID"] for t in ts})
    finally:
        stop_swarm(swarm)  # fails when anything is left
    assert swarm.leftovers() == []
