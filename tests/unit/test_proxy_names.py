"""Names from reverse proxies' labels: the rules read (tables), proxies recognised, the records made from them."""

from __future__ import annotations

import dataclasses

import pytest

from dnscock.proxy_names import (
    CADDY,
    NGINX_PROXY,
    TRAEFIK,
    ProxyNames,
    caddy_hosts,
    facts_from,
    image_repository,
    proxy_kind,
    proxy_records,
    proxy_source,
    traefik_hosts,
)
from dnscock.records import ProxyName, Record, RecordStore
from tests.support.resolver_kit import addresses, ask, make_resolver

ENGINE = "unix:///run/docker.sock"


@pytest.mark.parametrize(("rule", "hosts"), [
    ("Host(`a.example.test`)", ["a.example.test"]),
    ("Host(`a.example.test`, `b.example.test`)", ["a.example.test", "b.example.test"]),  # v2: several
    ('Host("a.example.test")', ["a.example.test"]),
    ("Host(`a.example.test`) || Host(`b.example.test`)", ["a.example.test", "b.example.test"]),
    ("Host(`a.example.test`) && PathPrefix(`/api`)", ["a.example.test"]),
    ("(Host(`a.example.test`) || Host(`b.example.test`)) && Method(`GET`)", ["a.example.test", "b.example.test"]),
    ("HostRegexp(`{sub:[a-z]+}.example.test`)", []),
    ("HostSNI(`*`)", []),
    ("PathPrefix(`/api`)", []),
    ("Host(`a.example.test`) && !Host(`b.example.test`)", ["a.example.test"]),  # a negated host serves nothing
    ("HostHeader(`old.example.test`) || Host ( `spaced.example.test` )", ["spaced.example.test"]),
])
def test_traefik_rules_give_the_hosts_they_match(rule, hosts):
    assert traefik_hosts(rule) == hosts


@pytest.mark.parametrize("rule", ["Host(a.example.test)", "Host(`a.example.test`", "Host(`a`, b)"])
def test_a_traefik_rule_that_cannot_be_read_is_none(rule):
    assert traefik_hosts(rule) is None


@pytest.mark.parametrize(("value", "hosts"), [
    ("a.example.test", ["a.example.test"]),
    ("a.example.test b.example.test", ["a.example.test", "b.example.test"]),
    ("http://a.example.test, https://b.example.test:8443/path", ["a.example.test", "b.example.test"]),
    ("*.example.test", ["*.example.test"]),
    (":80", []),
    ("(snippet)", []),
])
def test_caddy_site_addresses_give_their_hosts(value, hosts):
    assert caddy_hosts(value) == hosts


@pytest.mark.parametrize(("image", "labels", "kind"), [
    ("traefik:v3.1", {}, TRAEFIK),
    ("docker.io/library/traefik:2.11", {}, TRAEFIK),
    ("registry.example.test:5000/traefik@sha256:" + "a" * 64, {}, TRAEFIK),
    ("nginxproxy/nginx-proxy:1.6", {}, NGINX_PROXY),
    ("jwilder/nginx-proxy", {}, NGINX_PROXY),
    ("ghcr.io/lucaslorentz/caddy-docker-proxy:2.9-alpine", {}, CADDY),
    ("my/own-proxy", {"com.dnscock.proxy": "Traefik"}, TRAEFIK),
    ("someone/traefik", {}, ""),  # not the image of that name
    ("nginx", {}, ""),
])
def test_a_proxy_is_recognised_by_its_image_or_a_label(image, labels, kind):
    assert proxy_kind(image, labels) == kind


def test_image_repository_drops_registry_tag_and_digest():
    assert image_repository("localhost:5000/team/app:1@sha256:" + "b" * 64) == "team/app"
    assert image_repository("Registry.Example.Test/Team/App") == "team/app"


def test_an_apps_labels_and_env_give_its_names_with_where_each_came_from():
    facts = facts_from("shop:1", {
        "traefik.http.routers.web.rule": "Host(`Shop.Example.Test`) || Host(`www.example.test`)",
        "traefik.http.routers.api.rule": "Host(`api.example.test`) && PathPrefix(`/v1`)",
        "traefik.http.routers.broken.rule": "Host(shop)",
        "caddy": "https://shop.example.test",
        "caddy_1": "*.shop.example.test",
        "caddy.reverse_proxy": "{{upstreams 80}}",  # a caddy directive, not a site address
    }, {"VIRTUAL_HOST": "nginx.example.test,~^regex\\.example\\.test$, 10.0.0.1"})
    assert facts.serves == "" and facts.traefik_enable is None
    assert set(facts.names) == {
        ProxyName("api.example.test", TRAEFIK, "traefik.http.routers.api.rule"),
        ProxyName("shop.example.test", TRAEFIK, "traefik.http.routers.web.rule"),
        ProxyName("www.example.test", TRAEFIK, "traefik.http.routers.web.rule"),
        ProxyName("shop.example.test", CADDY, "caddy"),
        ProxyName("*.shop.example.test", CADDY, "caddy_1"),
        ProxyName("nginx.example.test", NGINX_PROXY, "VIRTUAL_HOST"),
    }
    assert [problem.split(":")[0] for problem in facts.problems] == [
        "traefik.http.routers.broken.rule", "VIRTUAL_HOST", "VIRTUAL_HOST"]
    assert facts_from("redis", {}, {}) is None  # nothing to say: no facts at all


@pytest.mark.parametrize(("command", "env", "opt_in"), [
    (["traefik", "--providers.docker=true"], {}, False),
    (["traefik", "--providers.docker.exposedbydefault=false"], {}, True),
    (["traefik", "--providers.docker.exposedByDefault", "false"], {}, True),
    (["traefik"], {"TRAEFIK_PROVIDERS_DOCKER_EXPOSEDBYDEFAULT": "false"}, True),
])
def test_traefik_exposing_only_opted_in_containers_is_read_from_its_command_or_env(command, env, opt_in):
    facts = facts_from("traefik:v3", {}, env, command)
    assert facts.serves == TRAEFIK and facts.opt_in is opt_in


def container(name: str, ip: str, image: str = "app", labels: dict | None = None, env: dict | None = None,
              command: tuple[str, ...] = (), source: str = ENGINE, network: str = "front") -> Record:
    return Record(f"{name:0<64}", name, (name, image.split(":")[0].split("/")[-1]), ipv4=(ip,), source=source,
                  places=((ip, "10.9.0.0/16", network),), proxy=facts_from(image, labels or {}, env or {}, command))


def answers(records: list[Record]) -> dict[str, tuple[str, ...]]:
    return {record.aliases[0]: record.ipv4 for record in proxy_records(records, ENGINE)}


def test_names_answer_the_proxy_that_serves_them_one_record_a_name():
    traefik = container("traefik", "10.9.0.2", image="traefik:v3")
    apps = [container(f"app{i}", f"10.9.1.{i}", labels={"traefik.http.routers.r.rule": "Host(`shop.example.test`)"})
            for i in (1, 2)]
    made = proxy_records([traefik, *apps], ENGINE)
    assert [(record.aliases, record.ipv4, record.kind, record.source) for record in made] == [
        (("shop.example.test",), ("10.9.0.2",), "proxy", proxy_source(ENGINE))]
    assert ("from", "app1: traefik.http.routers.r.rule") in made[0].metadata
    assert made[0].places == traefik.places  # split horizon: the proxy's places


def test_without_its_proxy_a_name_answers_the_host_and_nothing_without_a_host_record():
    app = container("app", "10.9.1.1", env={"VIRTUAL_HOST": "shop.example.test"})
    host = Record(f"host:{ENGINE}", "(the host)", (), aliases=("host.docker",), ipv4=("172.17.0.1",),
                  source=ENGINE, kind="host")
    assert answers([app, host]) == {"shop.example.test": ("172.17.0.1",)}
    assert answers([app]) == {}


def test_traefik_enable_and_exposed_by_default():
    rule = {"traefik.http.routers.r.rule": "Host(`a.example.test`)"}
    off = container("off", "10.9.1.1", labels={**rule, "traefik.enable": "false"})
    plain = container("plain", "10.9.1.2", labels={"traefik.http.routers.r.rule": "Host(`b.example.test`)"})
    opted = container("opted", "10.9.1.3", labels={"traefik.http.routers.r.rule": "Host(`c.example.test`)",
                                                    "traefik.enable": "true"})
    default = container("traefik", "10.9.0.2", image="traefik:v3")
    assert set(answers([default, off, plain, opted])) == {"b.example.test", "c.example.test"}
    opt_in = container("traefik", "10.9.0.2", image="traefik:v3", command=(
        "traefik", "--providers.docker.exposedbydefault=false"))
    assert set(answers([opt_in, off, plain, opted])) == {"c.example.test"}


def test_a_stopped_proxy_counts_for_nothing():
    app = container("app", "10.9.1.1", labels={"caddy": "a.example.test"})
    caddy = container("caddy", "10.9.0.3", image="lucaslorentz/caddy-docker-proxy")
    assert answers([app, caddy]) == {"a.example.test": ("10.9.0.3",)}
    assert answers([app, dataclasses.replace(caddy, stopped=True)]) == {}


def test_the_store_keeps_each_engines_proxy_names_and_an_exact_alias_wins(caplog):
    store = RecordStore()
    app = container("app", "10.9.1.1", labels={"caddy": "a.example.test b.example.test",
                                                "traefik.http.routers.x.rule": "Host(nope)"})
    caddy = container("caddy", "10.9.0.3", image="lucaslorentz/caddy-docker-proxy")
    elsewhere = container("caddy2", "10.8.0.3", image="lucaslorentz/caddy-docker-proxy", source="tcp://other:2375")
    owner = Record("o" * 64, "owner", ("owner", "img"), aliases=("b.example.test",), ipv4=("10.9.5.5",), source=ENGINE)
    store.replace_all([app, elsewhere, owner], ENGINE)
    names = ProxyNames(store)
    names.refresh()
    assert [record.id for record in store.by_alias("a.example.test")] == []  # no proxy on app's engine
    store.put(caddy)
    generation = store.generation
    names.refresh()
    assert store.generation == generation + 1  # one change for the whole update
    assert [record.ipv4 for record in store.by_alias("a.example.test")] == [("10.9.0.3",)]
    names.refresh()
    assert store.generation == generation + 1  # nothing differs: no change
    assert [r.kind for r in store.by_address("10.9.0.3")] == ["container"]  # the proxy's PTR is its own
    store.remove(caddy.id)
    names.refresh()
    assert store.by_alias("a.example.test") == []
    assert caplog.text.count("Host(nope)") == 1  # logged once, whatever the refreshes


def test_a_change_that_says_nothing_about_proxies_costs_no_remaking(monkeypatch):
    from dnscock import proxy_names

    made = []
    monkeypatch.setattr(proxy_names, "proxy_records", lambda records, source: made.append(source) or [])
    store = RecordStore()
    store.replace_all([container("app", "10.9.1.1", labels={"caddy": "a.example.test"}),
                       container("caddy", "10.9.0.3", image="lucaslorentz/caddy-docker-proxy")], ENGINE)
    names = ProxyNames(store)
    names.refresh()
    assert len(made) == 1
    store.put(container("plain", "10.9.1.2"))  # a container with no proxy labels starts
    names.refresh()
    assert len(made) == 1, "nothing proxy names are made from changed"
    store.put(container("app2", "10.9.1.3", labels={"caddy": "b.example.test"}))
    names.refresh()
    assert len(made) == 2


def test_an_exact_alias_or_container_name_wins_over_a_proxy_name():
    resolver, store = make_resolver([
        container("traefik", "10.9.0.2", image="traefik:v3"),
        container("app", "10.9.1.1", labels={"traefik.http.routers.r.rule":
                                             "Host(`owned.example.test`) || Host(`free.example.test`)"}),
        Record("o" * 64, "owner", ("owner", "img"), aliases=("owned.example.test",), ipv4=("10.9.5.5",),
               source=ENGINE),
    ])
    ProxyNames(store).refresh()
    assert addresses(ask(resolver, "free.example.test")) == ["10.9.0.2"]
    assert addresses(ask(resolver, "owned.example.test")) == ["10.9.5.5"]
    reply = ask(resolver, "2.0.9.10.in-addr.arpa", "PTR")  # the proxy's address is the proxy's own
    assert [rr.target.to_text() for rr in reply.answer[0]] == ["traefik.traefik.docker."]
