"""RecordStore: the index answers exactly what the matching rule says, and signals changes."""

from __future__ import annotations

import gevent
from hypothesis import given, settings
from hypothesis import strategies as st

from dnscock.records import Record, RecordStore
from tests.support.matching import most_specific

LABELS = st.sampled_from(["a", "b", "redis", "web", "x"])


def record(rid: str, *labels: str, aliases=(), ipv4=("10.0.0.1",)) -> Record:
    return Record(id=rid, container=rid, labels=tuple(labels), aliases=tuple(aliases), ipv4=tuple(ipv4))


@settings(max_examples=400, deadline=None)
@given(
    names=st.lists(st.lists(LABELS, min_size=0, max_size=3), min_size=0, max_size=8),
    extra=st.lists(st.lists(LABELS, min_size=1, max_size=2), min_size=8, max_size=8),
    query=st.lists(st.one_of(LABELS, st.just("*")), max_size=4),
    removed=st.sets(st.integers(min_value=0, max_value=7)),
)
def test_index_agrees_with_the_matching_rule(names, extra, query, removed):
    store = RecordStore()
    records = [
        # Every other record has a second name (as compose containers do), sharing nodes or not.
        Record(id=f"id{i}", container=f"id{i}", labels=tuple(labels),
               extra_names=(tuple(extra[i]),) if i % 2 else ())
        for i, labels in enumerate(names)
    ]
    for r in records:
        store.put(r)
    for i in removed:
        if i < len(records):
            store.remove(records[i].id)
    alive = [r for i, r in enumerate(records) if i not in removed]
    expected = most_specific(tuple(query), alive)
    assert {r.id for r in store.match(tuple(query))} == expected


def test_a_name_taken_whole_wins_over_one_with_anything_on_its_left():
    """-container-names: w1.web is the container w1 of the image web, not <anything>.web (the container web)."""
    store = RecordStore()
    store.put(Record("w1", "w1", ("w1", "web")))
    store.put(Record("web", "web", ("web", "nginx"), extra_names=(("web",),)))
    assert [r.id for r in store.match(("w1", "web"))] == ["w1"]
    assert [r.id for r in store.match(("x", "w1", "web"))] == ["w1"]  # two labels taken up against one
    assert [r.id for r in store.match(("anything", "web"))] == ["web"]  # nothing takes up more
    assert sorted(r.id for r in store.match(("web",))) == ["w1", "web"]  # both whole: both, as before


def test_put_replaces_and_remove_prunes():
    store = RecordStore()
    store.put(record("1", "redis1", "redis"))
    store.put(record("1", "renamed", "redis"))
    assert [r.id for r in store.match(("renamed", "redis"))] == ["1"]
    assert store.match(("redis1", "redis")) == []
    store.remove("1")
    assert store.match(()) == []
    assert len(store) == 0
    assert store._index.root.children is None


def test_aliases_are_exact_names():
    store = RecordStore()
    store.put(record("1", "one", aliases=("web.example",)))
    store.put(record("2", "two", aliases=("web.example", "two.example")))
    assert [r.id for r in store.by_alias("web.example")] == ["1", "2"]
    assert store.by_alias("example") == []
    store.remove("1")
    assert [r.id for r in store.by_alias("web.example")] == ["2"]
    store.remove("2")
    assert store._index.aliases == {}


def test_replace_all_reports_the_difference_and_sets_synced():
    store = RecordStore()
    assert not store.synced.is_set()
    store.put(record("old", "old"))
    store.put(record("same", "same"))
    added, removed = store.replace_all([record("same", "same"), record("new", "new")])
    assert [r.id for r in added] == ["new"]
    assert [r.id for r in removed] == ["old"]
    assert store.synced.is_set()
    assert [r.id for r in store.match(())] == ["new", "same"]


def test_changes_bump_the_generation_and_wake_waiters():
    store = RecordStore()
    generation = store.generation
    waiter = gevent.spawn(store.wait_changed, 5)
    gevent.sleep(0)  # the waiter starts waiting before the change
    store.put(record("1", "one"))
    assert waiter.get(timeout=5) is True
    assert store.generation == generation + 1
    store.put(record("1", "one"))  # the same record again: no change
    assert store.generation == generation + 1
    assert store.wait_changed(0.01) is False


# -- several sources: engines and swarms, each swapping its own records --


def test_a_source_replaces_its_own_records_and_keeps_the_others():
    store = RecordStore()
    store.replace_all([Record("a1", "a1", ("a1", "img"), source="engine-a")], "engine-a")
    store.replace_all([Record("b1", "b1", ("b1", "img"), source="engine-b")], "engine-b")
    store.put_manual(record("m", "manual"))
    added, removed = store.replace_all([Record("a2", "a2", ("a2", "img"), source="engine-a")], "engine-a")
    assert sorted(r.id for r in store) == ["a2", "b1", "m"]
    assert [r.id for r in added] == ["a2"] and [r.id for r in removed] == ["a1"]
    assert [r.id for r in store.match(("img",))] == ["a2", "b1"]


def test_synced_waits_for_every_source_unless_it_is_unreachable():
    store = RecordStore()
    store.expect("engine-a")
    store.expect("engine-b")
    store.replace_all([], "engine-a")
    assert not store.synced.is_set(), "engine-b has not synced yet"
    store.set_reachable("engine-b", False)
    assert store.synced.is_set(), "one synced and the other cannot be reached: answer from what is there"
    assert not store.unavailable, "engine-a is reachable"


def test_no_source_reachable_before_any_sync_is_unavailable_not_synced():
    store = RecordStore()
    for source in ("engine-a", "swarm:x"):
        store.set_reachable(source, False)
    assert store.unavailable and not store.synced.is_set()
    store.replace_all([], "swarm:x")
    assert store.synced.is_set() and not store.unavailable and store.has_synced("swarm:x")


def test_an_exact_record_matches_its_full_name_only():
    store = RecordStore()
    task = Record("t1", "web.1", ("1", "web", "shop"), extra_names=(("tasks", "web", "shop"),), ipv4=("10.0.1.3",))
    vip = Record("vip:s", "shop_web", ("vip", "web", "shop"), ipv4=("10.0.1.2",), exact=True)
    store.replace_all([task, vip])
    assert [r.id for r in store.match(("web", "shop"))] == ["t1"], "the service's name answers its tasks only"
    assert [r.id for r in store.match(("tasks", "web", "shop"))] == ["t1"]
    assert [r.id for r in store.match(("1", "web", "shop"))] == ["t1"]
    assert [r.id for r in store.match(("vip", "web", "shop"))] == ["vip:s"]
    assert [r.id for r in store.match(("*", "web", "shop"))] == ["t1", "vip:s"]
    assert store.match(("x", "vip", "web", "shop")) == [], "no extra labels on the left of an exact name"
    store.replace_all([task])
    assert store.match(("vip", "web", "shop")) == []
