"""Names from reverse proxies' labels, on the private engine: Traefik rules, nginx-proxy's VIRTUAL_HOST, caddy labels.

The proxies are busybox containers tagged with the proxies' image names:
dnscock reads labels, env and inspect, never the proxy's behaviour.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.docker.test_names_people_ask_for import dig_from, gateway, network
from tests.support.fake_upstream import ANSWER_IP
from tests.support.private_engine import BUSYBOX_IMAGE, PrivateEngine, container_ip

TRAEFIK_IMAGE = "traefik:v3.1"
NGINX_PROXY_IMAGE = "nginxproxy/nginx-proxy:1.6"
CADDY_IMAGE = "lucaslorentz/caddy-docker-proxy:2.9"
ROOT = Path(__file__).resolve().parents[2]


def rule(router: str, text: str) -> dict[str, str]:
    return {f"traefik.http.routers.{router}.rule": text}


def answers_with(dnscock, name: str, expected: list[str]) -> None:
    """Waits until ``name`` answers ``expected`` (proxy names follow the table a moment after it changes)."""
    dnscock.wait_for_answer(name, lambda reply: sorted(
        rr.address for rrset in reply.answer for rr in rrset) == sorted(expected, key=ipaddress.ip_address))


def run_with_command(engine: PrivateEngine, image: str, name: str, *words: str):
    """A container whose command carries ``words`` (as a proxy's flags would), sleeping all the same."""
    engine.ensure_image(image)
    return engine.client.containers.run(image, ["sh", "-c", "sleep 3600", *words], name=name, detach=True, init=True)


def test_traefik_rules_of_each_syntax_answer_the_traefik_container(docker_env, dnscock_for):
    engine = docker_env
    traefik = engine.run(TRAEFIK_IMAGE, name="traefik")
    engine.run(name="shop", labels={**rule("shop", "Host(`shop.example.test`) || Host(`www.shop.example.test`)"),
                                     **rule("api", "Host(`api.example.test`) && PathPrefix(`/v1`)"),
                                     **rule("regex", "HostRegexp(`{any:.+}.regex.example.test`)")})
    engine.run(name="blog", labels=rule("blog", "Host(`blog.example.test`, `news.example.test`)"))
    engine.run(name="off", labels={**rule("off", "Host(`off.example.test`)"), "traefik.enable": "false"})
    dnscock = dnscock_for(engine)
    for name in ("shop.example.test", "www.shop.example.test", "api.example.test", "blog.example.test",
                 "news.example.test", "SHOP.Example.Test"):
        answers_with(dnscock, name, [container_ip(traefik)])
    assert dnscock.addresses("off.example.test") == [ANSWER_IP], "traefik.enable=false: not Traefik's, forwarded"
    assert dnscock.addresses("x.regex.example.test") == [ANSWER_IP]


def test_with_exposed_by_default_off_only_opted_in_apps_are_named(docker_env, dnscock_for):
    engine = docker_env
    traefik = run_with_command(engine, TRAEFIK_IMAGE, "traefik", "traefik", "--providers.docker",
                               "--providers.docker.exposedbydefault=false")
    engine.run(name="in", labels={**rule("in", "Host(`in.example.test`)"), "traefik.enable": "true"})
    engine.run(name="out", labels=rule("out", "Host(`out.example.test`)"))
    dnscock = dnscock_for(engine)
    answers_with(dnscock, "in.example.test", [container_ip(traefik)])
    assert dnscock.addresses("out.example.test") == [ANSWER_IP]


def test_nginx_proxy_and_caddy_names_and_a_wildcard(docker_env, dnscock_for):
    engine = docker_env
    nginx_proxy = engine.run(NGINX_PROXY_IMAGE, name="nginx-proxy")
    caddy = engine.run(CADDY_IMAGE, name="caddy")
    engine.run(name="blog", environment={"VIRTUAL_HOST": "blog.example.test, www.blog.example.test"})
    engine.run(name="wiki", labels={"caddy": "https://wiki.example.test", "caddy_1": "*.apps.example.test",
                                    "caddy.reverse_proxy": "{{upstreams 80}}"})
    dnscock = dnscock_for(engine, "-http=127.0.0.1:0")
    for name in ("blog.example.test", "www.blog.example.test"):
        answers_with(dnscock, name, [container_ip(nginx_proxy)])
    for name in ("wiki.example.test", "one.apps.example.test", "a.b.apps.example.test"):
        answers_with(dnscock, name, [container_ip(caddy)])
    services = json.load(urllib.request.urlopen(f"{dnscock.http_url}/services", timeout=5))
    proxied = {service["Aliases"][0]: service for service in services.values() if service["Kind"] == "proxy"}
    assert proxied["blog.example.test"]["Proxy"] == {"Kinds": ["nginx-proxy"], "From": ["blog: VIRTUAL_HOST"]}
    assert proxied["*.apps.example.test"]["Proxy"]["From"] == ["wiki: caddy_1"]
    table = subprocess.run([sys.executable, "-m", "dnscock", "records", "--http", dnscock.http_url[len("http://"):]],
                           cwd=ROOT, capture_output=True, text=True, timeout=30, check=True).stdout
    row = next(line for line in table.splitlines() if "*.apps.example.test" in line)
    assert "(proxy)" in row and row.endswith("from wiki: caddy_1") and container_ip(caddy) in row


def test_a_stopped_proxy_leaves_its_names_to_the_host_until_it_runs_again(docker_env, dnscock_for):
    engine = docker_env
    proxy = engine.run(NGINX_PROXY_IMAGE, name="nginx-proxy")
    engine.run(name="blog", environment={"VIRTUAL_HOST": "blog.example.test"})
    dnscock = dnscock_for(engine, "-grace=0")
    answers_with(dnscock, "blog.example.test", [container_ip(proxy)])
    host = dnscock.addresses("host.docker")
    assert host
    proxy.stop(timeout=1)
    answers_with(dnscock, "blog.example.test", host)
    proxy.start()
    answers_with(dnscock, "blog.example.test", [container_ip(proxy)])


def test_a_name_a_container_already_has_stays_the_containers(docker_env, dnscock_for):
    engine = docker_env
    engine.run(TRAEFIK_IMAGE, name="traefik")
    owner = engine.run(name="owner", environment={"DNSDOCK_ALIAS": "shop.example.test"})
    engine.run(name="shop", labels=rule("shop", "Host(`shop.example.test`)"))
    dnscock = dnscock_for(engine)
    answers_with(dnscock, "shop.example.test", [container_ip(owner)])


def test_split_horizon_answers_the_proxys_address_on_the_askers_network(docker_env, dnscock_for):
    engine = docker_env
    front, back = network(engine, "front", 214), network(engine, "back", 215)
    traefik = engine.run(TRAEFIK_IMAGE, name="traefik", network="front")
    back.connect(traefik)
    engine.run(name="shop", labels=rule("shop", "Host(`shop.example.test`)"), network="back")
    client_front = engine.run(BUSYBOX_IMAGE, name="client-front", network="front")
    client_back = engine.run(BUSYBOX_IMAGE, name="client-back", network="back")
    dnscock = dnscock_for(engine, listen="0.0.0.0:0")
    answers_with(dnscock, "shop.example.test", [container_ip(traefik, "front"), container_ip(traefik, "back")])
    assert dig_from(client_front, gateway(front), dnscock.port, "shop.example.test") == [
        container_ip(traefik, "front")]
    assert dig_from(client_back, gateway(back), dnscock.port, "shop.example.test") == [container_ip(traefik, "back")]


def test_an_app_recreated_with_another_label_changes_its_name(docker_env, dnscock_for):
    engine = docker_env
    traefik = engine.run(TRAEFIK_IMAGE, name="traefik")
    app = engine.run(name="shop", labels=rule("shop", "Host(`old.example.test`)"))
    dnscock = dnscock_for(engine)
    answers_with(dnscock, "old.example.test", [container_ip(traefik)])
    app.remove(force=True)
    engine.run(name="shop", labels=rule("shop", "Host(`new.example.test`)"))
    answers_with(dnscock, "new.example.test", [container_ip(traefik)])
    answers_with(dnscock, "old.example.test", [ANSWER_IP])
