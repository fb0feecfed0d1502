"""dnscock against references, in rounds: every contender runs once a round, back to back, ``--rounds`` times.

A compared figure is the median of the rounds' own ratios (dnscock's QPS in
round *i* over the reference's in round *i*): runs taken back to back share
the machine's mood of the moment, which a ratio of means over the whole run
would mix in. Their lowest and highest show the noise.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.dnsperf import summarize
from bench.session import Session

COMPARED_CASES = ("local", "forward-uncached", "forward-cached", "scale")  # dnscock's QPS against a reference's
UNSATURATED_CPU_PCT = 70  # below this the server under test was not the bottleneck
SATURATED_CLIENT_CPU_PCT = 95  # above this dnsperf itself, on its one CPU, set the rate

Run = Callable[[int], dict[str, Any]]  # one dnsperf run of a contender in round i (0-based): its figures


def dnsperf_run(session: Session, what: str, port: int, pid: int, query_files: Sequence[Path],
                **options: Any) -> Run:
    """A contender's run in round i: dnsperf against ``port`` (process ``pid``) with the query file of that round
    (``query_files[i]``, or the one file for every round); ``what`` names it in the progress lines."""
    return lambda r: session.dnsperf(port, query_files[r % len(query_files)], pid, what=f"{what} round {r + 1}",
                                     **options)


def alternate(rounds: int, contenders: Sequence[tuple[str, Run]]) -> dict[str, list[dict[str, Any]]]:
    """Each contender in turn, ``rounds`` times over: their runs, by name, in round order."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in contenders}
    for round_index in range(rounds):
        for name, run in contenders:
            runs[name].append(run(round_index))
    return runs


def ratio_of(ours: list[dict[str, Any]], theirs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """Our runs against reference ``name``'s, round by round.

    ``ratio``: the median of ``ratio_rounds``; ``ratio_min``, ``ratio_max``:
    their lowest and highest; ``ratio_of_means``: mean QPS over mean QPS
    (the figure before 2026-12); ``ratio_per_cpu``: the median of the rounds'
    ratios of QPS per CPU-second of the server (what each server's own work
    costs, when dnsperf rather than the server set the rate);
    ``reference``: the reference's summary.
    """
    reference = summarize(theirs)
    mine = summarize(ours)
    pairs = list(zip(ours, theirs, strict=True))
    per_round = [a["qps"] / b["qps"] if b["qps"] else math.nan for a, b in pairs]
    per_cpu = [(a["qps"] / a["server_cpu_pct"]) / (b["qps"] / b["server_cpu_pct"])
               if a["server_cpu_pct"] and b["server_cpu_pct"] and b["qps"] else math.nan for a, b in pairs]
    return {"reference": reference, "reference_name": name, "ratio": statistics.median(per_round),
            "ratio_rounds": per_round, "ratio_min": min(per_round), "ratio_max": max(per_round),
            "ratio_of_means": mine["qps"] / reference["qps"] if reference["qps"] else math.nan,
            "ratio_per_cpu": statistics.median(per_cpu)}


def compared(session: Session, case: str, runs: dict[str, list[dict[str, Any]]], ours: str,
             references: Sequence[str]) -> dict[str, Any]:
    """``ours`` against each of ``references``: the first at the top (the figure a bar judges), any further one
    under ``other_references``, by name; ``dnscock``: our summary. Warns when a side did not saturate its CPU."""
    mine = summarize(runs[ours])
    against = {name: ratio_of(runs[ours], runs[name], name) for name in references}
    for name, result in against.items():
        busy = (mine["server_cpu_pct"], result["reference"]["server_cpu_pct"])
        if min(busy) < UNSATURATED_CPU_PCT:
            session.warn(f"{case}: {ours} and {name} used only {busy[0]:.0f}% / {busy[1]:.0f}% of CPU 1: dnsperf or "
                         "other load on the machine limited the rates, so the ratio says little about the servers")
        clients = (mine["client_cpu_pct"], result["reference"]["client_cpu_pct"])
        if min(clients) >= SATURATED_CLIENT_CPU_PCT and max(busy) < SATURATED_CLIENT_CPU_PCT:
            session.warn(f"{case}: dnsperf used {clients[0]:.0f}% / {clients[1]:.0f}% of CPU 0 against {ours} and "
                         f"{name}, which used {busy[0]:.0f}% / {busy[1]:.0f}% of CPU 1: the load generator set both "
                         f"rates, so the ratio tells dnsperf's pace more than the servers' cost; per CPU-second of "
                         f"the server the ratio is {result['ratio_per_cpu']:.2f}")
    first, *others = references
    result = {"dnscock": mine, **against[first]}
    if others:
        result["other_references"] = {name: against[name] for name in others}
    return result
