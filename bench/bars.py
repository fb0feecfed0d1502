"""The bars the full mode judges the figures by, marked PASS or FAIL (never changing the exit code).

The compared cases are judged by their first reference (dnsmasq, or for
scale dnscock with 10 containers); the ceiling ratios have no bar.
"""

from __future__ import annotations

from typing import Any

from bench.compare import COMPARED_CASES

BARS = {  # key -> (label, comparison, limit)
    "local": ("local ratio (vs dnsmasq, hosts file)", ">=", 0.95),
    "forward-uncached": ("forward-uncached ratio (dnscock -cache-size=0 vs dnsmasq-forwarding)", ">=", 0.9),
    "forward-cached": ("forward-cached ratio (vs dnsmasq-direct)", ">=", 0.8),
    "scale": ("scale ratio ({n}/10)", ">=", 0.9),
    "events-start": ("event->answer p50 ms (start)", "<", 20.0),
    "events-stop": ("event->answer p50 ms (stop)", "<", 20.0),
    "startup-fake": ("sync of {n} containers, s", "<", 3.0),
    "rss": ("dnscock VmRSS MiB (max)", "<=", 60.0),
    "swarm-start-p50": ("swarm: task running -> answer p50 ms", "<", 1000.0),
    "swarm-start-max": ("swarm: task running -> answer max ms", "<", 2000.0),
    "swarm-leave-max": ("swarm: task out of the running set -> no answer max ms", "<", 2000.0),
    "swarm-cpu": ("swarm: dnscock CPU % of one core, {tasks} tasks", "<", 5.0),
}


def bar_values(results: dict[str, Any]) -> dict[str, float]:
    values: dict[str, float] = {}
    for case in COMPARED_CASES:
        if case in results:
            values[case] = results[case]["ratio"]
    if "events" in results:
        values["events-start"] = results["events"]["start_ms"]["p50"]
        values["events-stop"] = results["events"]["stop_ms"]["p50"]
    startup = results.get("startup", {})
    if "fake" in startup:
        values["startup-fake"] = startup["fake"]["log_line_s"]
    rss = [startup["fake"][key] for key in ("rss_after_sync_mib", "rss_after_sync_mib_quiet") if "fake" in startup]
    if "scale" in results:
        rss += [results["scale"]["rss_after_sync_mib"], results["scale"]["rss_after_queries_mib"]]
    if rss:
        values["rss"] = max(rss)
    swarm = results.get("swarm", {})
    if "latency" in swarm:
        values["swarm-start-p50"] = swarm["latency"]["start_ms"]["p50"]
        values["swarm-start-max"] = swarm["latency"]["start_ms"]["max"]
        values["swarm-leave-max"] = swarm["latency"]["leave_ms"]["max"]
    if "cpu" in swarm:
        values["swarm-cpu"] = swarm["cpu"]["cpu_pct"]
    return values


def judge(values: dict[str, float], containers: int, swarm_tasks: int = 0) -> list[dict[str, Any]]:
    judged = []
    for key, (label, comparison, limit) in BARS.items():
        if key not in values:
            continue
        value = values[key]
        label = label.format(n=containers, tasks=swarm_tasks)
        passed = {">=": value >= limit, "<": value < limit, "<=": value <= limit}[comparison]
        judged.append({"bar": label, "value": value, "comparison": comparison, "limit": limit, "pass": passed})
    return judged
