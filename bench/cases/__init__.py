"""The cases, one module per case or group of cases, each with a ``run(session)`` (``forward``: ``run_uncached``
and ``run_cached``; ``local``: ``prepare`` first): ``local``, ``forward`` (forward-uncached, forward-cached),
``scale``, ``events``, ``startup``, ``swarm`` (with ``swarm_follow``). Each puts its figures in
``session.results[<case>]`` or raises BenchError."""
