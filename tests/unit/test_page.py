"""The page's own parts without a browser: the file served, and the rates it charts."""

from __future__ import annotations

import re

from dnscock.page import RateHistory, page_html
from dnscock.stats import QueryStats


def test_the_page_is_one_file_that_loads_nothing_from_elsewhere():
    html = page_html().decode()
    assert re.findall(r"""(?:src|href)\s*=\s*["']?(?!data:|#)[^"'\s>]+""", html) == []
    assert "innerHTML" not in html and "insertAdjacentHTML" not in html and "document.write" not in html
    assert 'name="explain"' in html


def test_rates_are_replies_a_second_by_path_between_samples():
    stats = QueryStats()
    now = [100.0]
    history = RateHistory(stats, clock=lambda: now[0])
    history.sample()
    for _ in range(50):
        stats.local.count(1 << 4, 0.0)
    for _ in range(10):
        stats.forwarded.count(1 << 4, 0.0)
    now[0] = 105.0
    history.sample()
    assert history.rates() == [{"t": 105.0, "local": 10.0, "cached": 0.0, "forwarded": 2.0}]
    now[0] = 106.0
    history.sample()
    assert history.rates()[-1] == {"t": 106.0, "local": 0.0, "cached": 0.0, "forwarded": 0.0}
