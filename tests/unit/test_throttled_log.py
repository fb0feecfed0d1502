"""One line per kind per interval, with the count of what was held back."""

from __future__ import annotations

import logging

from dnscock import throttled_log
from dnscock.throttled_log import ThrottledLog


def test_repeats_within_the_interval_are_counted_not_logged(caplog, monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(throttled_log.time, "monotonic", lambda: clock[0])
    warnings = ThrottledLog(logging.getLogger("test.throttle"), interval=5)
    with caplog.at_level(logging.WARNING):
        for _ in range(50):
            warnings.warning("forward", "forwarding %s failed", "a.example")
        warnings.warning("pool", "pool full")
        clock[0] += 6
        warnings.warning("forward", "forwarding %s failed", "b.example")
    assert [record.getMessage() for record in caplog.records] == [
        "forwarding a.example failed",
        "pool full",
        "forwarding b.example failed (and 49 more like it since the last such line)",
    ]
