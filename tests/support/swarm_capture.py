"""Records what a real swarm's Engine API answers, for dnscock's swarm support and its unit tests.

    python -m tests.support.swarm_capture [OUT_DIR]     (as root; default tests/support/swarm_samples)

Brings up a private two-node swarm (tests/support/swarm.py), makes a replicated
service on an attachable overlay, a global one, a dnsrr one and a stack, and saves
(trimmed) ``GET /info``, ``/services``, ``/tasks``, ``/nodes``, ``/networks/ID?verbose=true``,
the events, a task container's inspect, what a worker answers, and what Docker's
embedded DNS answers; then measures how fast the manager notices a killed task,
a drained node and a partitioned node, and what a manager without quorum answers
(a second swarm, two managers). Prints the measurements as JSON (also saved as
measurements.json). Nothing here is needed by the tests; it documents the facts.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import docker

from tests.support.swarm import PrivateSwarm

OUT = Path(__file__).resolve().parent / "swarm_samples"

STACK = """\
version: "3.8"
services:
  api:
    image: local/busybox:latest
    command: ["sleep", "3600"]
    init: true
    dns: [{nameserver}]
    environment:
      ROLE: api
    labels:
      tier: backend
    deploy:
      replicas: 2
      labels:
        team: shop
  cache:
    image: local/busybox:latest
    command: ["sleep", "3600"]
    init: true
    dns: [{nameserver}]
    deploy:
      mode: global
      endpoint_mode: dnsrr
"""

# Keys left out of the samples: certificates, resources, defaults nobody reads.
DROP = {"TLSInfo", "Resources", "ForceUpdate", "UpdateConfig", "RollbackConfig", "Platforms", "Isolation",
        "Runtime", "RestartPolicy", "Plugins", "ContainerSpec.Isolation"}


def trim(value, drop=DROP):
    if isinstance(value, dict):
        return {key: trim(item, drop) for key, item in value.items() if key not in drop}
    if isinstance(value, list):
        return [trim(item, drop) for item in value]
    return value


def save(out: Path, name: str, data) -> None:
    (out / f"{name}.json").write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def raw(client: docker.DockerClient, path: str, **params) -> tuple[int, object]:
    """``GET path`` on a client's engine: (status, decoded body)."""
    api = client.api
    response = api._get(api._url(path), params=params)
    try:
        body = response.json()
    except ValueError:
        body = response.text
    return response.status_code, body


def info_sample(client) -> dict:
    info = client.info()
    return {"ID": info["ID"], "Name": info["Name"], "ServerVersion": info["ServerVersion"],
            "Swarm": trim(info["Swarm"])}


def timed(probe, timeout=120.0, interval=0.05):
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if probe():
            return round(time.monotonic() - start, 2)
        time.sleep(interval)
    return None


def capture_main(out: Path, measurements: dict) -> None:
    root = Path(tempfile.mkdtemp(prefix="dcs-cap-", dir="/tmp"))
    t0 = time.monotonic()
    swarm = PrivateSwarm(root)
    swarm.start()
    measurements["swarm_up_seconds"] = round(time.monotonic() - t0, 2)
    try:
        capture_swarm(swarm, out, measurements)
    finally:
        t0 = time.monotonic()
        swarm.stop()
        measurements["swarm_down_seconds"] = round(time.monotonic() - t0, 2)
        measurements["leftovers_after_down"] = swarm.leftovers()


def capture_swarm(swarm: PrivateSwarm, out: Path, measurements: dict) -> None:
    client = swarm.client
    since = int(time.time()) - 1
    save(out, "info_manager", info_sample(swarm.node1.client))
    save(out, "info_worker", info_sample(swarm.node2.client))

    front = swarm.create_network("front", labels={"purpose": "samples"})
    web = swarm.create_service(
        "web", replicas=3, networks=["front"], labels={"app": "shop"}, container_labels={"role": "web"},
        env={"GREETING": "hello"}, ports={30000 + swarm.octet: 80}, max_per_node=2,
    )
    swarm.create_service("agent", mode="global", networks=["front"])
    swarm.create_service("db", replicas=2, networks=["front"], endpoint_mode="dnsrr")
    swarm.deploy_stack("shop", STACK.format(nameserver=swarm.nameserver), wait={"api": 2, "cache": 2})
    probe = swarm.run_attached("front", name="probe")

    services = client.api.services()
    save(out, "services", trim(sorted(services, key=lambda s: s["Spec"]["Name"])))
    save(out, "services_status", [{"Name": s["Spec"]["Name"], "ServiceStatus": s.get("ServiceStatus")}
                                  for s in sorted(client.api.services(status=True), key=lambda s: s["Spec"]["Name"])])
    tasks = client.api.tasks(filters={"desired-state": "running"})
    save(out, "tasks_running", trim(sorted(tasks, key=lambda t: (t["ServiceID"], t.get("Slot", 0), t["NodeID"]))))
    save(out, "nodes", trim(client.api.nodes()))
    networks = {"manager": client.api.inspect_network(front.id, verbose=True),
                "worker": swarm.node2.client.api.inspect_network(front.id, verbose=True)}
    save(out, "network_front_verbose", trim(networks))
    save(out, "networks_manager_list", trim(client.api.networks()))

    # A local task container on node 1, one of the stack's, and the probe.
    local = next(t for t in swarm.running_tasks(web) if swarm.task_node(t) is swarm.node1)
    stack_task = next(t for t in swarm.running_tasks("shop_api"))
    containers = {
        "web_task_on_node1": swarm.task_container(local).attrs,
        "stack_task": swarm.task_container(stack_task).attrs,
        "attached_probe": swarm.node1.client.api.inspect_container(probe.id),
    }
    keep = ("Id", "Name", "Config", "State", "NetworkSettings")
    save(out, "containers_inspect", {
        key: {k: (trim(v, DROP | {"Healthcheck"}) if k != "Config" else
                  {c: v[c] for c in ("Hostname", "Labels", "Env", "Image")}) for k, v in attrs.items() if k in keep}
        for key, attrs in containers.items()})

    worker = {}
    for path in ("/services", "/tasks", "/nodes", "/swarm", "/services/web", "/networks/" + front.id):
        status, body = raw(swarm.node2.client, path)
        worker[path if not path.startswith("/networks/") else "/networks/<front id>"] = {
            "status": status, "body": body if status >= 400 else f"<{type(body).__name__}, {len(body)} items>"
            if isinstance(body, list) else "<ok>"}
    save(out, "worker_answers", worker)

    # Docker's embedded DNS, from inside the probe (on node 1) and a task on node 2.
    on_node2 = next(t for t in swarm.running_tasks(web) if swarm.task_node(t) is swarm.node2)
    names = ["web", "tasks.web", "db", "tasks.db", "agent", "tasks.agent", "shop_api", "tasks.shop_api",
             "api", "tasks.api", "shop_cache", "cache", "probe",
             f"web.{on_node2['Slot']}.{on_node2['ID']}", "probe.front", "web.front", "tasks.web.front"]
    askers = {"from_probe_on_node1 (front)": probe,
              "from_web_task_on_node2 (front)": swarm.task_container(on_node2),
              "from_stack_api_task (shop_default)": swarm.task_container(stack_task)}
    dns = {asker: {} for asker in askers}
    for asker, container in askers.items():
        for name in names:
            reply = swarm.embedded_dns_reply(container, name, "A", "+noall", "+answer", "+comments", check=False)
            dns[asker][name] = [line for line in reply.strip().splitlines()
                                if line and not line.startswith((";; Got answer", ";; OPT", "; EDNS", ";; flags"))]
    dns["srv_tasks.web_from_probe"] = swarm.embedded_dns_reply(
        probe, "_http._tcp.web", "SRV", check=False).strip().splitlines()
    dns["ptr_of_a_web_task_from_probe"] = swarm.embedded_dns_reply(
        probe, ".".join(reversed(swarm.task_address(on_node2, "front").split("."))) + ".in-addr.arpa", "PTR",
        check=False).strip().splitlines()
    save(out, "embedded_dns", dns)

    # Changes, for the events: an update, a scale, a network created and removed, a drain, a removal.
    web.reload()
    web.update(labels={"app": "shop", "version": "2"})
    swarm.scale(web, 4)
    extra = swarm.create_network("extra")
    extra.remove()
    db_on_node2 = [t["ID"] for t in swarm.running_tasks("db") if swarm.task_node(t) is swarm.node2]
    start = time.monotonic()
    swarm.drain(swarm.node2)
    timed(lambda: not set(db_on_node2) & {t["ID"] for t in swarm.running_tasks("db")})
    measurements["drain_until_db_tasks_on_node2_not_running_in_manager_view_seconds"] = round(
        time.monotonic() - start, 2)
    timed(lambda: [swarm.task_node(t) for t in swarm.running_tasks("db")] == [swarm.node1] * 2)
    measurements["drain_until_db_runs_2_tasks_on_node1_seconds"] = round(time.monotonic() - start, 2)
    measurements["drain_note"] = ("web has MaxReplicas=2 per node: with node 2 drained 2 of its 4 tasks stay "
                                  "pending ('no suitable node (max replicas per node limit exceed)')")
    web_tasks = swarm.tasks(web, **{"desired-state": "running"})
    measurements["web_pending_with_node2_drained"] = sorted(
        {(t["Status"]["State"], t["Status"].get("Err", "")) for t in web_tasks if t["Status"]["State"] != "running"})
    swarm.activate(swarm.node2)
    swarm.remove_service("db")
    until = int(time.time()) + 1
    time.sleep(1.1)
    events = list(client.api.events(since=since, until=until, decode=True,
                                    filters={"type": ["service", "node", "network"]}))
    save(out, "events_manager", events)
    worker_events = list(swarm.node2.client.api.events(since=since, until=until, decode=True,
                                                       filters={"type": ["service", "node", "network"]}))
    save(out, "events_worker", worker_events)
    measurements["manager_event_kinds"] = sorted({f"{e['Type']}:{e['Action']}:{e.get('scope')}" for e in events})
    measurements["worker_event_kinds"] = sorted({f"{e['Type']}:{e['Action']}:{e.get('scope')}"
                                                 for e in worker_events})

    # A killed task on node 2: how long until the manager's /tasks (desired-state running) stops
    # saying it runs, and until its replacement runs.
    swarm.scale(web, 3)
    swarm.wait_for_tasks(web, 3, predicate=lambda ts: any(swarm.task_node(x) is swarm.node2 for x in ts))
    gone, replaced, states = [], [], []
    for _ in range(3):
        victim = next(t for t in swarm.running_tasks(web) if swarm.task_node(t) is swarm.node2)
        swarm.kill_task(victim)
        gone.append(timed(lambda victim=victim: victim["ID"] not in {x["ID"] for x in swarm.running_tasks(web)}))
        replaced.append(round(timed(lambda: len(swarm.running_tasks(web)) == 3) + gone[-1], 2))
        states.append({"after_kill": client.api.inspect_task(victim["ID"])["Status"],
                       "DesiredState": client.api.inspect_task(victim["ID"])["DesiredState"]})
    measurements["killed_task_on_node2_gone_from_running_seconds"] = gone
    measurements["killed_task_on_node2_replacement_running_seconds"] = replaced
    save(out, "killed_task_status", states)

    # node 2 cut off: what the manager's /tasks and /nodes say, and what the embedded DNS on node 1
    # answers, over time.
    swarm.wait_for_tasks(web, 3, predicate=lambda ts: any(swarm.task_node(x) is swarm.node2 for x in ts))
    node_names = {swarm.node1.node_id: "node1", swarm.node2.node_id: "node2"}

    def partition_view() -> dict:
        node2_view = next(n for n in swarm.swarm_nodes() if n["ID"] == swarm.node2.node_id)
        return {
            "node2": [node2_view["Status"]["State"], node2_view["Status"].get("Message", "")],
            "web_tasks": sorted([t["ID"][:6], node_names.get(t.get("NodeID"), "-"), t["DesiredState"],
                                 t["Status"]["State"]] for t in swarm.tasks(web)),
            "embedded_dns_tasks.web_on_node1": swarm.embedded_dns(probe, "tasks.web"),
        }

    timeline = []
    last = None
    start = time.monotonic()
    swarm.disconnect()
    while time.monotonic() - start < 45:
        view = partition_view()
        if view != last:
            timeline.append({"after_seconds": round(time.monotonic() - start, 2), **view})
            last = view
        time.sleep(0.25)
    save(out, "node_down", trim(next(n for n in swarm.swarm_nodes() if n["ID"] == swarm.node2.node_id)))
    save(out, "info_worker_partitioned", info_sample(swarm.node2.client))
    start = time.monotonic()
    swarm.reconnect()
    while time.monotonic() - start < 20:
        view = partition_view()
        if view != last:
            timeline.append({"after_reconnect_seconds": round(time.monotonic() - start, 2), **view})
            last = view
        time.sleep(0.25)
    save(out, "partition_timeline", timeline)


def capture_quorum(out: Path, measurements: dict) -> None:
    root = Path(tempfile.mkdtemp(prefix="dcs-q-", dir="/tmp"))
    t0 = time.monotonic()
    swarm = PrivateSwarm(root, managers=2)
    swarm.start()
    measurements["swarm_2_managers_up_seconds"] = round(time.monotonic() - t0, 2)
    try:
        swarm.create_network("front")
        swarm.create_service("web", replicas=2, networks=["front"])
        save(out, "info_second_manager", info_sample(swarm.node2.client))
        save(out, "nodes_2_managers", trim(swarm.swarm_nodes()))
        start = time.monotonic()
        swarm.node2.terminate()
        answers = []
        lost = None
        while time.monotonic() - start < 40:
            for path in ("/tasks", "/services", "/nodes", "/networks"):
                asked = time.monotonic()
                status, body = raw(swarm.client, path)
                answers.append({"asked_after_seconds": round(asked - start, 2),
                                "took_seconds": round(time.monotonic() - asked, 2), "path": path,
                                "status": status, "body": body if status >= 400 else "<ok>"})
                if status != 200 and lost is None:
                    lost = round(time.monotonic() - start, 2)
            if lost is not None and time.monotonic() - start > lost + 3:
                break
            time.sleep(0.5)
        # Only the changes (and the first and last of each path).
        kept, seen = [], {}
        for answer in answers:
            key = (answer["path"], answer["status"], json.dumps(answer["body"]))
            if seen.get(answer["path"]) != key:
                kept.append(answer)
                seen[answer["path"]] = key
        answers = kept + [a for a in answers[-4:] if a not in kept]
        measurements["quorum_lost_after_stopping_second_manager_seconds"] = lost
        info = info_sample(swarm.client)
        save(out, "quorum_lost", {"answers": answers, "info": info})
        # Back: the second manager restarts and rejoins.
        swarm.node2.wait_for_containerd()
        start = time.monotonic()
        swarm.node2.start()
        measurements["quorum_back_after_restart_seconds"] = timed(
            lambda: raw(swarm.client, "/tasks")[0] == 200, timeout=60)
    finally:
        swarm.stop()
        measurements["leftovers_after_down_2_managers"] = swarm.leftovers()


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else OUT
    out.mkdir(parents=True, exist_ok=True)
    measurements: dict = {}
    capture_main(out, measurements)
    capture_quorum(out, measurements)
    (out / "measurements.json").write_text(json.dumps(measurements, indent=2) + "\n")
    print(json.dumps(measurements, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
