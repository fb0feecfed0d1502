"""/explain's reasoning on its own, and the query log: sources, causes, forwarding, the log's entries."""

from __future__ import annotations

import dataclasses
import logging

import dns.message
import dns.rrset
import pytest

from dnscock.config import Address
from dnscock.explain import Explainer, ExplainError, qtype_of
from dnscock.query_log import QueryLog, answer_texts
from dnscock.records import Record
from dnscock.upstream import Forwarder
from tests.support.resolver_kit import RECORDS, make_resolver

TASK = Record("t" * 25, "api.1.t", ("1", "api"), extra_names=(("tasks", "api"),), ipv4=("10.5.0.3",), kind="task",
              image_name="api", source="swarm:x")
STATIC = Record("static:/etc/lan:nas.lan", "nas.lan", (), aliases=("nas.lan",), ipv4=("192.168.1.5",),
                kind="static", source="file:/etc/lan", name="nas.lan", fqdn="nas.lan")
MANUAL = Record("mine", "mine", ("mine", "svc"), ipv4=("10.9.9.9",), manual=True)
STOPPED = dataclasses.replace(RECORDS[0], id="9" * 64, container="gone", labels=("gone", "redis"), stopped=True,
                              ipv4=())


@pytest.fixture
def explainer():
    forwarder = Forwarder([Address("127.0.0.1", 5301)], 2.0, domain_nameservers=[("corp.test", [
        Address("127.0.0.1", 5302)])])
    pipeline, store = make_resolver([*RECORDS, TASK, STATIC, MANUAL, STOPPED], forwarder=forwarder)
    store.withhold(Record("s" * 64, "sick", ("sick", "redis"), ipv4=("10.0.0.8",), health="unhealthy"))
    yield Explainer(pipeline.authority, forwarder, pipeline.views)
    forwarder.close()


@pytest.mark.parametrize(("name", "rdtype", "source", "answer", "words"), [
    ("redis1.redis.docker", "A", "container", ["10.0.0.1"], "container redis1"),
    ("redis.docker", "A", "image", ["10.0.0.1", "10.0.0.2"], "image part"),
    ("www.example.com", "A", "alias", ["10.0.0.3"], "alias of container web"),
    ("1.api.docker", "A", "swarm", ["10.5.0.3"], "swarm service api"),
    ("nas.lan", "A", "static", ["192.168.1.5"], "/etc/lan"),
    ("mine.svc.docker", "A", "manual", ["10.9.9.9"], "HTTP API"),
    ("1.0.0.10.in-addr.arpa", "PTR", "reverse", ["PTR redis1.redis.docker."], "reverse name"),
    ("docker", "SOA", "zone", None, "apex"),
    ("gone.redis.docker", "A", "container", [], "grace time"),
    ("sick.redis.docker", "A", "container", [], "unhealthy"),
    ("redis1.redis.docker", "MX", "container", [], "no MX record"),
    ("nobody.docker", "A", "none", [], "NXDOMAIN"),
    ("www.example.org", "A", "forwarded", [], "127.0.0.1:5301 (the default upstreams"),
    ("db.corp.test", "AAAA", "forwarded", [], "127.0.0.1:5302 (the upstreams for corp.test"),
])
def test_each_kind_of_answer_is_told_by_its_source_and_cause(explainer, name, rdtype, source, answer, words):
    told = explainer.explain(name, rdtype)
    assert told["source"] == source and words in told["why"], told
    if answer is not None:
        assert told["answer"] == answer
    assert told["name"] == name + "." and told["type"] == rdtype


def test_names_and_types_that_cannot_be_explained_name_their_field(explainer):
    for name, rdtype, field in (("a..b", "A", "name"), ("x" * 64 + ".docker", "A", "name"),
                                ("web.docker", "BOGUS", "type")):
        with pytest.raises(ExplainError) as raised:
            explainer.explain(name, rdtype)
        assert raised.value.field == field
    assert (qtype_of("aaaa"), qtype_of("TYPE65"), qtype_of("65"), qtype_of("")) == (28, 65, 65, 1)


def forwarded_reply(name: str, *records: str) -> bytes:
    reply = dns.message.make_response(dns.message.make_query(name, "A"))
    for text in records:
        reply.answer.append(dns.rrset.from_text(name, 60, "IN", *text.split(" ", 1)))
    return reply.to_wire()


def test_the_query_log_keeps_the_last_n_and_reads_them_only_when_asked(caplog):
    log = QueryLog(2, to_log=True)
    with caplog.at_level(logging.INFO, logger="dnscock.queries"):
        for index in range(3):
            query = dns.message.make_query(f"q{index}.example.org", "A").to_wire()
            log.add("192.0.2.9", query, forwarded_reply(f"q{index}.example.org.", "A 192.0.2.1"), "forwarded", 0.0012)
    entries = log.entries()
    assert [entry["name"] for entry in entries] == ["q1.example.org.", "q2.example.org."]
    assert entries[-1] | {"time": 0} == {"number": 3, "time": 0, "client": "192.0.2.9", "name": "q2.example.org.", "type": "A",
                                         "rcode": "NOERROR", "path": "forwarded", "answer": ["192.0.2.1"], "us": 1200}
    assert "query q0.example.org. A from 192.0.2.9: NOERROR 192.0.2.1 (forwarded, 1200 us)" in caplog.text
    assert log.entries(after=2) == entries[1:] and log.entries(after=3) == []
    assert QueryLog(0, to_log=True).entries() == []


def test_answers_are_read_as_a_client_sees_them():
    assert answer_texts(forwarded_reply("a.test.", "A 192.0.2.1", "AAAA 2001:db8::1")) == ["192.0.2.1", "2001:db8::1"]
    assert answer_texts(forwarded_reply("a.test.", "CNAME b.test.", "A 192.0.2.2")) == ["CNAME b.test.", "192.0.2.2"]
    assert answer_texts(b"\x00" * 5) == []
