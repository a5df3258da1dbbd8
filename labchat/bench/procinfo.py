"""CPU time and memory of a process, read from /proc (Linux). Other systems get None."""

from __future__ import annotations

import os
from dataclasses import dataclass

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True, slots=True)
class ProcSample:
    cpu_s: float  # user + system CPU seconds since the process started
    rss_bytes: int  # resident set size now
    hwm_bytes: int  # peak resident set size (VmHWM)


def sample(pid: int) -> ProcSample | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            stat = f.read()
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            status = f.read()
    except OSError:
        return None
    # Fields after the command name, which is in parentheses and may contain spaces.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    rss = hwm = 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
        elif line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) * 1024
    return ProcSample((utime + stime) / _TICKS, rss, hwm)
