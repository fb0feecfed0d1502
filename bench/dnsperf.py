"""dnsperf: one run against a server on 127.0.0.1 (and how busy the server was meanwhile), its output read,
what in it deserves a warning, runs summed up, and percentiles."""

from __future__ import annotations

import logging
import math
import re
import resource
import statistics
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.processes import LOAD_CPU, Processes, cpu_seconds, pinned

log = logging.getLogger(__name__)

CLIENTS = 10  # dnsperf -c
OUTSTANDING = 100  # dnsperf -q
ODD_SHARE = 0.01  # more answers than this other than NOERROR, or more queries lost, deserve a warning

_FIELDS = {
    "sent": re.compile(r"Queries sent:\s+(\d+)"),
    "completed": re.compile(r"Queries completed:\s+(\d+)"),
    "lost": re.compile(r"Queries lost:\s+(\d+)"),
    "qps": re.compile(r"Queries per second:\s+([\d.]+)"),
    "latency_s": re.compile(r"Average Latency \(s\):\s+([\d.]+)"),
    "stddev_s": re.compile(r"Latency StdDev \(s\):\s+([\d.]+)"),
}
_CODES = re.compile(r"Response codes:\s+(.*)")


def parse_dnsperf(output: str) -> dict[str, Any]:
    """dnsperf's summary: ``qps``, ``latency_ms``, ``stddev_ms``, ``lost``, ``sent``, ``completed``, ``codes``."""
    figures: dict[str, Any] = {}
    for key, regex in _FIELDS.items():
        match = regex.search(output)
        if not match:
            raise BenchError(f"dnsperf printed no {key!r}:\n{output[-1500:]}")
        figures[key] = float(match.group(1)) if "." in match.group(1) else int(match.group(1))
    codes = _CODES.search(output)
    return {
        "qps": float(figures["qps"]),
        "latency_ms": float(figures["latency_s"]) * 1000,
        "stddev_ms": float(figures["stddev_s"]) * 1000,
        "lost": int(figures["lost"]),
        "sent": int(figures["sent"]),
        "completed": int(figures["completed"]),
        "codes": {name: int(count) for name, count in re.findall(r"([A-Z]+) (\d+)", codes.group(1))}
        if codes else {},
    }


def measure(processes: Processes, port: int, query_file: Path, server_pid: int, seconds: int, what: str,
            upstream_pid: int | None = None) -> dict[str, Any]:
    """One dnsperf run against 127.0.0.1:``port`` (on LOAD_CPU); also how busy the server's process was meanwhile.

    With ``upstream_pid`` (a forwarder under test), how busy its upstream was too.
    """
    command = pinned(LOAD_CPU, ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(query_file),
                                "-l", str(seconds), "-c", str(CLIENTS), "-q", str(OUTSTANDING)])
    cpu_before, wall_before = cpu_seconds(server_pid), time.monotonic()
    upstream_before = cpu_seconds(upstream_pid) if upstream_pid else 0.0
    # dnsperf's own CPU, from the children reaped meanwhile (it is the only one a run reaps).
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    process = processes.spawn(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = process.communicate(timeout=seconds + 60)
        wall = time.monotonic() - wall_before
        server_cpu = (cpu_seconds(server_pid) - cpu_before) / wall
        upstream_cpu = (cpu_seconds(upstream_pid) - upstream_before) / wall if upstream_pid else None
    except subprocess.TimeoutExpired:
        raise BenchError(f"dnsperf did not finish within {seconds + 60}s") from None
    finally:
        processes.stop(process)
    if process.returncode != 0:
        raise BenchError(f"dnsperf exited with code {process.returncode}:\n{output[-1500:]}")
    figures = parse_dnsperf(output)
    figures["server_cpu_pct"] = 100 * server_cpu
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    figures["client_cpu_pct"] = 100 * (children.ru_utime - children_before.ru_utime + children.ru_stime
                                       - children_before.ru_stime) / wall
    upstream = ""
    if upstream_cpu is not None:
        figures["upstream_cpu_pct"] = 100 * upstream_cpu
        upstream = f", upstream CPU {figures['upstream_cpu_pct']:.0f}%"
    log.info("%s: %s qps, %.3f ms, lost %s, server CPU %.0f%%%s, dnsperf CPU %.0f%%", what,
             f"{figures['qps']:,.0f}", figures["latency_ms"], figures["lost"], figures["server_cpu_pct"], upstream,
             figures["client_cpu_pct"])
    return figures


def complaints(figures: dict[str, Any], what: str) -> list[str]:
    """What in a run makes its figure doubtful: answers other than NOERROR, queries lost."""
    found = []
    answered = sum(figures["codes"].values()) or 1
    odd = {code: count for code, count in figures["codes"].items() if code != "NOERROR"}
    if sum(odd.values()) > ODD_SHARE * answered:
        found.append(f"{what}: answers other than NOERROR: {odd} of {answered}")
    if figures["lost"] > ODD_SHARE * max(figures["sent"], 1):
        found.append(f"{what}: {figures['lost']} of {figures['sent']} queries lost")
    return found


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The runs of one contender: mean QPS (and the lowest and highest), latency, lost queries, its CPU."""
    return {
        "qps": statistics.fmean(run["qps"] for run in runs),
        "qps_min": min(run["qps"] for run in runs),
        "qps_max": max(run["qps"] for run in runs),
        "latency_ms": statistics.fmean(run["latency_ms"] for run in runs),
        "stddev_ms": statistics.fmean(run["stddev_ms"] for run in runs),
        "lost": sum(run["lost"] for run in runs),
        "server_cpu_pct": statistics.fmean(run["server_cpu_pct"] for run in runs),
        "client_cpu_pct": statistics.fmean(run["client_cpu_pct"] for run in runs),
        "runs": runs,
    }


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
