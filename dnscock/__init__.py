"""dnscock: a DNS server for Docker hosts.

It keeps a table of the running containers, fed by the Docker Engine API,
answers ``<anything>.<container>.<image>.<environment>.<domain>`` from it and
forwards every other query to an upstream nameserver.

The modules, by what they own (arrows point one way: server -> resolver ->
authority -> store <- watcher; operations read what app.py hands them):

process
    ``__main__`` (gevent's patching, first), ``app`` (wiring: options ->
    parts, signals), ``config`` (flags, env vars, config file -> ``Config``),
    ``privileges`` (-user), ``errors`` (the one exception base),
    ``throttled_log``.
query path
    ``server`` (UDP and TCP transport only), ``sockets`` (binding, buffers,
    TCP framing), ``resolver`` (the path: admission, caches, local or
    forwarded), ``access`` (-allow-from, -rate-limit), ``wire`` (raw bytes:
    the question, the flags of a reply), ``queries`` (what the hand reader
    leaves, read by dnslib), ``cache`` (replies kept as templates),
    ``authority`` (which names are ours: zones, apex, SOA, NS, empty
    non-terminals, reverse names), ``answers`` (records -> resource
    records), ``packing`` (replies as bytes: compression, OPT, size limit,
    truncation), ``upstream`` (one failover plan, UDP and TCP drivers,
    upstream health), ``dnsname``, ``stats`` (the counters).
the table
    ``records`` (``Record``, ``RecordStore``: the trie index, build and
    swap, generation), ``naming`` (inspect data -> names, pure),
    ``services`` (dnsdock's service JSON).
engine side
    ``docker_watcher`` (subscribe, list, follow; inspect decides; grace,
    reconnect, resync), ``engine`` (the Engine API calls, TLS).
operations
    ``http_api`` (dnsdock's API, /health), ``metrics`` (/metrics),
    ``records_command`` (``dnscock records``), ``healthcheck`` (the image's
    health probe).
"""

__version__ = "0.1.0"
