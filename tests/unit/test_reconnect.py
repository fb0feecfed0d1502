"""The watchers' one reconnect loop: one warning per outage, debug lines for the retries, one line when back,
a backoff that doubles up to its cap and starts again after a connect."""

from __future__ import annotations

import logging

from dnscock import reconnect
from dnscock.reconnect import Outage

log = logging.getLogger("dnscock.test-reconnect")


def test_one_warning_per_outage_then_debug_lines_and_one_line_when_back(caplog, monkeypatch):
    monkeypatch.setattr(reconnect.gevent, "sleep", lambda seconds: None)
    outage = Outage(log)
    with caplog.at_level(logging.DEBUG, logger=log.name):
        outage.back("connected to %s", "x")
        outage.failed("cannot reach %s", "x")
        outage.pause()
        outage.failed("cannot reach %s", "x")
        outage.back("connected to %s", "x")
        outage.failed("lost %s", "x")
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if not r.getMessage().startswith("trying again")]
    assert [level for level, _ in lines] == [logging.INFO, logging.WARNING, logging.DEBUG, logging.INFO,
                                             logging.WARNING]
    assert lines[0][1] == "connected to x", "no outage before: nothing about one"
    assert lines[3][1].startswith("connected to x (back after ") and lines[3][1].endswith("s)")


def test_the_wait_doubles_up_to_the_cap_and_starts_again_after_a_connect(monkeypatch):
    waits: list[float] = []
    monkeypatch.setattr(reconnect.gevent, "sleep", waits.append)
    monkeypatch.setattr(reconnect, "BACKOFF_FIRST", 0.25)
    monkeypatch.setattr(reconnect, "BACKOFF_MAX", 1.0)
    outage = Outage(log)
    for _ in range(5):
        outage.failed("down")
        outage.pause()
    outage.connected()
    outage.failed("down")
    outage.pause()
    assert waits == [0.25, 0.5, 1.0, 1.0, 1.0, 0.25]
