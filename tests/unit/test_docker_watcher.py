"""DockerWatcher's sessions against an in-memory engine: subscribe, list, follow, grace, reconnect, resync.

No Docker and no sockets: ``dnscock.docker_watcher.EngineClient`` is patched
to open clients on a ``FakeEngine`` (tests/support/fake_engine_client.py),
which the test drives by hand: it changes containers, sends events, ends or
breaks the event stream and makes calls fail. The watcher runs in its own
greenlets, as in dnscock; ``engine.settle()`` waits until it has applied
every event sent so far. tests/docker/test_engine_tracking.py checks the
same behaviour end to end against a real engine.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter

import gevent
import pytest

from dnscock import docker_watcher, reconnect
from dnscock.docker_watcher import DockerWatcher, WatchOptions
from dnscock.engine import PodMember
from dnscock.naming import NamingOptions
from dnscock.records import Record, RecordStore
from tests.support.fake_engine_client import FakeEngine, container_id, until

pytestmark = pytest.mark.timeout(10)

URL = "unix:///fake/docker.sock"
LONG_AGO = time.time() - 3600  # engine time of events replayed from before this session


@pytest.fixture
def engine(monkeypatch) -> FakeEngine:
    fake = FakeEngine()
    monkeypatch.setattr(docker_watcher, "EngineClient", fake.client)
    # Reconnect in milliseconds, not seconds.
    monkeypatch.setattr(reconnect, "BACKOFF_FIRST", 0.001)
    monkeypatch.setattr(reconnect, "BACKOFF_MAX", 0.004)
    return fake


@pytest.fixture
def watch(engine):
    """Starts a watcher on the fake engine (no grace, no periodic resync unless asked); stops it after the test."""
    watchers: list[DockerWatcher] = []

    def start(store: RecordStore | None = None, *, settle: bool = True, **options) -> DockerWatcher:
        options.setdefault("grace", 0.0)
        options.setdefault("resync_interval", 0.0)
        watcher = DockerWatcher(URL, store if store is not None else RecordStore(), "docker", WatchOptions(**options))
        watchers.append(watcher)
        watcher.start()
        if settle:
            engine.settle()
        return watcher

    yield start
    for watcher in watchers:
        watcher.stop()


def served(store: RecordStore) -> dict[str, tuple[str, ...]]:
    """Container name -> IPv4 addresses, for the containers answered with records (not those in grace)."""
    return {record.container: record.ipv4 for record in store if not record.stopped}


def inspected(engine: FakeEngine, name: str) -> int:
    return engine.calls.count(f"inspect {name}")


# -- a session: subscribe, then list --


def test_the_subscription_comes_before_the_listing_so_a_container_started_in_between_is_not_lost(engine, watch):
    engine.run("early", "172.17.0.2")

    def a_container_starts_after_the_snapshot():
        engine.during_list = None
        engine.run("late", "172.17.0.3")
        engine.emit("start", container_id("late"))

    engine.during_list = a_container_starts_after_the_snapshot
    watcher = watch()
    assert served(watcher.store) == {"early": ("172.17.0.2",), "late": ("172.17.0.3",)}
    assert engine.calls[:4] == ["connect", "events", "info", "list"]  # subscribed first, listed after


def test_the_first_listing_replaces_the_table_sets_synced_and_connected(engine, watch):
    store = RecordStore()
    store.put(Record(id="f" * 64, container="stale", labels=("stale", "redis"), ipv4=("172.17.0.99",)))
    store.put_manual(Record(id="pinned", container="", labels=("pinned",), ipv4=("192.0.2.7",)))
    store.set_reachable("", False)  # as after an outage
    alpha = engine.run("alpha", "172.17.0.2")
    engine.run("stopped", "172.17.0.3", running=False)

    watcher = watch(store, settle=False)
    assert not store.synced.is_set() and not watcher.connected
    engine.settle()

    assert store.synced.is_set()
    assert watcher.connected
    assert store.unavailable is False
    assert {record.id for record in store} == {alpha, "pinned"}, "stale record gone, manual service kept"
    record = store.get(alpha)
    assert (record.labels, record.ipv4, record.stopped) == (("alpha", "redis"), ("172.17.0.2",), False)


# -- events are hints: the inspect data decides --


def test_a_start_event_for_a_container_that_no_longer_runs_leaves_nothing(engine, watch):
    watcher = watch()
    flash = engine.run("flash", running=False)  # started and died before we could look
    engine.emit("start", flash)
    engine.settle()
    assert inspected(engine, "flash") == 1
    assert watcher.store.get(flash) is None


def test_a_replayed_die_for_a_container_that_runs_now_is_inspected_and_keeps_it(engine, watch):
    alpha = engine.run("alpha", "172.17.0.2")
    watcher = watch(grace=5)
    before = watcher.store.get(alpha)
    engine.emit("die", alpha, when=LONG_AGO)
    engine.settle()
    assert inspected(engine, "alpha") == 2, "the listing, then the replayed event"
    assert watcher.store.get(alpha) == before
    assert watcher.events[("container", "die")] == 1


def test_a_live_die_is_not_inspected_and_stops_the_container_at_once(engine, watch):
    alpha = engine.run("alpha", "172.17.0.2")
    watcher = watch(grace=5)
    # The engine still says running: it is tearing the container down (inspect would wait for it).
    engine.emit("die", alpha)
    engine.settle()
    assert inspected(engine, "alpha") == 1, "the listing only"
    assert watcher.store.get(alpha).stopped


# -- the grace window --


def test_a_stopped_container_answers_empty_for_the_grace_window_then_goes(engine, watch):
    grace = 0.05
    alpha = engine.run("alpha", "172.17.0.2", env={"DNSDOCK_TTL": "30"})
    watcher = watch(grace=grace)
    running = watcher.store.get(alpha)

    stopped_at = time.monotonic()
    engine.set_running(alpha, False)
    engine.emit("die", alpha)
    engine.settle()
    ghost = watcher.store.get(alpha)
    assert ghost.stopped
    assert (ghost.ipv4, ghost.ipv6, ghost.ports, ghost.ttl) == ((), (), (), 0)
    assert (ghost.labels, ghost.aliases) == (running.labels, running.aliases), "its names stay"

    gevent.sleep(grace / 2)
    assert watcher.store.get(alpha) == ghost
    until(lambda: watcher.store.get(alpha) is None)
    assert time.monotonic() - stopped_at >= grace * 0.9


def test_without_grace_a_stopped_container_goes_at_once(engine, watch):
    alpha = engine.run("alpha", "172.17.0.2")
    watcher = watch(grace=0)
    generation = watcher.store.generation
    engine.set_running(alpha, False)
    engine.emit("die", alpha)
    engine.settle()
    assert watcher.store.get(alpha) is None
    assert watcher.store.generation == generation + 1, "one change: no empty record in between"


def test_a_restart_within_the_grace_window_replaces_the_empty_record(engine, watch):
    grace = 0.05
    alpha = engine.run("alpha", "172.17.0.2")
    watcher = watch(grace=grace)
    engine.set_running(alpha, False)
    engine.emit("die", alpha)
    engine.settle()
    assert watcher.store.get(alpha).stopped

    engine.run("alpha", "172.17.0.9")  # back, with another address
    engine.emit("start", alpha)
    engine.settle()
    restarted = watcher.store.get(alpha)
    assert (restarted.stopped, restarted.ipv4) == (False, ("172.17.0.9",))
    gevent.sleep(grace * 3)  # the first stop's window has passed
    assert watcher.store.get(alpha) == restarted


@pytest.mark.parametrize("relisting", ["resync", "reconnect"])
def test_a_new_listing_keeps_a_stopped_container_for_the_rest_of_its_grace_window(engine, watch, relisting):
    grace = 0.2
    alpha = engine.run("alpha", "172.17.0.2")
    engine.run("beta", "172.17.0.3")
    watcher = watch(grace=grace, resync_interval=0.01 if relisting == "resync" else 0)
    engine.set_running(alpha, False)
    engine.emit("die", alpha)
    engine.settle()
    ghost = watcher.store.get(alpha)
    assert ghost.stopped

    if relisting == "resync":
        done = watcher.resyncs["done"]
        until(lambda: watcher.resyncs["done"] >= done + 2, what="two resyncs")
    else:
        engine.break_stream()
        until(lambda: len(engine.streams) == 2)
        engine.settle()
    assert watcher.store.get(alpha) == ghost, "the listing does not cut the grace window short"
    assert "beta" in served(watcher.store)
    until(lambda: watcher.store.get(alpha) is None, what="the grace window to end")


# -- which events count --


def test_network_connect_and_disconnect_refresh_the_container(engine, watch):
    alpha = engine.run("alpha", "172.17.0.2")
    watcher = watch()

    engine.connect_network(alpha, "backend", "10.1.0.2")
    engine.emit("connect", alpha, kind="network")
    engine.settle()
    assert watcher.store.get(alpha).ipv4 == ("10.1.0.2", "172.17.0.2")
    assert watcher.store.get(alpha).networks == ("backend", "bridge")

    engine.connect_network(alpha, "backend", None)
    engine.emit("disconnect", alpha, kind="network")
    engine.settle()
    assert watcher.store.get(alpha).ipv4 == ("172.17.0.2",)
    assert watcher.events == Counter({("network", "connect"): 1, ("network", "disconnect"): 1})


@pytest.mark.parametrize(
    ("kind", "action"),
    [
        ("container", "exec_create: sh -c true"),
        ("container", "exec_start: sh -c true"),
        ("container", "exec_die"),
        ("container", "kill"),  # only a signal; its "die" follows
        ("container", "create"),
        ("container", "attach"),
        ("container", "resize"),
        ("container", ""),
        ("network", "create"),
        ("network", "destroy"),
        ("image", "pull"),
        ("volume", "mount"),
        ("plugin", "start"),
    ],
)
def test_events_that_cannot_change_a_record_are_ignored_and_not_counted(engine, watch, kind, action):
    alpha = engine.run("alpha", "172.17.0.2")
    watcher = watch()
    engine.connect_network(alpha, "backend", "10.1.0.2")  # a change only an inspect would see
    engine.emit(action, alpha, kind=kind)
    engine.settle()
    assert watcher.events == Counter()
    assert inspected(engine, "alpha") == 1, "the listing only"
    assert watcher.store.get(alpha).ipv4 == ("172.17.0.2",)


def test_applied_events_are_counted_by_type_and_action(engine, watch):
    alpha = engine.run("alpha", "172.17.0.2", health="healthy")
    watcher = watch()
    for action in ("pause", "unpause", "health_status: healthy", "rename", "update", "restart"):
        engine.emit(action, alpha)
    engine.emit("start", "")  # no container named: nothing to apply
    engine.emit("exec_start: true", alpha)
    engine.settle()
    assert watcher.events == Counter({("container", action): 1 for action in (
        "pause", "unpause", "health_status", "rename", "update", "restart")})
    assert inspected(engine, "alpha") == 1 + 6


# -- what is served --


@pytest.mark.parametrize("serve_unhealthy", [False, True])
def test_unhealthy_containers_are_withheld_unless_asked(engine, watch, serve_unhealthy):
    engine.run("sick", "172.17.0.2", health="unhealthy")
    fine = engine.run("fine", "172.17.0.3", health="healthy")
    engine.run("starting", "172.17.0.4", health="starting")
    watcher = watch(serve_unhealthy=serve_unhealthy)
    assert set(served(watcher.store)) == {"sick", "fine", "starting"} - ({"sick"} if not serve_unhealthy else set())

    engine.containers[fine]["State"]["Health"]["Status"] = "unhealthy"
    engine.emit("health_status: unhealthy", fine)
    engine.settle()
    assert ("fine" in served(watcher.store)) is serve_unhealthy


def test_a_container_on_the_host_network_is_skipped_without_a_host_ip_and_logged_once(engine, watch, caplog):
    onhost = engine.run("onhost", None, network_mode="host")
    with caplog.at_level(logging.INFO, logger="dnscock.docker"):
        watcher = watch()
        for action in ("restart", "update"):
            engine.emit(action, onhost)
        engine.settle()
    assert watcher.store.get(onhost) is None
    skipped = [r for r in caplog.records if "uses the host's network: skipped" in r.getMessage()]
    assert [r.getMessage() for r in skipped] == [
        "container onhost uses the host's network: skipped (set -host-ip to serve it)"]


def test_a_container_on_the_host_network_answers_with_the_host_ip_when_set(engine, watch):
    onhost = engine.run("onhost", None, network_mode="host")
    watcher = watch(naming=NamingOptions(host_ip="192.0.2.10"))
    assert watcher.store.get(onhost).ipv4 == ("192.0.2.10",)


def test_a_container_sharing_another_containers_network_takes_its_addresses(engine, watch):
    target = engine.run("target", "172.17.0.5")
    engine.run("sidecar", None, network_mode=f"container:{target}")
    watcher = watch()
    later = engine.run("latecomer", None, network_mode=f"container:{target}")
    engine.emit("start", later)
    engine.settle()
    assert served(watcher.store) == {name: ("172.17.0.5",) for name in ("target", "sidecar", "latecomer")}


# -- outages and reconnects --


@pytest.mark.parametrize("call", ["connect", "events", "list", "inspect"])
def test_a_session_failing_at_any_step_is_retried_and_cleans_up(engine, watch, call):
    alpha = engine.run("alpha", "172.17.0.2")
    engine.fail(call, times=2)
    watcher = watch()
    assert watcher.connected and watcher.store.get(alpha) is not None
    assert engine.calls.count(f"{call} failed") == 2
    assert engine.clients[-1].closed is False
    assert all(client.closed for client in engine.clients[:-1]), "each failed session closed its client"
    assert all(stream.closed for stream in engine.streams[:-1]), "and its event stream"


def test_a_lost_engine_keeps_the_last_table_then_replays_since_the_last_event_and_relists(engine, watch):
    alpha = engine.run("alpha", "172.17.0.2")
    beta = engine.run("beta", "172.17.0.3")
    watcher = watch()
    last = engine.emit("update", alpha)
    engine.settle()

    engine.fail("events", times=math.inf)  # the engine is down: every new subscription fails
    engine.break_stream()
    until(lambda: not watcher.connected, what="the watcher to see the engine gone")
    until(lambda: engine.calls.count("events failed") >= 3, what="a few reconnect attempts")
    assert watcher.store.unavailable is True
    assert served(watcher.store) == {"alpha": ("172.17.0.2",), "beta": ("172.17.0.3",)}, "the last table is kept"
    assert engine.streams[0].closed and engine.clients[0].closed

    # The engine comes back having lost beta and gained gamma, with no event for either.
    engine.remove(beta)
    engine.run("gamma", "172.17.0.4")
    engine.heal()
    engine.settle()
    assert watcher.connected and watcher.store.unavailable is False
    assert engine.since == [None, last["time"]], "the new session replays from the last event's second"
    assert served(watcher.store) == {"alpha": ("172.17.0.2",), "gamma": ("172.17.0.4",)}
    assert engine.calls.count("list") == 2


def test_an_event_stream_that_ends_is_an_outage_too(engine, watch, caplog):
    alpha = engine.run("alpha", "172.17.0.2")
    with caplog.at_level(logging.DEBUG, logger="dnscock.docker"):
        watcher = watch()
        engine.end_stream()
        until(lambda: len(engine.streams) == 2)
        engine.settle()
    assert watcher.connected and watcher.store.get(alpha) is not None
    assert engine.calls.count("list") == 2
    assert [(r.levelno, r.getMessage()) for r in caplog.records if r.levelno >= logging.WARNING] == [
        (logging.WARNING, f"lost the Docker engine at {URL}: the event stream ended")]


def test_one_warning_per_outage_then_debug_lines(engine, watch, caplog):
    engine.fail("connect", times=2)
    with caplog.at_level(logging.DEBUG, logger="dnscock.docker"):
        watch()  # fails twice, then connects: one outage
        engine.fail("connect", times=2)
        engine.break_stream()  # a second outage: the stream breaks, then connecting fails twice
        until(lambda: len(engine.streams) == 2)
        engine.settle()
    levels = [r.levelno for r in caplog.records if r.getMessage().startswith("cannot reach the Docker engine")]
    assert levels == [logging.WARNING, logging.DEBUG, logging.WARNING, logging.DEBUG, logging.DEBUG]


def test_stop_ends_the_session_and_closes_the_client(engine, watch):
    watcher = watch()
    watcher.stop()
    assert watcher._greenlet.dead
    assert engine.clients[0].closed and engine.stream.closed


# -- resyncs --


def test_a_resync_is_skipped_when_the_table_changed_while_listing(engine):
    alpha = engine.run("alpha", "172.17.0.2")
    beta = engine.run("beta", "172.17.0.3")
    watcher = DockerWatcher(URL, RecordStore(), "docker", WatchOptions(grace=0, resync_interval=0))
    client = engine.client(URL)
    assert watcher._sync(client, initial=True) is True
    engine.remove(beta)  # drift: no event said so

    def an_event_is_applied_meanwhile(name: str, ip: str):
        def apply():
            engine.during_list = None
            watcher._apply(client, engine.emit("start", engine.run(name, ip)))
        return apply

    engine.during_list = an_event_is_applied_meanwhile("gamma", "172.17.0.4")
    generation = watcher.store.generation
    assert watcher._sync(client) is False
    assert watcher.store.generation == generation + 1, "only the event changed the table"
    assert set(served(watcher.store)) == {"alpha", "beta", "gamma"}, "the older listing was not applied"

    assert watcher._sync(client) is True
    assert set(served(watcher.store)) == {"alpha", "gamma"}

    # A session's first listing comes before it applies any event; the HTTP API may still write meanwhile.
    def a_manual_service_is_put_meanwhile():
        engine.during_list = None
        watcher.store.put_manual(Record(id="pinned", container="", labels=("pinned",), ipv4=("192.0.2.7",)))

    engine.during_list = a_manual_service_is_put_meanwhile
    engine.remove(alpha)
    assert watcher._sync(client, initial=True) is True, "the first listing of a session always applies"
    assert {record.id for record in watcher.store} == {container_id("gamma"), "pinned"}


def test_the_periodic_resync_corrects_drift_and_counts_done_and_skipped(engine, watch):
    engine.run("alpha", "172.17.0.2")
    beta = engine.run("beta", "172.17.0.3")
    watcher = watch(resync_interval=0.01)
    engine.remove(beta)  # no event: only a resync can notice
    until(lambda: "beta" not in served(watcher.store), what="a resync to drop beta")
    assert watcher.resyncs["done"] >= 1 and watcher.resyncs["skipped"] == 0

    def a_container_starts_while_listing():
        engine.during_list = None
        engine.emit("start", engine.run("gamma", "172.17.0.4"))
        engine.settle()  # the session applies it while the resync waits on its listing

    engine.during_list = a_container_starts_while_listing
    until(lambda: watcher.resyncs["skipped"] == 1, what="a skipped resync")
    done = watcher.resyncs["done"]
    until(lambda: watcher.resyncs["done"] > done, what="the next resync")
    assert watcher.resyncs["skipped"] == 1
    assert set(served(watcher.store)) == {"alpha", "gamma"}


# -- bugs these tests found, fixed --


def test_a_manual_service_with_a_containers_id_outlives_that_container(engine, watch):
    alpha = engine.run("alpha", "172.17.0.2", running=False)  # created, not started
    watcher = watch(grace=0.02)
    watcher.store.put_manual(Record(id=alpha, container="", labels=("pinned",), ipv4=("192.0.2.7",)))
    engine.set_running(alpha, True)
    engine.emit("start", alpha)
    engine.set_running(alpha, False)
    engine.emit("die", alpha)
    engine.settle()
    gevent.sleep(0.05)
    record = watcher.store.get(alpha)
    assert (record.manual, record.stopped, record.ipv4) == (True, False, ("192.0.2.7",))


def test_a_container_sharing_another_containers_network_follows_its_network_changes(engine, watch):
    target = engine.run("target", "172.17.0.5")
    sidecar = engine.run("sidecar", None, network_mode=f"container:{target}")
    watcher = watch()
    engine.connect_network(target, "backend", "10.1.0.5")
    engine.emit("connect", target, kind="network")
    engine.settle()
    assert watcher.store.get(target).ipv4 == ("10.1.0.5", "172.17.0.5")
    assert watcher.store.get(sidecar).ipv4 == ("10.1.0.5", "172.17.0.5")


def test_a_container_that_stops_twice_gets_a_full_grace_window_the_second_time(engine, watch):
    grace = 0.2
    alpha = engine.run("alpha", "172.17.0.2")
    watcher = watch(grace=grace)
    first_stop = time.monotonic()
    engine.set_running(alpha, False)
    engine.emit("die", alpha)
    engine.settle()
    gevent.sleep(grace / 4)
    engine.set_running(alpha, True)
    engine.emit("start", alpha)
    engine.settle()
    gevent.sleep(grace / 4)
    engine.set_running(alpha, False)
    engine.emit("die", alpha)  # about grace/2 after the first stop: its window ends about 1.5 * grace after it
    engine.settle()
    gevent.sleep(first_stop + grace * 1.25 - time.monotonic())
    assert watcher.store.get(alpha) is not None and watcher.store.get(alpha).stopped


# -- Podman --


def test_on_podman_a_pods_infra_is_not_served_and_its_members_answer_the_pod_name(engine, watch):
    engine.product = "Podman 4.3.1"
    infra = engine.run("1f38287f0627-infra", "10.88.0.4", image="localhost/podman-pause:4.3.1-0")
    web = engine.run("shopweb", "10.88.0.4", image="local/busybox:latest", network_mode=f"container:{infra}")
    engine.pods = {infra: PodMember("shop", True), web: PodMember("shop", False)}
    store = RecordStore()
    watcher = watch(store)
    assert served(store) == {"shopweb": ("10.88.0.4",)}
    assert [record.container for record in store.match(("shop", "pod"))] == ["shopweb"]
    assert [record.container for record in store.by_address("10.88.0.4")] == ["shopweb"]  # PTR: not the infra
    assert watcher.product == "Podman 4.3.1"
    # A member that joins a pod not seen yet: the pods are read again, once.
    db = engine.run("shopdb", "10.88.0.4", image="local/busybox:latest", network_mode=f"container:{infra}")
    engine.pods[db] = PodMember("shop", False)
    calls = engine.calls.count("pods")
    engine.emit("start", db, attributes={"podId": "1f38287f0627", "name": "shopdb"})
    engine.settle()
    assert sorted(served(store)) == ["shopdb", "shopweb"] and engine.calls.count("pods") == calls + 1


def test_a_pod_member_with_empty_network_settings_answers_the_infras_address(engine, watch):
    """Podman versions before and after 4.3 have shown pod members with no network settings at all (podman
    #8073, #21340) and a network mode that is not container:<infra>: the pod's network is the infra's."""
    engine.product = "Podman 4.9.3"
    infra = engine.run("1f38287f0627-infra", "10.88.0.7", image="localhost/podman-pause:4.9.3-0")
    web = engine.run("shopweb", None, image="local/busybox:latest", network_mode="default")
    engine.pods = {infra: PodMember("shop", True, infra), web: PodMember("shop", False, infra)}
    store = RecordStore()
    watch(store)
    assert served(store) == {"shopweb": ("10.88.0.7",)}
    assert [record.container for record in store.match(("shop", "pod"))] == ["shopweb"]
    # The infra's address changes (its network reconnected): the member follows.
    engine.connect_network(infra, "podman", "10.88.0.9")
    engine.containers[infra]["NetworkSettings"]["IPAddress"] = ""
    engine.emit("connect", infra, kind="network")
    engine.settle()
    assert "10.88.0.9" in served(store)["shopweb"]


def test_on_docker_no_pods_are_asked_for(engine, watch):
    engine.run("web", "172.17.0.2")
    watch()
    assert "pods" not in engine.calls


def published(engine: FakeEngine, name: str, ip: str, *bindings: tuple[str, str, str]) -> str:
    """A container publishing (container port/protocol, host IP, host port) bindings."""
    cid = engine.run(name, ip)
    ports: dict[str, list[dict[str, str]]] = {}
    for port, host_ip, host_port in bindings:
        ports.setdefault(port, []).append({"HostIp": host_ip, "HostPort": host_port})
    engine.containers[cid]["NetworkSettings"]["Ports"] = ports
    return cid


@pytest.mark.parametrize("info", [{"Rootless": True}, {"SecurityOptions": ["name=seccomp", "name=rootless"]}])
def test_a_rootless_engine_answers_what_its_containers_publish_and_nothing_else(engine, watch, info):
    engine.info = info
    published(engine, "local", "10.91.0.2", ("80/tcp", "127.0.0.1", "8080"))
    published(engine, "everywhere", "10.91.0.3", ("80/tcp", "", "8081"), ("443/tcp", "0.0.0.0", "8443"))
    engine.run("hidden", "10.91.0.4")
    store = RecordStore()
    watch(store, naming=NamingOptions(host_ip="192.0.2.10"), host_name="host")
    by_name = {record.container: record for record in store}
    assert by_name["local"].ipv4 == ("127.0.0.1",) and by_name["local"].published == ((80, "tcp", 8080),)
    assert by_name["everywhere"].ipv4 == ("192.0.2.10",)  # bound to every address: the host's own
    assert by_name["hidden"].ipv4 == () and not by_name["hidden"].places  # listed, with no address
    assert by_name["(the host)"].ipv4 == ("192.0.2.10",)  # not the rootless bridge's gateway


@pytest.mark.parametrize(("address", "answered"), [("published", "127.0.0.1"), ("", "172.17.0.2")])
def test_address_published_asks_for_that_mode_on_any_engine(engine, watch, address, answered):
    published(engine, "web", "172.17.0.2", ("80/tcp", "127.0.0.1", "8080"))
    store = RecordStore()
    watch(store, naming=NamingOptions(engine_address=address))
    assert store.get(container_id("web")).ipv4 == (answered,)  # a rootful engine keeps the container's own


def test_a_pod_listing_that_cannot_be_read_is_logged_once_and_the_table_stays(engine, watch, caplog):
    engine.product = "Podman 4.3.1"
    engine.run("web", "10.88.0.5")
    engine.fail("pods", times=2)
    store = RecordStore()
    with caplog.at_level(logging.WARNING, logger="dnscock.docker"):
        watch(store)
        engine.emit("start", engine.run("other", "10.88.0.6"), attributes={"podId": "abc"})
        engine.settle()
    assert sorted(served(store)) == ["other", "web"]
    assert caplog.text.count("cannot read the pods") == 1
