"""dnsdock's service JSON: what PUT and PATCH accept, what GET shows, and the errors naming the field."""

from __future__ import annotations

import pytest

from dnscock.records import Record, RecordStore
from dnscock.services import (
    ServiceError,
    looks_like_prefix,
    manual_record,
    parse_changes,
    parse_default_ttl,
    service_json,
)


def test_dnsdock_readme_example_with_lower_case_keys():
    record = manual_record("newid", {"name": "foo", "image": "bar", "ips": ["192.168.0.1"], "ttl": 30})
    assert (record.labels, record.ipv4, record.ttl, record.manual) == (("foo", "bar"), ("192.168.0.1",), 30, True)


def test_go_field_names_the_old_single_ip_and_ipv6():
    record = manual_record("x", {"Name": "Web.Front", "Image": "nginx", "Ip": "10.0.0.5", "Aliases": ["WWW.test."]})
    assert record.labels == ("web", "front", "nginx") and record.ipv4 == ("10.0.0.5",)
    assert record.aliases == ("www.test",)
    record = manual_record("y", {"Name": "a", "IPs": ["fd00::1", "10.0.0.1", "10.0.0.1"]})
    assert (record.ipv4, record.ipv6) == (("10.0.0.1",), ("fd00::1",))


def test_ttl_minus_one_is_the_default_and_extra_fields_are_ignored():
    record = manual_record("x", {"Name": "a", "TTL": -1, "Manual": False, "Whatever": {"x": 1}})
    assert record.ttl is None and record.manual


@pytest.mark.parametrize(("document", "field"), [
    ({"Name": "a", "IPs": ["1.2.3.999"]}, "IPs"),
    ({"Name": "a", "IPs": "1.2.3.4"}, "IPs"),
    ({"Name": "a", "IPs": [7]}, "IPs"),
    ({"Name": "a", "Ip": "nope"}, "Ip"),
    ({"Name": "a", "TTL": "30"}, "TTL"),
    ({"Name": "a", "TTL": 1.5}, "TTL"),
    ({"Name": "a", "TTL": True}, "TTL"),
    ({"Name": "a", "TTL": -2}, "TTL"),
    ({"Name": "a", "Aliases": "x.test"}, "Aliases"),
    ({"Name": "a", "Aliases": ["bad name!"]}, "Aliases"),
    ({"Name": 5}, "Name"),
    ({"Name": "white space"}, "Name"),
    ({"Image": "a..b"}, "Image"),
    ({"IPs": ["10.0.0.1"]}, "Name"),
    ({"Name": "", "Image": ""}, "Name"),
])
def test_bad_fields_are_named(document, field):
    with pytest.raises(ServiceError) as caught:
        manual_record("x", document)
    assert caught.value.field == field


@pytest.mark.parametrize("document", [[], "x", None, 3])
def test_the_body_must_be_an_object(document):
    with pytest.raises(ServiceError, match="JSON object"):
        parse_changes(document)


@pytest.mark.parametrize("service_id", ["", "a/b", "-x", "x" * 129, "a b"])
def test_bad_ids(service_id):
    with pytest.raises(ServiceError) as caught:
        manual_record(service_id, {"Name": "a"})
    assert caught.value.field == "id"


def test_patch_changes_only_the_fields_given_and_keeps_the_other_name_part():
    current = manual_record("x", {"Name": "a", "Image": "b", "IPs": ["10.0.0.1"], "TTL": 5})
    assert parse_changes({"ttl": 9}, current) == {"ttl": 9}
    assert parse_changes({"Name": "c"}, current)["labels"] == ("c", "b")
    assert parse_changes({"Image": "d"}, current)["labels"] == ("a", "d")
    assert parse_changes({"IPs": []}, current) == {"ipv4": (), "ipv6": ()}


@pytest.mark.parametrize(("body", "ttl"), [(b"10", 10), (b" 0\n", 0), (b'{"TTL": 7}', 7), (b'{"ttl": 3}', 3)])
def test_set_ttl_bodies(body, ttl):
    assert parse_default_ttl(body) == ttl


@pytest.mark.parametrize("body", [b"", b"ten", b"-1", b"1.5", b'"5"', b"\xff"])
def test_bad_set_ttl_bodies(body):
    with pytest.raises(ServiceError):
        parse_default_ttl(body)


def test_service_json_shows_dnsdock_fields_first_and_the_effective_ttl():
    record = Record(id="abc" * 20, container="web", labels=("web", "nginx"), ipv4=("10.0.0.2",), ipv6=("fd00::2",),
                    name="web", image_name="nginx", networks=("bridge",), health="healthy", image="nginx:1")
    view = service_json(record, 42, "docker")
    assert list(view)[:5] == ["Name", "Image", "IPs", "TTL", "Aliases"]
    assert view["IPs"] == ["10.0.0.2", "fd00::2"] and view["TTL"] == 42 and view["Manual"] is False
    assert view["Names"] == ["web.nginx.docker"] and view["Networks"] == ["bridge"] and view["Health"] == "healthy"


def test_prefixes():
    assert looks_like_prefix("abcd") and not looks_like_prefix("abc") and not looks_like_prefix("web1")


# -- the store's side: manual services and patches --


def container(record_id: str, ip: str, **fields) -> Record:
    return Record(id=record_id, container=record_id, labels=(record_id, "img"), ipv4=(ip,), **fields)


def test_manual_services_survive_container_events_and_resyncs():
    store = RecordStore()
    store.put_manual(manual_record("m1", {"Name": "foo", "Image": "bar", "IPs": ["10.9.9.9"]}))
    store.replace_all([container("c1", "10.0.0.1")])
    store.put(container("c2", "10.0.0.2"))
    store.remove("c1")
    assert store.remove("m1") is None, "a container event never removes a manual service"
    store.replace_all([])
    assert [record.id for record in store.match(("foo", "bar"))] == ["m1"]
    assert store.by_address("10.9.9.9")[0].manual
    store.remove_manual("m1")
    assert store.match(("foo", "bar")) == []


def test_a_container_patch_outlives_refreshes_and_goes_with_the_container():
    store = RecordStore()
    store.replace_all([container("c1", "10.0.0.1")])
    store.patch("c1", {"ttl": 77, "aliases": ("web.test",)})
    generation = store.generation
    store.put(container("c1", "10.0.0.1"))  # the watcher refreshes it: same facts, same patched record
    assert store.generation == generation
    store.put(container("c1", "10.0.0.3"))  # a new address from the engine; the patch stays on top
    assert (store.get("c1").ttl, store.get("c1").ipv4, store.by_alias("web.test")[0].id) == (77, ("10.0.0.3",), "c1")
    store.replace_all([container("c1", "10.0.0.3")])
    assert store.get("c1").ttl == 77
    store.remove("c1")
    store.put(container("c1", "10.0.0.1"))  # a new container with the same id (a restart after removal)
    assert store.get("c1").ttl is None


def test_a_stopped_container_is_not_patched_back_to_life():
    store = RecordStore()
    store.put(container("c1", "10.0.0.1"))
    store.patch("c1", {"ipv4": ("10.0.0.9",)})
    store.put(Record(id="c1", container="c1", labels=("c1", "img"), stopped=True, ttl=0))
    assert store.get("c1").ipv4 == () and store.get("c1").stopped
