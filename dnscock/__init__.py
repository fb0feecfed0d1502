"""dnscock: a DNS server for Docker hosts.

It keeps a table of the running containers, fed by the Docker Engine API,
answers ``<anything>.<container>.<image>.<environment>.<domain>`` from it and
forwards every other query to an upstream nameserver.

The modules, by what they own (arrows point one way: server -> pipeline ->
authority -> store <- watcher; operations read what app.py hands them):

process
    ``__main__`` (gevent's patching, first), ``app`` (wiring: options ->
    parts, signals), ``options`` (the table of options: names, defaults,
    help; the sample config and docs/options.md are generated from it),
    ``values`` (the option values' parsers), ``config`` (flags, env vars,
    config file -> ``Config``, the parser made from the table),
    ``addresses`` (``Address``, ``IPNetwork``, ``Engine``: shared by all,
    free of the parser), ``privileges`` (-user), ``errors`` (the one
    exception base), ``throttled_log``, ``notify`` (systemd's
    READY/STATUS/STOPPING).
query path
    ``listeners`` (the DNS sockets, bound once or following the default
    bridge), ``server`` (UDP and TCP transport only), ``sockets`` (binding,
    buffers, TCP framing), ``query`` (one query's facts, carried through
    every stage), and ``pipeline``, the stages in order, each the home of
    one rule:

    1. admit: ``access`` (-allow-from, -rate-limit);
    2. the exact-bytes caches: ``cache`` (a repeated UDP query, one lookup);
    3. read: ``Query.read`` by hand, ``queries`` (dnslib) for the rest,
       both on ``wire`` (the label walk, OPT, header splices, rcodes);
    4. owner?: ``authority`` (the one dispatch: zone, alias zone, reverse
       zone from ``reverse_zones``), with ``views`` (split horizon);
    5a. answer locally: ``cache`` (by question, per view and table
        generation), ``authority`` and ``answers`` (records -> resource
        records), ``packing`` (replies as bytes: compression, OPT, size
        limit, truncation);
    5b. or forward: ``cache`` (by question, TTLs), ``upstream`` (one
        failover plan, UDP and TCP drivers, upstream health), the reply
        relayed by ``packing`` with the client's header;
    6. send and count: the transport, ``stats`` (the counters).

    ``dnsname`` (names in options and files).
the table
    ``records`` (``Record``, ``RecordStore``: the trie index, build and
    swap, generation), ``naming`` (inspect data -> names, pure),
    ``services`` (dnsdock's service JSON), ``static_records`` (-records
    files), ``proxy_names`` (names in reverse proxies' labels -> records
    answering the proxy, kept up to date after each change).
engine side
    ``docker_watcher`` (subscribe, list, follow; inspect decides; grace,
    resync; Podman's pods and rootless engines), ``reconnect`` (the one
    reconnect loop: backoff, a warning per outage, a line when back),
    ``engine`` (the Engine API calls, TLS, which product), ``swarm``
    (a swarm's services, tasks and networks -> records, pure),
    ``swarm_watcher`` (which engine to read a swarm from, polling, failover).
operations
    ``http_api`` (dnsdock's API, /health, the page's endpoints), ``page``
    (the page, ``page.html``, and the rates it charts), ``explain``
    (/explain: what a name gets, and why), ``query_log`` (-query-log,
    -log-queries), ``metrics`` (/metrics),
    ``records_command`` (``dnscock records``), ``healthcheck`` (the image's
    health probe), ``host_setup`` (``dnscock host-setup``: the host's
    resolvers' files), ``resolved`` (-host-resolver: systemd-resolved over
    D-Bus), ``own_link`` (the TUN link it registers).
"""

__version__ = "0.1.0"
