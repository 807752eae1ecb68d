"""CPU time per process from /proc, to say which process is busy at which rate.

On a 2-core machine the worker, the broker, PostgreSQL and the load generator compete for the
same cores, so "cores used" per process during a step is the first clue to what limits it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def parse_stat(text: str) -> tuple[int, float]:
    """``/proc/<pid>/stat`` -> (ppid, utime+stime in clock ticks). The command name may hold
    spaces and parentheses, so fields are counted after the last ')'."""
    rest = text[text.rindex(")") + 2 :].split()
    # rest[0] is field 3 (state); ppid is field 4, utime 14, stime 15
    return int(rest[1]), float(int(rest[11]) + int(rest[12]))


def parse_machine_stat(text: str) -> tuple[float, float]:
    """First line of ``/proc/stat`` -> (busy ticks, total ticks)."""
    fields = [float(x) for x in text.splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already in user/nice
    return total - idle, total


def cpu_seconds(pid: int) -> float | None:
    try:
        _, ticks = parse_stat(Path(f"/proc/{pid}/stat").read_text())
    except (OSError, ValueError, IndexError):
        return None
    return ticks / CLK_TCK


def children(ppid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent, _ = parse_stat((entry / "stat").read_text())
        except (OSError, ValueError, IndexError):
            continue
        if parent == ppid:
            out.append(int(entry.name))
    return out


def postgres_pids(data_dir: Path) -> list[int]:
    """The postmaster named in ``postmaster.pid`` and its children; [] if not readable."""
    try:
        postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return []
    return [postmaster, *children(postmaster)]


def machine_ticks() -> tuple[float, float]:
    return parse_machine_stat(Path("/proc/stat").read_text())


class CpuMeter:
    """Snapshots of CPU seconds per named group of processes (the pids are looked up at each
    snapshot: PostgreSQL backends and the worker come and go)."""

    def __init__(self, groups: Mapping[str, Callable[[], list[int]]]) -> None:
        self.groups = dict(groups)

    def snapshot(self) -> dict[str, float]:
        snap: dict[str, float] = {}
        for name, pids in self.groups.items():
            snap[name] = sum(s for s in (cpu_seconds(p) for p in pids()) if s is not None)
        busy, total = machine_ticks()
        snap["_machine_busy"] = busy / CLK_TCK
        snap["_machine_total"] = total / CLK_TCK
        return snap


def cores_used(
    before: Mapping[str, float], after: Mapping[str, float], seconds: float
) -> dict[str, float]:
    """Average cores used per group between two snapshots; ``machine`` is the whole box
    (other people's processes included)."""
    out = {
        name: round((after[name] - before[name]) / seconds, 2)
        for name in before
        if not name.startswith("_") and name in after
    }
    total = after["_machine_total"] - before["_machine_total"]
    busy = after["_machine_busy"] - before["_machine_busy"]
    cpus = os.cpu_count() or 1
    out["machine"] = round(cpus * busy / total, 2) if total > 0 else 0.0
    return out
