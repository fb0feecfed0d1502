"""What a run says at the end: the table and lines on stdout, the JSON document, and the smoke check.

Each compared case gives a row per reference: dnscock's QPS as a fraction
of dnsmasq's and of the ceiling's, measured in the same rounds (the median
of the rounds' own ratios, their lowest and highest); forward-uncached adds
a row for dnscock with its forward cache on, as users run it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bench.compare import COMPARED_CASES
from bench.processes import LOAD_CPU, SERVER_CPU
from bench.session import Options

HEADERS = ["case", "dnscock QPS", "ref QPS", "ratio", "min-max", "dnscock ms", "ref ms", "CPU %", "lost", "reference"]
LEGEND = ("(ratio: median of the rounds' own ratios, dnscock's QPS over the reference's in the same round; min-max: "
          "their lowest and highest; ceiling: bench/ceiling.py, the least a Python/gevent server can do, no bar)")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    lines = []
    for row in [headers, *rows]:
        cells = [str(cell).ljust(widths[i]) if i == 0 or i == len(row) - 1 else str(cell).rjust(widths[i])
                 for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def comparisons(case: str, result: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(row label, dnscock's summary, a comparison) for every reference of a compared case's result."""
    if case == "scale":
        label = f"scale ({result['containers']} vs {result['small_containers']})"
    elif case == "forward-uncached":
        label = "forward-uncached (dnscock cache off)"
    else:
        label = case
    yield label, result["dnscock"], result
    for other in result.get("other_references", {}).values():
        yield f"  {label}", result["dnscock"], other
    if "cache_on" in result:
        yield "forward-uncached (dnscock cache on)", result["cache_on"]["dnscock"], result["cache_on"]


def _row(label: str, ours: dict[str, Any], compared: dict[str, Any]) -> list[str]:
    theirs = compared["reference"]
    spread = f"{compared['ratio_min']:.2f}-{compared['ratio_max']:.2f}" if len(compared["ratio_rounds"]) > 1 else "-"
    return [label, f"{ours['qps']:,.0f}", f"{theirs['qps']:,.0f}", f"{compared['ratio']:.2f}", spread,
            f"{ours['latency_ms']:.3f}", f"{theirs['latency_ms']:.3f}",
            f"{ours['server_cpu_pct']:.0f}/{theirs['server_cpu_pct']:.0f}", f"{ours['lost']}/{theirs['lost']}",
            compared["reference_name"]]


def text(options: Options, results: dict[str, Any], errors: dict[str, str], bars: list[dict[str, Any]]) -> str:
    mode = "smoke" if options.smoke else "full"
    out = [(f"dnscock benchmark ({mode}: {options.seconds}s per dnsperf run, {options.rounds} round(s), "
            f"dnscock on CPU {SERVER_CPU}, dnsperf on CPU {LOAD_CPU})"), ""]
    rows = []
    for case in COMPARED_CASES:
        if case in results:
            rows += [_row(*each) for each in comparisons(case, results[case])]
        elif case in options.cases:
            rows.append([case, "-", "-", "-", "-", "-", "-", "-", "-",
                         f"ERROR: {errors.get(case, '?').splitlines()[0]}"])
    if rows:
        out.append(table(HEADERS, rows))
        if any(case in results for case in COMPARED_CASES):
            out.append(LEGEND)
        out.append("")
    out += _events(options, results, errors) + _startup(options, results, errors) + _swarm(options, results, errors)
    out += [f"{case}: ERROR: {message}" for case, message in errors.items() if case not in options.cases]
    if bars:
        out += ["", "bars:", table(["bar", "value", "limit", "result"],
                                   [[b["bar"], f"{b['value']:.2f}", f"{b['comparison']} {b['limit']:g}",
                                     "PASS" if b["pass"] else "FAIL"] for b in bars])]
    return "\n".join(out)


def _events(options: Options, results: dict[str, Any], errors: dict[str, str]) -> list[str]:
    if "events" in results:
        e = results["events"]
        return [(f"events ({e['iterations']} x docker run/stop): "
                 f"start event -> answer p50 {e['start_ms']['p50']:.1f} ms, p99 {e['start_ms']['p99']:.1f} ms; "
                 f"die event -> no address p50 {e['stop_ms']['p50']:.1f} ms, p99 {e['stop_ms']['p99']:.1f} ms "
                 f"({', '.join(f'{code} {count}' for code, count in e['stop_ms']['rcodes'].items())})")]
    if "events" in options.cases:
        return [f"events: ERROR: {errors.get('events', '?')}"]
    return []


def _startup(options: Options, results: dict[str, Any], errors: dict[str, str]) -> list[str]:
    out = []
    startup = results.get("startup", {})
    for key, label in (("real", "real containers"), ("fake", "fake-engine containers")):
        if key in startup:
            s = startup[key]
            out.append(f"startup, {s['containers']} {label}: launch -> 'connected to the Docker engine' "
                       f"{s['log_line_s']:.2f} s; with -verbose=false, launch -> first local answer "
                       f"{s['quiet_s']:.2f} s; VmRSS after sync {s['rss_after_sync_mib']:.1f} MiB")
    if "startup" in options.cases and "startup" in errors:
        out.append(f"startup: ERROR: {errors['startup']}")
    if "scale" in results:
        s = results["scale"]
        out.append(f"VmRSS with {s['containers']} containers: {s['rss_after_sync_mib']:.1f} MiB after sync, "
                   f"{s['rss_after_queries_mib']:.1f} MiB after the scale queries")
    return out


def _swarm(options: Options, results: dict[str, Any], errors: dict[str, str]) -> list[str]:
    out = []
    swarm = results.get("swarm", {})
    if "latency" in swarm:
        s = swarm["latency"]
        start, leave = s["start_ms"], s["leave_ms"]
        out.append(f"swarm ({s['events']} tasks scaled up one at a time, {s['kills']} killed on node 2, then scaled "
                   f"down, on a two-node swarm; -swarm-poll 1): task running -> answer p50 {start['p50']:.0f} ms, "
                   f"p99 {start['p99']:.0f} ms, max {start['max']:.0f} ms; out of the running set -> no answer "
                   f"p50 {leave['p50']:.0f} ms, p99 {leave['p99']:.0f} ms, max {leave['max']:.0f} ms "
                   f"({', '.join(f'{code} {count}' for code, count in leave['rcodes'].items())})")
        out.append("  by cause: " + "; ".join(
            f"{what} {cause} p50 {f['p50']:.0f} ms, max {f['max']:.0f} ms ({f['count']})"
            for what, figures in (("start", start), ("leave", leave))
            for cause, f in figures["by_cause"].items()))
    if "cpu" in swarm:
        c = swarm["cpu"]
        out.append(f"swarm CPU (fake manager, -swarm-poll 1, {c['seconds']} s, no queries): {c['tasks']} tasks in "
                   f"{c['services']} services {c['cpu_pct']:.2f}% of one core, {c['baseline_tasks']} tasks "
                   f"{c['baseline_cpu_pct']:.2f}% (the tasks: {c['tasks_cpu_pct']:+.2f}%); VmRSS "
                   f"{c['runs'][str(c['tasks'])]['rss_mib']:.1f} MiB")
    if "swarm" in options.cases and "swarm" in errors:
        out.append(f"swarm: ERROR: {errors['swarm']}")
    return out


def smoke_problems(options: Options, results: dict[str, Any]) -> list[str]:
    """Every selected case produced figures, each > 0 (no thresholds)."""
    problems = []
    for case in options.cases:
        if case not in results:
            problems.append(f"{case}: no figures")
            continue
        r = results[case]
        if case in COMPARED_CASES:
            figures = {}
            for label, ours, compared in comparisons(case, r):
                name = compared["reference_name"]
                figures[f"{label.strip()}: dnscock qps"] = ours["qps"]
                figures[f"{label.strip()}: {name} qps"] = compared["reference"]["qps"]
                figures[f"{label.strip()}: ratio to {name}"] = compared["ratio"]
        elif case == "events":
            figures = {"iterations": r["iterations"], "start samples": len(r["start_ms"]["samples"]),
                       "stop samples": len(r["stop_ms"]["samples"])}
        elif case == "swarm":
            latency, cpu = r.get("latency", {}), r.get("cpu", {})
            figures = {"start samples": len(latency.get("start_ms", {}).get("samples", ())),
                       "leave samples": len(latency.get("leave_ms", {}).get("samples", ())),
                       "task listings (CPU run)": min((run["polls"] for run in cpu.get("runs", {}).values()),
                                                      default=0),
                       "CPU window s": cpu.get("seconds", 0)}
        else:
            figures = {f"{key} {name}": r[key][name] for key in ("real", "fake") if key in r
                       for name in ("log_line_s", "quiet_s", "rss_after_sync_mib")}
            if set(r) != {"real", "fake"}:
                figures["both engines"] = 0
        problems += [f"{case}: {name} = {value}" for name, value in figures.items()
                     if not (isinstance(value, (int, float)) and value > 0)]
    return problems


def document(options: Options, info: dict[str, Any], elapsed: float, results: dict[str, Any],
             errors: dict[str, str], warnings: list[str], bars: list[dict[str, Any]],
             problems: list[str]) -> dict[str, Any]:
    """The JSON of a run (``--json``): the machine, the options, every figure, the bars, what went wrong."""
    return {
        "machine": info,
        "options": {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(options).items()},
        "elapsed_s": elapsed,
        "results": results,
        "bars": bars,
        "errors": errors,
        "warnings": warnings,
        "smoke_problems": problems,
    }
