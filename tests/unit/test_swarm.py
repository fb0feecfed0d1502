"""Swarm services -> records, on the JSON a real two-node swarm gave (tests/support/swarm_samples)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from dnscock import swarm
from dnscock.naming import NamingOptions
from dnscock.records import Record, RecordStore

SAMPLES = Path(__file__).resolve().parents[1] / "support" / "swarm_samples"


def sample(name: str):
    return json.loads((SAMPLES / name).read_text())


@pytest.fixture
def state() -> swarm.SwarmState:
    return swarm.SwarmState(services=sample("services.json"), tasks=sample("tasks_running.json"),
                            nodes=swarm.node_names(sample("nodes.json")),
                            networks=swarm.network_names(sample("networks_manager_list.json")))


def names(records: list[Record]) -> dict[str, list[str]]:
    """Each record's full name (labels) -> its addresses."""
    return {".".join(record.labels): sorted(record.ipv4 + record.ipv6) for record in records}


def task_address(task: dict, network: str) -> str:
    attachment = next(a for a in task["NetworksAttachments"] if a["Network"]["Spec"]["Name"] == network)
    return attachment["Addresses"][0].split("/")[0]


def tasks_of(service_name: str) -> list[dict]:
    service = next(s for s in sample("services.json") if s["Spec"]["Name"] == service_name)
    return [task for task in sample("tasks_running.json") if task["ServiceID"] == service["ID"]]


def test_a_replicated_service_answers_each_slot_and_all_its_tasks(state):
    records = swarm.manager_records(state)
    web = {record.name: record for record in records if record.kind == "task" and record.image_name == "web"}
    expected = {str(task["Slot"]): task_address(task, "front") for task in tasks_of("web")}
    assert {slot: record.ipv4 for slot, record in web.items()} == {s: (a,) for s, a in expected.items()}
    assert all(record.extra_names == (("tasks", "web"),) for record in web.values())
    store = RecordStore()
    store.replace_all(records)
    assert sorted(address for r in store.match(("web",)) for address in r.ipv4) == sorted(expected.values())
    assert sorted(address for r in store.match(("tasks", "web")) for address in r.ipv4) == sorted(expected.values())
    assert [r.ipv4 for r in store.match(("2", "web"))] == [(expected["2"],)]


def test_a_published_port_puts_tasks_on_ingress_but_they_answer_their_service_networks_only(state):
    web = [record for record in swarm.manager_records(state) if record.kind == "task" and record.image_name == "web"]
    assert all(record.networks == ("front",) for record in web)
    assert all(record.ports == ((80, "tcp"),) for record in web)


def test_a_global_service_answers_each_node_by_host_name(state):
    agent = [record for record in swarm.manager_records(state) if record.image_name == "agent"]
    hosts = {swarm.node_names(sample("nodes.json"))[task["NodeID"]]: task_address(task, "front")
             for task in tasks_of("agent")}
    assert {record.name: record.ipv4 for record in agent if record.kind == "task"} == {
        host.split(".")[0]: (address,) for host, address in hosts.items()}


def test_a_stack_service_is_named_service_dot_stack(state):
    records = names(swarm.manager_records(state))
    api = {task_address(task, "shop_default") for task in tasks_of("shop_api")}
    assert {address for name, addresses in records.items() if name.endswith(".api.shop") for address in addresses} \
        == api | set(records["vip.api.shop"])
    assert "vip.api.shop" in records and not any(name.endswith("shop_api") for name in records)


def test_virtual_ips_are_answered_for_vip_services_never_ingress_nor_dnsrr(state):
    records = {".".join(record.labels): record for record in swarm.manager_records(state) if record.kind == "vip"}
    assert sorted(records) == ["vip.agent", "vip.api.shop", "vip.web"]
    web = next(s for s in sample("services.json") if s["Spec"]["Name"] == "web")
    front = next(net["Id"] for net in sample("networks_manager_list.json") if net["Name"] == "front")
    assert records["vip.web"].ipv4 == tuple(vip["Addr"].split("/")[0] for vip in web["Endpoint"]["VirtualIPs"]
                                            if vip["NetworkID"] == front)
    assert all(record.exact for record in records.values())


def test_only_running_tasks_are_answered(state):
    tasks = copy.deepcopy(state.tasks)
    tasks[0]["Status"]["State"] = "starting"
    gone = tasks[0]["ID"]
    records = swarm.manager_records(swarm.SwarmState(state.services, tasks, state.nodes, state.networks))
    assert gone not in {record.id for record in records}
    assert len([r for r in records if r.kind == "task"]) == len(state.tasks) - 1


def test_the_network_option_keeps_the_named_networks_only(state):
    records = swarm.manager_records(state, NamingOptions(networks=frozenset({"shop_default"})))
    assert {record.image_name for record in records if record.ipv4} == {"api.shop", "cache.shop"}


@pytest.mark.parametrize(("where", "key"), [("labels", "com.dnsdock.name"), ("env", "DNSDOCK_NAME")])
def test_the_services_labels_and_task_env_name_alias_ttl_and_ignore_its_tasks(state, where, key):
    services = copy.deepcopy(state.services)
    web = next(s for s in services if s["Spec"]["Name"] == "web")
    db = next(s for s in services if s["Spec"]["Name"] == "db")
    settings = {key: "frontend", key.replace("NAME", "ALIAS").replace("name", "alias"): "www.example.test",
                key.replace("NAME", "TTL").replace("name", "ttl"): "30"}
    ignore = {key.replace("NAME", "IGNORE").replace("name", "ignore"): "true"}
    for service, values in ((web, settings), (db, ignore)):
        if where == "labels":
            service["Spec"]["Labels"].update(values)
        else:
            service["Spec"]["TaskTemplate"]["ContainerSpec"]["Env"] = [f"{k}={v}" for k, v in values.items()]
    records = swarm.manager_records(swarm.SwarmState(services, state.tasks, state.nodes, state.networks))
    frontend = [record for record in records if record.image_name == "frontend" and record.kind == "task"]
    assert len(frontend) == 3 and all(r.aliases == ("www.example.test",) and r.ttl == 30 for r in frontend)
    assert not any(record.image_name == "db" for record in records), "ignored"


def test_txt_facts_name_the_service_stack_task_and_node(state):
    record = next(r for r in swarm.manager_records(state) if r.kind == "task" and r.image_name == "api.shop")
    facts = dict(record.metadata)
    assert facts["service"] == "api" and facts["stack"] == "shop" and facts["task"] == record.id
    assert facts["node"] in swarm.node_names(sample("nodes.json")).values()


def test_a_worker_sees_the_tasks_and_vips_of_its_networks_by_name():
    network = sample("network_front_verbose.json")["worker"]
    records = names(swarm.worker_records([network]))
    assert sorted(records["vip.web"]) == sorted({vip["Addr"].split("/")[0]
                                                for s in sample("services.json") if s["Spec"]["Name"] == "web"
                                                for vip in s["Endpoint"]["VirtualIPs"]} & set(records["vip.web"]))
    assert sorted(records[f"{task['Slot']}.web"][0] for task in tasks_of("web")) == sorted(
        task_address(task, "front") for task in tasks_of("web"))
    assert "vip.db" not in records, "a dnsrr service has no VIP"
    assert "" not in {name.split(".")[-1] for name in records}, "plain containers on the network are not tasks"


def test_a_services_proxy_labels_name_its_vip_and_a_proxy_services_tasks_are_the_proxy(state):
    from dnscock.proxy_names import proxy_records

    changed = copy.deepcopy(state.services)
    web = next(service for service in changed if service["Spec"]["Name"] == "web")
    web["Spec"].setdefault("Labels", {})["traefik.http.routers.web.rule"] = "Host(`web.example.test`)"
    other = next(service for service in changed if service["Spec"]["Name"] != "web"
                 and "Replicated" in service["Spec"].get("Mode", {}))
    other["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"] = "traefik:v3.1@sha256:" + "c" * 64
    records = swarm.manager_records(swarm.SwarmState(changed, state.tasks, state.nodes, state.networks), source="sw")
    vip = next(record for record in records if record.kind == "vip" and record.container == "web")
    assert [name.host for name in vip.proxy.names] == ["web.example.test"] and not vip.proxy.serves
    proxies = [record for record in records if record.kind == "task" and record.proxy is not None]
    assert proxies and all(record.proxy.serves == "traefik" and not record.proxy.names for record in proxies)
    made = proxy_records(records, "sw")
    assert [(record.aliases, set(record.ipv4)) for record in made] == [
        (("web.example.test",), {address for record in proxies for address in record.ipv4})]
