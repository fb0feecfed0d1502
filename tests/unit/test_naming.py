"""Container inspect data -> names: tables, as the Go original's docker_test.go."""

from __future__ import annotations

import logging

import pytest

from dnscock.naming import container_addresses, image_name, record_from_inspect
from tests.support.matching import matches

IMAGE_ID = "sha256:4c24a9f7fed164aa29a3bd4484b6654cdba7c3feb97f273baa3bcb7e46c259a6"


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("redis", "redis"),
        ("redis:latest", "redis"),
        ("library/redis:7", "redis"),
        ("registry.example.com/team/bar.baz:v1", "bar.baz"),
        ("a.com/b/c.d:v1", "c.d"),
        ("localhost:5000/app", "app"),
        ("localhost:5000/group/app:1.0", "app"),
        ("app@sha256:" + "a" * 64, "app"),
        ("quay.io/org/app:2@sha256:" + "b" * 64, "app"),
        (IMAGE_ID, None),
        (IMAGE_ID[7:], None),
        (IMAGE_ID[7:19], None),
        ("", None),
    ],
)
def test_image_name(reference, expected):
    assert image_name(reference, IMAGE_ID) == expected


def test_a_hex_looking_image_name_that_is_not_the_id_is_a_name():
    assert image_name("deadbeefcafe", IMAGE_ID) == "deadbeefcafe"


def inspect(name="/redis1", image="redis:latest", env=None, networks=None, top_ip="", cid="c" * 64):
    return {
        "Id": cid,
        "Name": name,
        "Image": IMAGE_ID,
        "Config": {"Image": image, "Env": [f"{k}={v}" for k, v in (env or {}).items()]},
        "State": {"Running": True},
        "NetworkSettings": {
            "IPAddress": top_ip,
            "Networks": networks if networks is not None else {"bridge": {"IPAddress": "172.17.0.2"}},
        },
    }


@pytest.mark.parametrize(
    ("env", "image", "labels"),
    [
        ({}, "redis:latest", ("redis1", "redis")),
        ({}, IMAGE_ID, ("redis1",)),
        ({"DNSDOCK_NAME": "foo.boo"}, "redis", ("foo", "boo", "redis")),
        ({"DNSDOCK_IMAGE": "cache"}, "redis", ("redis1", "cache")),
        ({"DNSDOCK_NAME": "Web", "DNSDOCK_IMAGE": "Shop.EU"}, "redis", ("web", "shop", "eu")),
        ({"SERVICE_NAME": "cache"}, "redis", ("redis1", "cache")),
        ({"SERVICE_TAGS": "primary,fast"}, "redis", ("primary", "redis")),
        ({"SERVICE_REGION": "eu"}, "redis", ("redis1", "redis", "eu")),
        ({"SERVICE_NAME": "db", "SERVICE_TAGS": "main", "SERVICE_REGION": "us"}, "x", ("main", "db", "us")),
        ({"SERVICE_NAME": "svc", "DNSDOCK_IMAGE": "wins"}, "x", ("redis1", "wins")),
        ({"SERVICE_TAGS": "tag", "DNSDOCK_NAME": "wins"}, "x", ("wins", "x")),
        ({"SERVICE_TAGS": ""}, "redis", ("redis",)),
    ],
)
def test_names_and_overrides(env, image, labels):
    record = record_from_inspect(inspect(env=env, image=image))
    assert record is not None
    assert record.labels == labels


@pytest.mark.parametrize(
    "env",
    [{"DNSDOCK_IGNORE": "1"}, {"DNSDOCK_IGNORE": ""}, {"dnsdock_ignore": "yes"}, {"SERVICE_IGNORE": "true"}],
)
def test_ignored(env):
    assert record_from_inspect(inspect(env=env)) is None


def test_ignore_false_is_not_ignored():
    assert record_from_inspect(inspect(env={"DNSDOCK_IGNORE": "false"})) is not None


def test_ttl_and_aliases(caplog):
    record = record_from_inspect(inspect(env={"DNSDOCK_TTL": "42", "DNSDOCK_alias": "a.example, B.example.,bad..x,"}))
    assert record.ttl == 42
    assert record.aliases == ("a.example", "b.example")
    assert "container redis1: skipping invalid alias 'bad..x'" in caplog.text


def test_a_bad_ttl_is_ignored_with_a_warning(caplog):
    caplog.set_level(logging.WARNING)
    record = record_from_inspect(inspect(env={"DNSDOCK_TTL": "soon"}))
    assert record.ttl is None
    assert "DNSDOCK_TTL" in caplog.text


def test_addresses_come_from_every_network():
    networks = {
        "front": {"IPAddress": "10.0.1.5", "GlobalIPv6Address": "fd00::5"},
        "back": {"IPAddress": "10.0.2.5", "GlobalIPv6Address": ""},
        "none": {"IPAddress": ""},
    }
    assert container_addresses(inspect(networks=networks)) == (("10.0.2.5", "10.0.1.5"), ("fd00::5",))
    assert container_addresses(inspect(networks={}, top_ip="172.17.0.9")) == (("172.17.0.9",), ())
    assert container_addresses({"NetworkSettings": None}) == ((), ())


def test_a_record_knows_its_networks_gateways_as_the_hosts_addresses():
    networks = {
        "front": {"IPAddress": "10.0.1.5", "IPPrefixLen": 24, "Gateway": "10.0.1.1",
                  "GlobalIPv6Address": "fd00::5", "GlobalIPv6PrefixLen": 64, "IPv6Gateway": "fd00::1"},
        "back": {"IPAddress": "10.0.2.5", "IPPrefixLen": 24, "Gateway": "10.0.2.1", "IPv6Gateway": ""},
    }
    record = record_from_inspect(inspect(networks=networks))
    assert record.gateways == ("10.0.2.1", "10.0.1.1", "fd00::1")
    # Containers on the same networks share one tuple (10,000 containers, a few networks).
    other = record_from_inspect(inspect(name="/redis2", networks=networks, cid="d" * 64))
    assert other.gateways is record.gateways
    assert record_from_inspect(inspect(networks={"none": {"IPAddress": ""}})).gateways == ()


@pytest.mark.parametrize(
    ("query", "labels", "expected"),
    [
        ((), ("redis1", "redis"), True),  # the domain alone matches everything
        (("redis",), ("redis1", "redis"), True),
        (("redis1", "redis"), ("redis1", "redis"), True),
        (("x", "y", "redis1", "redis"), ("redis1", "redis"), True),
        (("redis1", "*"), ("redis1", "redis"), True),
        (("*",), ("redis1", "redis"), True),
        (("redis2", "redis"), ("redis1", "redis"), False),
        (("redis1",), ("redis1", "redis"), False),
        (("boo", "redis"), ("foo", "boo", "redis"), True),
        (("foo", "boo", "redis"), ("foo", "boo", "redis"), True),
        (("redis",), (), True),
    ],
)
def test_matching_rule(query, labels, expected):
    assert matches(query, labels) is expected


def test_exposed_ports_and_compose_metadata():
    data = inspect()
    data["Config"]["ExposedPorts"] = {"80/tcp": {}, "53/udp": {}, "bad/tcp": {}, "70000/tcp": {}}
    data["NetworkSettings"]["Ports"] = {"443/tcp": None, "80/tcp": [{"HostPort": "8080"}]}
    data["Config"]["Labels"] = {"com.docker.compose.project": "shop", "com.docker.compose.service": "web"}
    record = record_from_inspect(data)
    assert record.ports == ((53, "udp"), (80, "tcp"), (443, "tcp"))
    assert record.metadata == (("compose_project", "shop"), ("compose_service", "web"))
