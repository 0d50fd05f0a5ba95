"""Figures from /proc (Linux): a process's resident memory and open file descriptors, the
per-core CPU time of /proc/stat snapshots, the load average.
"""

import os
import re


def rss_kb(pid):
    """VmRSS of pid in kB (None when the kernel does not say); OSError when pid is gone."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def core_times(stat_text):
    """{cpuN: (total ticks, idle + iowait ticks)} from the text of /proc/stat."""
    out = {}
    for line in stat_text.splitlines():
        if re.match(r"cpu\d+ ", line):
            name, *vals = line.split()
            vals = [int(v) for v in vals]
            out[name] = (sum(vals[:8]), vals[3] + (vals[4] if len(vals) > 4 else 0))
    return out


def core_busy(before_text, after_text):
    """Busy fraction of each cpuN between two /proc/stat snapshots (everything running on
    that core counts, other people's jobs too)."""
    a, b = core_times(before_text), core_times(after_text)
    busy = {}
    for cpu in a:
        total = b[cpu][0] - a[cpu][0]
        idle = b[cpu][1] - a[cpu][1]
        busy[cpu] = (total - idle) / total if total > 0 else 0.0
    return busy


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])
