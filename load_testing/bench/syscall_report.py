#!/usr/bin/env python3
"""System calls and their cost per request, router against nginx (used by syscalls.sh).

    syscall_report.py record ROUNDS.jsonl --server NAME --mode M --round N \
        --stat-csv FILE --stat-requests N --perf-data FILE --perf-requests N \
        --perf-ticks BEFORE AFTER --plain-requests N --plain-ticks BEFORE AFTER --plain-wall SECONDS
    syscall_report.py report ROUNDS.jsonl          # markdown tables on stdout
    syscall_report.py classify PERF.data           # the shares of one profile, as JSON
    syscall_report.py user PERF.data [N]           # user-space self time by group, top N symbols

A round has three runs of the same load. The first, under `perf stat -x,` with
`syscalls:sys_enter_NAME` events, `raw_syscalls:sys_enter` (every call; what the named events
miss is "other") and `sys_exit_*` events filtered on `ret == -11` (EAGAIN), gives system calls
per request. The second, under `perf record -e cpu-clock -g`, gives where the CPU went: every
sample is put in one bucket by its call chain, read from the root: the system call whose
handler it is in (the frame under `do_syscall_64`: `__x64_sys_sendto`, `do_writev`, ...), with
the socket teardown that `close` defers to the return to user space (`task_work_run` ->
`__fput`) counted as `close`; else interrupts/softirq, page faults, the scheduler, or other
kernel; samples whose leaf is not in the kernel are user space. A bucket's CPU per request is
its share of the samples times the server's CPU time per request, from the third run, with
nothing attached (utime + stime from /proc/PID/stat before and after; perf's sampling inflates
the second run's own).
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from collections import Counter

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

CLK_TCK = os.sysconf("SC_CLK_TCK")
USER = "user space"
ALL = "(all)"  # raw_syscalls:sys_enter
OTHER_CALLS = "other"
KERNEL_OTHER_BUCKETS = ("syscall entry/exit", "interrupts, softirq", "page faults", "scheduler", "other kernel")
HANDLER_FRAME = re.compile(r"^(?:__x64_sys_|__ia32_sys_|__do_sys_|__se_sys_|__sys_|ksys_|do_)(\w+?)(?:\.\w+)*$")


def parse_stat_csv(path):
    """`perf stat -x,` output: {syscall: count} for sys_enter_*, {syscall + ' EAGAIN': count} for
    the filtered sys_exit_* events."""
    counts = {}
    for line in open(path, errors="replace"):
        parts = line.strip().split(",")
        if len(parts) < 3 or not parts[0].strip().isdigit():
            continue
        if parts[2] == "raw_syscalls:sys_enter":
            counts[ALL] = counts.get(ALL, 0) + int(parts[0])
            continue
        m = re.match(r"syscalls:sys_(enter|exit)_(\w+)", parts[2])
        if not m:
            continue
        name = m.group(2) if m.group(1) == "enter" else m.group(2) + " EAGAIN"
        counts[name] = counts.get(name, 0) + int(parts[0])
    return {k: v for k, v in counts.items() if v}


def syscall_name(sym):
    """The system call a handler frame belongs to (`__x64_sys_sendto`, `do_writev`, `ksys_write`,
    `__sys_accept4` -> sendto, writev, write, accept4)."""
    m = HANDLER_FRAME.match(sym)
    return m.group(1) if m else sym


def bucket(frames):
    """frames: [(symbol, dso)] from the leaf to the root. Returns the sample's bucket: the
    system call whose handler the sample is in (the frame below `do_syscall_64`), or a kernel
    bucket outside handlers, or user space."""
    if not frames or "kernel" not in frames[0][1]:
        return USER
    syms = [s for s, _ in reversed(frames)]  # from the root
    for i, s in enumerate(syms):
        if s == "do_syscall_64":
            rest = [x for x in syms[i + 1:] if x != "x64_sys_call"]
            if not rest:
                return "syscall entry/exit"
            if rest[0].startswith(("syscall_exit", "exit_to_user_mode", "syscall_trace")):
                if any(x in ("task_work_run", "__fput", "____fput") for x in rest):
                    return "close"  # the socket's teardown, deferred by close() to the return
                if any(x in ("__schedule", "schedule") for x in rest):
                    return "scheduler"
                return "syscall entry/exit"
            return syscall_name(rest[0])
        if s.startswith(("asm_sysvec_", "asm_common_interrupt", "sysvec_", "__do_softirq",
                         "handle_softirqs", "irq_exit")):
            return "interrupts, softirq"
        if s.startswith(("asm_exc_page_fault", "exc_page_fault")):
            return "page faults"
        if s in ("__schedule", "schedule", "preempt_schedule_irq"):
            return "scheduler"
    return "other kernel"


def classify(data):
    """{bucket: samples} of a perf.data recorded with -g."""
    out = subprocess.run(["perf", "script", "-i", data, "-F", "ip,sym,dso"],
                         capture_output=True, text=True, errors="replace", check=False).stdout
    counts = Counter()
    frames = []
    for line in out.splitlines() + [""]:
        if not line.strip():
            if frames:
                counts[bucket(frames)] += 1
            frames = []
            continue
        m = re.match(r"^\s*([0-9a-f]+)\s+(.*?)\s+\((.*)\)\s*$", line)
        if m:
            sym = re.sub(r"\+0x[0-9a-f]+$", "", m.group(2))
            frames.append((sym, m.group(3)))
    return dict(counts)


def record(args):
    counts = parse_stat_csv(args.stat_csv)
    if ALL in counts:
        named = sum(v for k, v in counts.items() if k != ALL and not k.endswith(" EAGAIN"))
        counts[OTHER_CALLS] = counts.pop(ALL) - named
    samples = classify(args.perf_data)
    total = sum(samples.values())
    cpu_s = (args.plain_ticks[1] - args.plain_ticks[0]) / CLK_TCK
    cpu_us = cpu_s / args.plain_requests * 1e6 if args.plain_requests else None
    perf_s = (args.perf_ticks[1] - args.perf_ticks[0]) / CLK_TCK
    rec = {
        "server": args.server, "mode": args.mode, "round": args.round,
        "stat_requests": args.stat_requests, "perf_requests": args.perf_requests,
        "plain_requests": args.plain_requests,
        "rps": args.plain_requests / args.plain_wall if args.plain_wall else None,
        "calls_per_req": {k: v / args.stat_requests for k, v in counts.items() if v > 0} if args.stat_requests else {},
        "samples": samples,
        "cpu_us_per_req": cpu_us,
        "perf_cpu_us_per_req": perf_s / args.perf_requests * 1e6 if args.perf_requests else None,
        "cpu_util": cpu_s / args.plain_wall if args.plain_wall else None,
        "us_per_req": {k: v / total * cpu_us for k, v in samples.items()} if total and cpu_us else {},
    }
    with open(args.file, "a") as f:
        f.write(json.dumps(rec) + "\n")
    top = sorted(rec["calls_per_req"].items(), key=lambda kv: -kv[1])[:8]
    user = rec["us_per_req"].get(USER, 0.0)
    print(f"  {args.mode} round {args.round} {args.server:6}: {args.stat_requests} + {args.perf_requests} + "
          f"{args.plain_requests} requests, "
          f"CPU {cpu_us or 0:.2f} us/req (user {user:.2f}); calls/req "
          + ", ".join(f"{k} {v:.2f}" for k, v in top), file=sys.stderr)


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, digits=2):
    return "" if v is None or (isinstance(v, float) and v != v) else f"{v:.{digits}f}"


MODE_TITLES = {
    "keepalive": "Redirect, keep-alive",
    "close": "Redirect, `Connection: close` (one request per connection)",
    "proxy-1k": "Proxy, keep-alive, 1 KiB body (`/vod/1k.bin`)",
}


def report(args):
    recs = [json.loads(line) for line in open(args.file) if line.strip()]
    modes = []
    for r in recs:
        if r["mode"] not in modes:
            modes.append(r["mode"])
    servers = ("router", "nginx")
    out = []
    for mode in modes:
        by = {s: [r for r in recs if r["mode"] == mode and r["server"] == s] for s in servers}
        n_rounds = {s: len(v) for s, v in by.items()}
        out.append(f"### {MODE_TITLES.get(mode, mode)}\n")
        out.append("Medians of " + ", ".join(f"{n_rounds[s]} rounds ({s})" for s in servers) +
                   ". Calls per request: `perf stat` of the `sys_enter_*` tracepoints (EAGAIN: `sys_exit_*` "
                   "with ret -11; other: `raw_syscalls:sys_enter` minus the named ones) in run 1; µs per request: "
                   "the bucket's share of the `cpu-clock` samples of run 2 × the CPU per request of run 3.\n")
        out.append("| | router calls/req | router µs/req | nginx calls/req | nginx µs/req |")
        out.append("|---|---:|---:|---:|---:|")

        def cell(server, field, key):
            return med([r[field].get(key, 0.0) for r in by[server]]) if by[server] else None

        names = set()
        for s in servers:
            for r in by[s]:
                names |= {k for k in r["calls_per_req"] if not k.endswith(" EAGAIN")}
                names |= {k for k in r["us_per_req"] if k != USER and k not in KERNEL_OTHER_BUCKETS}
        rows = []
        for name in names:
            calls = [cell(s, "calls_per_req", name) for s in servers]
            us = [cell(s, "us_per_req", name) for s in servers]
            rows.append((name, calls, us))
        rows.sort(key=lambda r: -max(x or 0.0 for x in r[2] + r[1]))
        for name, calls, us in rows:
            if max(x or 0.0 for x in calls + us) < 0.005:
                continue
            label = "other calls (not counted by name)" if name == OTHER_CALLS else f"`{name}`"
            out.append(f"| {label} | {fmt(calls[0])} | {fmt(us[0])} | {fmt(calls[1])} | {fmt(us[1])} |")
            eagain = [cell(s, "calls_per_req", name + " EAGAIN") for s in servers]
            if any(eagain):
                out.append(f"| ↳ `{name}` → EAGAIN | {fmt(eagain[0])} | | {fmt(eagain[1])} | |")
        sums = [med([sum(v for k, v in r["calls_per_req"].items() if not k.endswith(" EAGAIN")) for r in by[s]])
                for s in servers]
        sys_us = [med([sum(v for k, v in r["us_per_req"].items() if k != USER and k not in KERNEL_OTHER_BUCKETS)
                       for r in by[s]]) for s in servers]
        out.append(f"| **all system calls** | **{fmt(sums[0])}** | **{fmt(sys_us[0])}** | "
                   f"**{fmt(sums[1])}** | **{fmt(sys_us[1])}** |")
        for b in KERNEL_OTHER_BUCKETS:
            us = [cell(s, "us_per_req", b) for s in servers]
            if max(x or 0.0 for x in us) >= 0.005:
                out.append(f"| {b} (outside handlers) | | {fmt(us[0])} | | {fmt(us[1])} |")
        us = [cell(s, "us_per_req", USER) for s in servers]
        out.append(f"| user space | | {fmt(us[0])} | | {fmt(us[1])} |")
        tot = [med([r["cpu_us_per_req"] for r in by[s]]) for s in servers]
        out.append(f"| **total CPU** | | **{fmt(tot[0])}** | | **{fmt(tot[1])}** |")
        kern = [med([1 - r["samples"].get(USER, 0) / max(sum(r["samples"].values()), 1) for r in by[s]])
                for s in servers]
        util = [med([r["cpu_util"] for r in by[s]]) for s in servers]
        rps = [med([r.get("rps") for r in by[s]]) for s in servers]
        pcpu = [med([r.get("perf_cpu_us_per_req") for r in by[s]]) for s in servers]
        out.append("")
        out.append(f"Kernel share of the samples: router {fmt((kern[0] or 0) * 100, 0)}%, nginx "
                   f"{fmt((kern[1] or 0) * 100, 0)}%. Runs with nothing attached: router {fmt(rps[0], 0)} req/s, "
                   f"{fmt((util[0] or 0) * 100, 0)}% of its core; nginx {fmt(rps[1], 0)} req/s, "
                   f"{fmt((util[1] or 0) * 100, 0)}%. CPU µs/req under perf record: router {fmt(pcpu[0])}, "
                   f"nginx {fmt(pcpu[1])}.\n")
    print("\n".join(out))


USER_GROUPS = (  # (group, pattern on "dso symbol"), first match wins
    ("allocator (malloc, free)", r"libc\S* (_int_malloc|_int_free|malloc|cfree|free|realloc|_int_realloc|"
                                 r"malloc_consolidate|unlink_chunk|tcache)"),
    ("memcpy / memmove", r"(memmove|memcpy|memset)"),
    ("clock reads (vdso)", r"vdso"),
    ("other libc", r"^libc"),
    ("tokio", r" <?tokio::"),
    ("pingora", r" <?(pingora|<pingora)"),
    ("http / bytes / httparse", r" <?(http::|bytes::|httparse::|<http::|<bytes::)"),
    ("router (cti_kaltura)", r" <?cti_kaltura"),
)


def user_groups(args):
    """Self time of the user-space samples, by group (allocator, memcpy, tokio, pingora, ...)."""
    out = subprocess.run(["perf", "report", "-i", args.data, "--no-children", "--sort", "dso,symbol",
                          "--stdio", "-g", "none", "--percent-limit", "0"],
                         capture_output=True, text=True, errors="replace", check=False).stdout
    groups, syms, user_total = Counter(), [], 0.0
    for line in out.splitlines():
        m = re.match(r"^\s+([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*?)\s*$", line)
        if not m or m.group(3) == "k":
            continue
        pct, dso, sym = float(m.group(1)), m.group(2), re.split(r"\s{2,}", m.group(4))[0]
        user_total += pct
        key = f"{dso} {sym}"
        group = next((g for g, pat in USER_GROUPS if re.search(pat, key)), "other")
        groups[group] += pct
        syms.append((pct, dso, sym))
    print(f"user space: {user_total:.1f}% of the samples\n")
    print("| group | % of all samples | % of user space |\n|---|---:|---:|")
    for g, pct in groups.most_common():
        print(f"| {g} | {pct:.1f} | {pct / user_total * 100 if user_total else 0:.0f} |")
    print(f"\n| self % | where | symbol |\n|---|---|---|")
    for pct, dso, sym in sorted(syms, reverse=True)[:args.n]:
        print(f"| {pct:.2f} | {dso} | `{sym[:110]}` |")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record")
    r.add_argument("file")
    for k in ("--server", "--mode", "--stat-csv", "--perf-data"):
        r.add_argument(k, required=True)
    for k in ("--round", "--stat-requests", "--perf-requests", "--plain-requests"):
        r.add_argument(k, type=int, required=True)
    for k in ("--perf-ticks", "--plain-ticks"):
        r.add_argument(k, type=int, nargs=2, required=True, metavar=("BEFORE", "AFTER"))
    r.add_argument("--plain-wall", type=float, required=True)
    p = sub.add_parser("report")
    p.add_argument("file")
    c = sub.add_parser("classify")
    c.add_argument("data")
    u = sub.add_parser("user")
    u.add_argument("data")
    u.add_argument("n", type=int, nargs="?", default=20)
    args = ap.parse_args(argv)
    if args.cmd == "user":
        user_groups(args)
    elif args.cmd == "classify":
        print(json.dumps(classify(args.data), indent=1, sort_keys=True))
    else:
        {"record": record, "report": report}[args.cmd](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
