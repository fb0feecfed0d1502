"""The original program's matching rule, label by label, as the oracle the record store's trie is checked against.

``matches`` is the rule as the Go original's docker_test.go tables state it;
``most_specific`` adds dnscock's one refinement: when some records take up
every label of the query (or leave parts out on the left) and others match
only with labels left over on the left (``<anything>.``), only the first
answer; among the second kind, those that take up the most labels.
"""

from __future__ import annotations

from collections.abc import Iterable

from dnscock.records import Record


def matches(query: tuple[str, ...], labels: tuple[str, ...]) -> bool:
    """``*`` in the query matches any one label; a query shorter than the name matches (parts left out on the
    left); extra query labels on the left match."""
    return all(asked in (have, "*") for asked, have in zip(reversed(query), reversed(labels)))


def labels_taken(query: tuple[str, ...], labels: tuple[str, ...]) -> int:
    """How many of the query's labels a matching name takes up (all of them when the query runs out in it)."""
    return min(len(query), len(labels))


def most_specific(query: tuple[str, ...], records: Iterable[Record]) -> set[str]:
    """The ids of the records the query answers: the matches that take up the most of its labels."""
    taken = {record.id: max(labels_taken(query, name) for name in record.names if matches(query, name))
             for record in records if any(matches(query, name) for name in record.names)}
    best = max(taken.values(), default=0)
    return {record_id for record_id, count in taken.items() if count == best}
