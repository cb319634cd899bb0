"""CPU time per process group, from /proc, to show where the two cores went in a scenario."""

from __future__ import annotations

import os
import resource
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, int, float] | None:
    """(ppid, session id, CPU seconds) of a process, or None if it is gone. The seconds are
    its own user+system time and that of its children it has waited for: a PostgreSQL
    backend that exits mid-scenario (a pool closing an overflow connection) then still
    counts, in the postmaster's total, instead of vanishing from the group (a negative
    figure) and turning up as OUTSIDE."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) "
    # fields[0] is state; ppid=1, pgrp=2, session=3; utime=11, stime=12, cutime=13,
    # cstime=14 (0-based here)
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))
    return int(fields[1]), int(fields[3]), ticks / TICKS


def snapshot(roots: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far of each named group: its root process, the root's session if the
    root leads one (devstack starts each child in its own session), and the root's children
    (PostgreSQL's backends), each with its waited-for children's time."""
    stats: dict[int, tuple[int, int, float]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None:
                stats[int(entry.name)] = stat
    totals = dict.fromkeys(roots, 0.0)
    for name, root in roots.items():
        leads_session = root in stats and stats[root][1] == root
        for pid, (ppid, sid, cpu) in stats.items():
            if pid == root or ppid == root or (leads_session and sid == root):
                totals[name] += cpu
    return totals


def machine_busy() -> tuple[float, float]:
    """(busy seconds, total seconds) summed over all CPUs since boot, from /proc/stat."""
    parts = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in parts[:8]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values) - idle) / TICKS, sum(values) / TICKS


def usage(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    """Per-group CPU use over an interval as a percentage of one core."""
    return {
        name: round(100 * (after.get(name, 0.0) - before.get(name, 0.0)) / seconds, 1)
        for name in after
        if seconds > 0
    }


def own_seconds() -> float:
    """CPU seconds of this process (the bench itself), not of its children."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
