"""``Record`` (one container's DNS facts) and ``RecordStore``, the table the resolver reads.

The store is keyed by container id and indexed for lookups whose cost grows
with the number of labels in the query, not with the number of containers:

* a trie over each record's labels, read right to left, answers dnscock's
  prefix matching (a query may leave labels out on the left, may carry extra
  labels on the left, and ``*`` matches any one label);
* a dict answers aliases, which match their exact name only, and a second
  trie over the aliases' labels tells the names above them: empty
  non-terminals (RFC 8020) and the zone an alias outside the domain is in.

Every change bumps ``generation`` and wakes the greenlets waiting in
``wait_changed``; ``synced`` is set once the first full listing is in (of
every source: each engine, each swarm, whose records ``replace_all``
swaps by source).

Besides containers the store holds manual services (put through the HTTP
API, as dnsdock's ``PUT /services/{id}``), which container events and
resyncs never touch, and per-container patches (``PATCH``) that are laid
over a container's record each time the engine's facts replace it, until
the container is gone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import gevent.event

WILDCARD = "*"


class StaticRR(NamedTuple):
    """A record of a records file other than A and AAAA, its RDATA ready to pack (see packing.RR)."""

    rtype: int
    rdata: bytes | tuple[bytes, ...]
    target: str = ""  # a CNAME's (or PTR's) target name, for following chains


class ProxyName(NamedTuple):
    """A name a container asks a reverse proxy to serve (``proxy_names``)."""

    host: str  # lower case, no trailing dot; may start with "*." (a wildcard)
    kind: str  # the proxy that serves it: traefik, nginx-proxy or caddy
    origin: str  # the label or variable it came from


class ProxyFacts(NamedTuple):
    """What one container says about reverse proxies (``Record.proxy``)."""

    serves: str = ""  # the kind of proxy this container is, or ""
    opt_in: bool = False  # a Traefik that exposes only containers labelled traefik.enable=true
    names: tuple[ProxyName, ...] = ()  # names it asks a proxy to serve
    traefik_enable: bool | None = None  # its traefik.enable label, when set
    problems: tuple[str, ...] = ()  # labels or variables that could not be read: logged once, skipped


@dataclass(frozen=True, slots=True)
class Record:
    """What dnscock serves for one container."""

    id: str
    container: str  # the container's name as Docker shows it, for logs
    labels: tuple[str, ...]  # <container-name>.<image-name> labels, lower case, without the zone
    aliases: tuple[str, ...] = ()  # full names, lower case, without a trailing dot
    ipv4: tuple[str, ...] = ()
    ipv6: tuple[str, ...] = ()
    # (address, its subnet, its network): a client in one of these subnets gets the addresses on its networks.
    places: tuple[tuple[str, str, str], ...] = ()
    gateways: tuple[str, ...] = ()  # its networks' gateways: the host's own addresses, never a container's
    ttl: int | None = None  # None: the -ttl option
    image: str = ""  # the image reference the container was created with
    ports: tuple[tuple[int, str], ...] = ()  # exposed (port, "tcp" | "udp")
    # (port, protocol, host port): with the engine's host address answered, SRV gives the host port.
    published: tuple[tuple[int, str, int], ...] = ()
    metadata: tuple[tuple[str, str], ...] = ()  # extra key=value facts published in TXT
    extra_names: tuple[tuple[str, ...], ...] = ()  # more label paths matched like ``labels`` (compose)
    stopped: bool = False  # stopped within its grace window: its names answer NOERROR, no records
    manual: bool = False  # put through the HTTP API, not a container: the engine's news never touch it
    name: str = ""  # the <container-name> part of ``labels`` (dots allowed), as the API shows it
    image_name: str = ""  # the <image-name> part of ``labels``
    networks: tuple[str, ...] = ()  # the Docker networks it is attached to, for humans
    health: str = ""  # its healthcheck's status, "" without one
    source: str = ""  # where it comes from: an engine's URL, a swarm; "" for manual ones
    kind: str = "container"  # or "task" and "vip" (a swarm service's), "host", "static" (a records file's)
    exact: bool = False  # its names match only in full: no parts left out on the left, no extra labels
    static: tuple[StaticRR, ...] = ()  # a records file's records of other types (CNAME, TXT, SRV, MX, PTR)
    fqdn: str = ""  # its canonical name when it is not <labels>.<zone> (a records file's names)
    proxy: ProxyFacts | None = None  # what it says about reverse proxies (-proxy-names), None: nothing

    @property
    def names(self) -> tuple[tuple[str, ...], ...]:
        """The label paths the trie matches it by (none for a name that is only an alias)."""
        return ((self.labels,) if self.labels else ()) + self.extra_names

    @property
    def short_id(self) -> str:
        return self.id[:12]

    def canonical_name(self, zone: str) -> str:
        """``<container-name>.<image-name>.<environment>.<domain>``, without the trailing dot."""
        return self.fqdn or full_name(self.labels, zone)


def full_name(labels: tuple[str, ...], zone: str) -> str:
    """Labels relative to the zone, and the zone: one name without the trailing dot."""
    return ".".join(labels + ((zone,) if zone else ()))


class _Node:
    __slots__ = ("children", "terminal", "exact")

    def __init__(self) -> None:
        # Most nodes are leaves holding one record: no dict, and a tuple rather than a set,
        # which keeps 10,000 containers in a few megabytes.
        self.children: dict[str, _Node] | None = None
        self.terminal: tuple[str, ...] = ()  # ids of records whose labels end here
        self.exact: tuple[str, ...] = ()  # ids of records whose labels end here and match only in full


def _with(ids: tuple[str, ...], record_id: str) -> tuple[str, ...]:
    return ids if record_id in ids else ids + (record_id,)


def _without(ids: tuple[str, ...], record_id: str) -> tuple[str, ...]:
    return tuple(other for other in ids if other != record_id)


class _Index:
    """The lookup structures for one set of records."""

    __slots__ = ("root", "alias_root", "aliases", "addresses", "subnets", "gateways", "spanning", "proxy_related")

    def __init__(self) -> None:
        self.root = _Node()  # container names, matched by dnscock's prefix rule
        self.alias_root = _Node()  # alias names, for the empty non-terminals and zones above them
        self.aliases: dict[str, tuple[str, ...]] = {}
        self.addresses: dict[str, tuple[str, ...]] = {}
        self.subnets: dict[str, int] = {}  # the subnets records' addresses are in -> how many records
        self.gateways: dict[str, int] = {}  # the gateways of records' networks -> how many records
        self.spanning = 0  # records with addresses on more than one network (what split horizon is about)
        self.proxy_related: set[str] = set()  # ids of records proxy names are made from (``proxy_names``)

    def add(self, record: Record) -> None:
        for root, labels in self._paths(record):
            _add_path(root, labels, record.id, record.exact and root is self.root)
        for table, key in self._keys(record):
            table[key] = _with(table.get(key, ()), record.id)
        for table, keys in ((self.subnets, {subnet for _, subnet, _ in record.places}),
                            (self.gateways, record.gateways)):
            for key in keys:
                table[key] = table.get(key, 0) + 1
        self.spanning += len({network for _, _, network in record.places}) > 1
        if record.proxy is not None or record.kind == "host":
            self.proxy_related.add(record.id)

    def discard(self, record: Record) -> None:
        for root, labels in self._paths(record):
            _discard_path(root, labels, record.id)
        for table, key in self._keys(record):
            ids = _without(table.get(key, ()), record.id)
            if ids:
                table[key] = ids
            else:
                table.pop(key, None)
        for table, keys in ((self.subnets, {subnet for _, subnet, _ in record.places}),
                            (self.gateways, record.gateways)):
            for key in keys:
                count = table.get(key, 0) - 1
                if count > 0:
                    table[key] = count
                else:
                    table.pop(key, None)
        self.spanning -= len({network for _, _, network in record.places}) > 1
        self.proxy_related.discard(record.id)

    def _paths(self, record: Record) -> Iterator[tuple[_Node, tuple[str, ...]]]:
        """Where the record stands in the two tries: its names, and its aliases' labels."""
        for labels in record.names:
            yield self.root, labels
        for alias in record.aliases:
            yield self.alias_root, tuple(alias.split("."))

    def _keys(self, record: Record) -> Iterator[tuple[dict[str, tuple[str, ...]], str]]:
        """Where the record stands in the two dicts: its aliases and its addresses (a proxy name's are the
        proxy's: not in its PTR)."""
        for alias in record.aliases:
            yield self.aliases, alias
        if record.kind != "proxy":
            for address in record.ipv4 + record.ipv6:
                yield self.addresses, address

    def match(self, labels: tuple[str, ...]) -> set[str]:
        found = _Found()
        _walk(self.root, labels, len(labels) - 1, found)
        return found.ids


def _add_path(root: _Node, labels: tuple[str, ...], record_id: str, exact: bool = False) -> None:
    node = root
    for label in reversed(labels):
        if node.children is None:
            node.children = {}
        child = node.children.get(label)
        if child is None:
            child = node.children[label] = _Node()
        node = child
    if exact:
        node.exact = _with(node.exact, record_id)
    else:
        node.terminal = _with(node.terminal, record_id)


def _discard_path(root: _Node, labels: tuple[str, ...], record_id: str) -> None:
    path = [root]
    for label in reversed(labels):
        child = (path[-1].children or {}).get(label)
        if child is None:
            return  # not there (a second name of the record sharing this path)
        path.append(child)
    path[-1].terminal = _without(path[-1].terminal, record_id)
    path[-1].exact = _without(path[-1].exact, record_id)
    # Prune the nodes left holding nothing, from the leaf up.
    for depth in range(len(path) - 1, 0, -1):
        node = path[depth]
        if node.terminal or node.exact or node.children:
            break
        parent = path[depth - 1]
        assert parent.children is not None
        del parent.children[labels[len(labels) - depth]]
        if not parent.children:
            parent.children = None


class AliasPlace(NamedTuple):
    """Where a name stands among the aliases (see ``RecordStore.alias_place``)."""

    apex: int  # the number of labels of the shortest alias (or wildcard's parent) that is the name or its suffix
    exists: bool  # the name is an alias or has aliases below it (an empty non-terminal, RFC 8020)
    wildcard: tuple[str, ...] = ()  # a name that does not exist: the ids of the wildcard alias covering it


_NOWHERE = AliasPlace(0, False)


class _Found:
    """The records matching a query most specifically: those that take up the most of its labels.

    A name the query runs out in (whole, or with parts left out on the left)
    takes up every label; one reached with labels left over (the
    ``<anything>.`` form) takes up fewer, and answers only when nothing takes
    up more: with -container-names, ``w1.web.docker`` is the container w1 of
    the image web, not the container named web.
    """

    __slots__ = ("depth", "ids")

    def __init__(self) -> None:
        self.depth = -1
        self.ids: set[str] = set()

    def add(self, depth: int, ids: Iterable[str]) -> None:
        if depth > self.depth:
            ids = set(ids)
            if ids:
                self.depth, self.ids = depth, ids
        elif depth == self.depth:
            self.ids.update(ids)


def _walk(node: _Node, labels: tuple[str, ...], i: int, found: _Found) -> None:
    """Collects the ids of records whose labels the query ``labels[:i+1]`` matches most specifically."""
    while True:
        if i < 0:  # the query ran out of labels: everything below matches, and what matches only in full
            below = set(node.exact)
            _collect(node, below)
            found.add(len(labels), below)
            return
        if node.terminal:  # extra labels on the left of a full name match
            found.add(len(labels) - 1 - i, node.terminal)
        if node.children is None:
            return
        label = labels[i]
        if label == WILDCARD:
            for child in node.children.values():
                _walk(child, labels, i - 1, found)
            return
        next_node = node.children.get(label)
        if next_node is None:
            return
        node = next_node
        i -= 1


def _collect(node: _Node, found: set[str]) -> None:
    """Every record at or below ``node`` (as many as the answer will hold anyway)."""
    stack = [node]
    while stack:
        node = stack.pop()
        found.update(node.terminal)
        if node.children:
            stack.extend(node.children.values())


class RecordStore:
    """Records by container id, indexed for the resolver, with change signalling."""

    def __init__(self) -> None:
        self._records: dict[str, Record] = {}
        self._index = _Index()
        self.generation = 0
        # Set once every source has synced or is known to be unreachable, and one has synced.
        self.synced = gevent.event.Event()
        self._sources: dict[str, bool] = {}  # source -> whether it has synced once
        # Does any record have addresses on more than one network (else every client gets the same answers)?
        self.spanning = False
        self._unreachable: set[str] = set()
        self._changed = gevent.event.Event()
        self._patches: dict[str, dict[str, Any]] = {}  # container id -> Record fields laid over it
        # Containers withheld while their healthcheck says unhealthy: never answered, only explained.
        self._withheld: dict[str, Record] = {}

    # Updates run without a greenlet switch from start to end (no I/O in
    # them), so a query never sees a half-applied change.

    def put(self, record: Record) -> Record | None:
        """Adds or replaces the container record with ``record.id``; returns the one replaced.

        A manual service with the same id stays: the engine's news never replace it.
        """
        old = self._records.get(record.id)
        if old is not None and old.manual and not record.manual:
            return old
        record = self._patched(record)
        if old == record:
            return old
        self._swap(old, record)
        return old

    def remove(self, record_id: str) -> Record | None:
        """Removes the container record ``record_id`` and its patch (manual services stay)."""
        old = self._records.get(record_id)
        if old is None or old.manual:
            return None
        self._patches.pop(record_id, None)
        del self._records[record_id]
        self._index.discard(old)
        self._bump()
        return old

    # -- the HTTP API's writes --

    def put_manual(self, record: Record) -> Record | None:
        """Adds or replaces a manual service; returns the one replaced."""
        record = dataclasses.replace(record, manual=True)
        old = self._records.get(record.id)
        if old != record:
            self._swap(old, record)
        return old

    def remove_manual(self, record_id: str) -> Record | None:
        old = self._records.get(record_id)
        if old is None or not old.manual:
            return None
        del self._records[record_id]
        self._index.discard(old)
        self._bump()
        return old

    def patch(self, record_id: str, changes: dict[str, Any]) -> Record:
        """Changes fields of a record; a container's patch outlives its next refresh."""
        old = self._records[record_id]
        if not old.manual:
            self._patches[record_id] = {**self._patches.get(record_id, {}), **changes}
        record = dataclasses.replace(old, **changes) if not old.stopped else old
        if record != old:
            self._swap(old, record)
        return record

    def touch(self) -> None:
        """Marks the table changed without changing it (answers derived from it must be rebuilt)."""
        self._bump()

    def _patched(self, record: Record) -> Record:
        patch = self._patches.get(record.id)
        if patch and not record.stopped:  # a stopped container answers nothing, patched or not
            return dataclasses.replace(record, **patch)
        return record

    def _swap(self, old: Record | None, record: Record) -> None:
        if old is not None:
            self._index.discard(old)
        self._records[record.id] = record
        self._index.add(record)
        self._bump()

    def replace_all(self, records: Iterable[Record], source: str = "") -> tuple[list[Record], list[Record]]:
        """Swaps in a whole new table of one source's records (a resync); returns (added or changed, removed).

        The records of other sources, and manual services, are kept as they are.
        """
        kept = {record.id: record for record in self._records.values() if record.manual or record.source != source}
        fresh = {record.id: self._patched(record) for record in records if record.id not in kept}
        self._patches = {record_id: patch for record_id, patch in self._patches.items()
                         if record_id in fresh or record_id in kept}
        added = [r for r in fresh.values() if self._records.get(r.id) != r]
        removed = [r for r in self._records.values() if r.id not in fresh and r.id not in kept]
        fresh.update(kept)
        index = _Index()
        for record in fresh.values():
            index.add(record)
        self._records, self._index = fresh, index
        self._sources[source] = True
        self._unreachable.discard(source)
        self._check_synced()
        if added or removed:
            self._bump()
        return added, removed

    def change(self, removed: Iterable[str], added: Iterable[Record]) -> None:
        """Removes the records with ids ``removed``, then puts ``added``, as one change of generation (for derived
        records, proxy names, whose maker knows what it put before)."""
        for record_id in removed:
            old = self._records.pop(record_id, None)
            if old is not None:
                self._index.discard(old)
        for record in added:
            old = self._records.get(record.id)
            if old is not None:
                self._index.discard(old)
            self._records[record.id] = record
            self._index.add(record)
        self._bump()

    def withhold(self, record: Record) -> None:
        """Keeps aside a container that is not served (unhealthy), for ``withheld_matching`` to tell."""
        self._withheld[record.id] = record

    def release(self, record_id: str) -> None:
        self._withheld.pop(record_id, None)

    def release_all_but(self, source: str, ids: Iterable[str]) -> None:
        """Forgets the withheld containers of ``source`` but those with ``ids`` (a resync's running ones)."""
        keep = set(ids)
        self._withheld = {record_id: record for record_id, record in self._withheld.items()
                          if record.source != source or record_id in keep}

    def withheld_matching(self, labels: tuple[str, ...], name: str) -> list[Record]:
        """The withheld containers a query for ``labels`` (left of the zone) or the alias ``name`` would match."""
        index = _Index()
        for record in self._withheld.values():
            index.add(record)
        return self._sorted_from(self._withheld, index.match(labels) | set(index.aliases.get(name, ())))

    def proxy_related(self) -> list[Record]:
        """The records proxy names are made from: those saying something about proxies, and the hosts'."""
        return [self._records[record_id] for record_id in self._index.proxy_related]

    # -- the sources' state --

    def expect(self, source: str) -> None:
        """``source`` will sync: until it has (or is unreachable), ``synced`` waits for it."""
        self._sources.setdefault(source, False)

    def has_synced(self, source: str) -> bool:
        return self._sources.get(source, False)

    def set_reachable(self, source: str, reachable: bool) -> None:
        self.expect(source)
        if reachable:
            self._unreachable.discard(source)
        else:
            self._unreachable.add(source)
        self._check_synced()

    @property
    def unavailable(self) -> bool:
        """Every source is unreachable now (before the first sync: local names get SERVFAIL at once)."""
        return bool(self._sources) and len(self._unreachable) == len(self._sources)

    def _check_synced(self) -> None:
        """Synced once one source has synced and every other has too, or is unreachable."""
        sources = self._sources
        if any(sources.values()) and all(done or source in self._unreachable for source, done in sources.items()):
            self.synced.set()

    def _bump(self) -> None:
        self.spanning = self._index.spanning > 0
        self.generation += 1
        changed, self._changed = self._changed, gevent.event.Event()
        changed.set()

    def wait_changed(self, timeout: float | None = None) -> bool:
        """Blocks the calling greenlet until the next change; False on timeout."""
        return self._changed.wait(timeout)

    # Reads.

    def get(self, record_id: str) -> Record | None:
        return self._records.get(record_id)

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[Record]:
        return iter(list(self._records.values()))

    def match(self, labels: tuple[str, ...]) -> list[Record]:
        """Records a query matches; ``labels`` are the query's labels left of the zone."""
        return self._sorted(self._index.match(labels))

    def by_alias(self, name: str) -> list[Record]:
        """Records carrying the alias ``name`` (lower case, no trailing dot)."""
        return self._sorted(self._index.aliases.get(name, ()))

    def under_alias(self, top: str) -> bool:
        """Could a name whose last label is ``top`` be an alias or below one (else ``alias_place`` finds nothing)?"""
        children = self._index.alias_root.children
        return children is not None and (top in children or WILDCARD in children)

    def alias_place(self, labels: tuple[str, ...]) -> AliasPlace:
        """How ``labels`` (a whole name, lower case) relates to the aliases.

        Walks the alias tree from the right; costs one dict lookup per label
        shared with some alias, so a name nobody aliased costs about one.
        A name that is not in the tree is covered by a wildcard alias when
        its closest encloser (the deepest node the walk reached) has a ``*``
        child (RFC 4592 §3.3.1).
        """
        node = self._index.alias_root
        apex = 0
        for depth, label in enumerate(reversed(labels)):
            children = node.children
            if depth and not apex and (node.terminal or (children is not None and WILDCARD in children)):
                apex = depth
            child = children.get(label) if children is not None else None
            if child is None:
                wild = children.get(WILDCARD) if children is not None else None
                if wild is None:
                    return AliasPlace(apex, False) if apex else _NOWHERE
                return AliasPlace(apex, False, wild.terminal)
            node = child
        if not apex and (node.terminal or (node.children is not None and WILDCARD in node.children)):
            apex = len(labels)
        return AliasPlace(apex, True)

    def records_of(self, ids: Iterable[str]) -> list[Record]:
        """The records with these ids (a wildcard's, from ``alias_place``)."""
        return self._sorted(record_id for record_id in ids if record_id in self._records)

    def subnets(self) -> Iterable[str]:
        """The subnets the records' addresses are in."""
        return self._index.subnets.keys()

    def gateways(self) -> Iterable[str]:
        """The gateways of the records' networks: addresses of the host, in Python's canonical text form."""
        return self._index.gateways.keys()

    def addresses(self) -> Iterable[str]:
        """Every address a record holds (in Python's canonical text form)."""
        return self._index.addresses.keys()

    def has_address(self, address: str) -> bool:
        return address in self._index.addresses

    def by_address(self, address: str) -> list[Record]:
        """Records holding the IP ``address`` (in Python's canonical text form)."""
        return self._sorted(self._index.addresses.get(address, ()))

    def _sorted(self, ids: Iterable[str]) -> list[Record]:
        return self._sorted_from(self._records, ids)

    @staticmethod
    def _sorted_from(records: dict[str, Record], ids: Iterable[str]) -> list[Record]:
        found = [records[record_id] for record_id in ids]
        found.sort(key=lambda record: (record.labels, record.id))
        return found
