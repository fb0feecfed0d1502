"""``/metrics``: Prometheus families built at scrape time from dnscock's plain counters.

Nothing here runs on the query path: the resolver, forwarder and watcher
keep integers (``stats.QueryStats``, ``Upstream.timeouts``, ...), and a
custom collector turns them into metric families when Prometheus asks.
The process's own figures (``process_resident_memory_bytes``,
``process_open_fds``, ``python_gc_*``) come from prometheus_client.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate

import greenlet
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from dnscock import __version__
from dnscock.cache import ReplyCache
from dnscock.docker_watcher import DockerWatcher
from dnscock.records import RecordStore
from dnscock.stats import LATENCY_BUCKETS, PATHS, QueryStats
from dnscock.swarm_watcher import Swarms
from dnscock.upstream import Upstream

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class QueryPathView:
    """What the metrics read of the query path."""

    stats: QueryStats
    upstreams: Sequence[Upstream]
    caches: Mapping[str, ReplyCache]  # cache label -> cache
    busy: Callable[[], int]  # queries waiting now
    pool_size: int  # -forward-pool


class DnscockCollector(Collector):
    def __init__(self, query_path: QueryPathView, store: RecordStore, watchers: Sequence[DockerWatcher],
                 swarms: Swarms | None = None) -> None:
        self.query_path, self.store, self.watchers, self.swarms = query_path, store, list(watchers), swarms

    def collect(self) -> Iterator[Metric]:
        yield from self._queries()
        yield from self._upstreams()
        yield from self._table()
        yield from self._engine()
        yield from self._runtime()

    def _queries(self) -> Iterator[Metric]:
        stats = self.query_path.stats
        queries = CounterMetricFamily(
            "dnscock_queries", "DNS replies sent, by where the answer came from, query type and rcode",
            labels=["path", "qtype", "rcode"])
        for path in PATHS:
            for (qtype, rcode), count in sorted(stats.path(path).counts().items()):
                queries.add_metric([path, qtype, rcode], count)
        yield queries

        latency = HistogramMetricFamily(
            "dnscock_query_duration_seconds", "Time from a query's arrival to its reply, by path", labels=["path"])
        for path in PATHS:
            path_stats = stats.path(path)
            cumulative = list(accumulate(path_stats.buckets))
            buckets = [(repr(bound), count) for bound, count in zip(LATENCY_BUCKETS, cumulative)]
            buckets.append(("+Inf", cumulative[-1]))
            latency.add_metric([path], buckets, path_stats.seconds)
        yield latency

        dropped = CounterMetricFamily(
            "dnscock_dropped_messages", "Messages not answered (or only with a truncated empty reply): unreadable, "
            "responses sent to us, over -rate-limit",
            labels=["reason"])
        for reason, count in sorted(stats.dropped.items()):
            dropped.add_metric([reason], count)
        yield dropped

    def _upstreams(self) -> Iterator[Metric]:
        upstreams = self.query_path.upstreams
        families = (
            ("dnscock_upstream_queries", "Queries sent to an upstream nameserver", "queries"),
            ("dnscock_upstream_timeouts", "Queries an upstream nameserver left unanswered in time", "timeouts"),
            ("dnscock_upstream_errors", "Upstream failures other than timeouts: send errors, SERVFAIL/REFUSED/"
             "FORMERR/NOTIMP answers, broken TCP answers", "errors"),
        )
        for name, help_text, attribute in families:
            family = CounterMetricFamily(name, help_text, labels=["nameserver", "domain"])
            for upstream in upstreams:
                family.add_metric([str(upstream.address), upstream.domain or "."], getattr(upstream, attribute))
            yield family
        up = GaugeMetricFamily("dnscock_upstream_up", "1 while an upstream is used, 0 while it is skipped "
                               "(-max-fails reached; a probe will bring it back)", labels=["nameserver", "domain"])
        for upstream in upstreams:
            up.add_metric([str(upstream.address), upstream.domain or "."], 0 if upstream.down else 1)
        yield up

    def _table(self) -> Iterator[Metric]:
        counts: Counter[tuple[str, str]] = Counter({("container", watcher.source): 0 for watcher in self.watchers})
        counts[("manual", "")] += 0
        for record in self.store:
            kind = "manual" if record.manual else "stopped" if record.stopped else record.kind
            counts[(kind, record.source)] += 1
        records = GaugeMetricFamily("dnscock_records", "Records served, by kind (container, manual, stopped within "
                                    "-grace, a swarm's task and vip) and source (an engine, a swarm)",
                                    labels=["kind", "source"])
        for (kind, source), count in sorted(counts.items()):
            records.add_metric([kind, source], count)
        yield records
        caches = GaugeMetricFamily("dnscock_cache_entries", "Replies kept as bytes", labels=["cache"])
        for label, cache in self.query_path.caches.items():
            caches.add_metric([label], len(cache))
        yield caches
        yield GaugeMetricFamily("dnscock_store_generation", "Changes to the record table since start",
                                value=self.store.generation)

    def _engine(self) -> Iterator[Metric]:
        connected = GaugeMetricFamily("dnscock_engine_connected", "1 while the Docker engine's event stream is "
                                      "followed", labels=["engine"])
        synced = GaugeMetricFamily("dnscock_engine_synced", "1 once the first listing of the engine is in",
                                   labels=["engine"])
        events = CounterMetricFamily("dnscock_engine_events", "Engine events applied, by type and action",
                                     labels=["engine", "type", "action"])
        resyncs = CounterMetricFamily("dnscock_engine_resyncs", "Periodic re-listings of the engine: done, or "
                                      "skipped because an event changed the table meanwhile",
                                      labels=["engine", "result"])
        info = GaugeMetricFamily("dnscock_engine_info", "1 for each engine, with what it said it is (Docker, "
                                 "Podman, and its version) once connected", labels=["engine", "product"])
        for watcher in self.watchers:
            info.add_metric([watcher.url, watcher.product], 1)
            connected.add_metric([watcher.url], 1 if watcher.connected else 0)
            synced.add_metric([watcher.url], 1 if self.store.has_synced(watcher.source) else 0)
            for (kind, action), count in sorted(watcher.events.items()):
                events.add_metric([watcher.url, kind, action], count)
            for result in ("done", "skipped"):
                resyncs.add_metric([watcher.url, result], watcher.resyncs[result])
        yield from (info, connected, synced, events, resyncs)
        reading = GaugeMetricFamily("dnscock_swarm_reading", "1 while a swarm's services and tasks are read from "
                                    "one of its engines", labels=["swarm", "mode"])
        polls = CounterMetricFamily("dnscock_swarm_polls", "Listings of a swarm's tasks (or a worker's networks)",
                                    labels=["swarm"])
        changes = CounterMetricFamily("dnscock_swarm_changes", "Listings that changed the table", labels=["swarm"])
        for watcher in (self.swarms.watchers.values() if self.swarms is not None else ()):
            reading.add_metric([watcher.key, watcher.mode], 1 if watcher.connected else 0)
            polls.add_metric([watcher.key], watcher.polls)
            changes.add_metric([watcher.key], watcher.changes)
        yield from (reading, polls, changes)

    def _runtime(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("dnscock_pool_in_use", "Queries waiting now (forwarded, or waiting for the first "
                                "sync); at -forward-pool more get SERVFAIL", value=self.query_path.busy())
        yield GaugeMetricFamily("dnscock_pool_size", "The -forward-pool bound", value=self.query_path.pool_size)
        yield GaugeMetricFamily("dnscock_greenlets", "Greenlets alive in the process",
                                value=sum(1 for item in gc.get_objects() if isinstance(item, greenlet.greenlet)))
        info = GaugeMetricFamily("dnscock_build_info", "dnscock's version", labels=["version"])
        info.add_metric([__version__], 1)
        yield info


def build_registry(query_path: QueryPathView, store: RecordStore, watchers: Sequence[DockerWatcher],
                   swarms: Swarms | None = None) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DnscockCollector(query_path, store, watchers, swarms))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
