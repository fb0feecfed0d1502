"""The machine a run measured on, for the JSON: CPUs, kernel, Python, dnsperf and dnsmasq versions, dnscock's
commit (and whether dnscock/ had uncommitted changes), the load average at the start, the date."""

from __future__ import annotations

import contextlib
import os
import platform
import re
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.packages import DNSMASQ
from bench.processes import ROOT


def command_output(command: Sequence[str], cwd: Path | None = None) -> str:
    try:
        result = subprocess.run(list(command), capture_output=True, text=True, cwd=cwd, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (result.stdout + result.stderr).strip()


def machine_info(source: Path = ROOT) -> dict[str, Any]:
    """The machine, the tools' versions, and the commit of ``source``, the checkout whose dnscock is measured."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    dnsperf_version = re.search(r"Version (\S+)", command_output(["dnsperf", "-h"]))
    dnsmasq_version = command_output([DNSMASQ, "--version"]).splitlines()
    commit = command_output(["git", "rev-parse", "--short", "HEAD"], cwd=source)
    dirty = command_output(["git", "status", "--porcelain", "--", "dnscock"], cwd=source)
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "dnsperf": dnsperf_version.group(1) if dnsperf_version else "",
        "dnsmasq": dnsmasq_version[0] if dnsmasq_version else "",
        "dnscock_commit": commit,
        "dnscock_source": str(source),
        "dnscock_worktree_dirty": bool(dirty),
        "loadavg_at_start": os.getloadavg(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
