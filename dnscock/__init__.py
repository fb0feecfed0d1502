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
    ``throttled_log``, ``notify`` (systemd's READY/STATUS/STOPPING).
query path
    ``listeners`` (the DNS sockets, bound once or following the default
    bridge), ``server`` (UDP and TCP transport only), ``sockets`` (binding,
    buffers, TCP framing), ``resolver`` (the path: admission, caches, local or
    forwarded), ``access`` (-allow-from, -rate-limit), ``wire`` (raw bytes:
    the question, the flags of a reply), ``queries`` (what the hand reader
    leaves, read by dnslib), ``cache`` (replies kept as templates),
    ``authority`` (which names are ours: zones, apex, SOA, NS, empty
    non-terminals, reverse names), ``reverse_zones`` (the networks'
    subnets as reverse zones), ``views`` (split horizon), ``answers``
    (records -> resource records), ``packing`` (replies as bytes: compression, OPT, size limit,
    truncation), ``upstream`` (one failover plan, UDP and TCP drivers,
    upstream health), ``dnsname``, ``stats`` (the counters).
the table
    ``records`` (``Record``, ``RecordStore``: the trie index, build and
    swap, generation), ``naming`` (inspect data -> names, pure),
    ``services`` (dnsdock's service JSON), ``static_records`` (-records
    files).
engine side
    ``docker_watcher`` (subscribe, list, follow; inspect decides; grace,
    reconnect, resync), ``engine`` (the Engine API calls, TLS), ``swarm``
    (a swarm's services, tasks and networks -> records, pure),
    ``swarm_watcher`` (which engine to read a swarm from, polling, failover).
operations
    ``http_api`` (dnsdock's API, /health), ``metrics`` (/metrics),
    ``records_command`` (``dnscock records``), ``healthcheck`` (the image's
    health probe), ``host_setup`` (``dnscock host-setup``: the host's
    resolvers' files), ``resolved`` (-host-resolver: systemd-resolved over
    D-Bus), ``own_link`` (the TUN link it registers).
"""

__version__ = "0.1.0"
