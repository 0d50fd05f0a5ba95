#!/usr/bin/env python3
"""Records benchmark rounds and summarises them (used by bench.sh).

    bench_report.py record ROUNDS.jsonl --section S --mode M --server NAME --round N \
        --wrk-log FILE --ticks-before T --ticks-after T [--edge-ticks-before T --edge-ticks-after T] \
        --stat-before FILE --stat-after FILE --wall SECONDS --server-cpu C --client-cpu C
    bench_report.py report ROUNDS.jsonl            # markdown tables on stdout
    bench_report.py perf PERF.data [N]             # top N symbols by self time (all, user space)
    bench_report.py callgrind FILE REQUESTS [N] [--callers FN]  # instructions per request, top N

A round's figures: req/s = wrk requests / wrk duration; p50/p99 from wrk's latency histogram;
server CPU per request = (utime + stime of the server's processes after - before) / requests;
core busy % from /proc/stat (all processes on that core, other people's jobs included).
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from collections import Counter
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
from ctk import procfs  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def core_busy(before_file, after_file):
    """Busy fraction of each cpuN between two saved /proc/stat snapshots."""
    with open(before_file) as a, open(after_file) as b:
        return procfs.core_busy(a.read(), b.read())


def record(args):
    text = open(args.wrk_log, errors="replace").read()
    m = re.search(r"^BENCH_RESULT (.*)$", text, re.M)
    rec = {"section": args.section, "mode": args.mode, "server": args.server, "round": args.round}
    if not m:
        rec["error"] = "no BENCH_RESULT line (wrk failed?)"
    else:
        kv = dict(item.split("=") for item in m.group(1).split())
        requests = int(kv["requests"])
        duration = int(kv["duration_us"]) / 1e6
        cpu_s = (args.ticks_after - args.ticks_before) / CLK_TCK
        busy = core_busy(args.stat_before, args.stat_after)
        rec.update({
            "requests": requests,
            "duration_s": duration,
            "rps": requests / duration if duration else 0.0,
            "mbytes_per_s": int(kv["bytes"]) / duration / 1e6 if duration else 0.0,
            "p50_ms": int(kv["p50_us"]) / 1000,
            "p90_ms": int(kv["p90_us"]) / 1000,
            "p99_ms": int(kv["p99_us"]) / 1000,
            "errors": {k[4:]: int(v) for k, v in kv.items() if k.startswith("err_") and int(v)},
            "server_cpu_s": cpu_s,
            "server_cpu_us_per_req": cpu_s / requests * 1e6 if requests else None,
            "server_cpu_util": cpu_s / args.wall if args.wall else None,
            "server_core_busy": busy.get(f"cpu{args.server_cpu}"),
            "client_core_busy": busy.get(f"cpu{args.client_cpu}"),
            "load1": procfs.loadavg(),
        })
        if args.edge_ticks_after is not None:
            edge_s = (args.edge_ticks_after - args.edge_ticks_before) / CLK_TCK
            rec["edge_cpu_us_per_req"] = edge_s / requests * 1e6 if requests else None
    with open(args.file, "a") as f:
        f.write(json.dumps(rec) + "\n")
    if "error" in rec:
        print(f"  {args.section}/{args.mode} round {args.round} {args.server}: {rec['error']}", file=sys.stderr)
    else:
        errs = f", errors {rec['errors']}" if rec["errors"] else ""
        print(f"  {args.section}/{args.mode} round {args.round} {args.server:6}: {rec['rps']:>9.0f} req/s, "
              f"p50 {rec['p50_ms']:.2f} ms, p99 {rec['p99_ms']:.2f} ms, "
              f"CPU {rec['server_cpu_us_per_req']:.2f} us/req (server {rec['server_cpu_util'] * 100:.0f}%, "
              f"core{args.server_cpu} {rec['server_core_busy'] * 100:.0f}%, "
              f"core{args.client_cpu} {rec['client_core_busy'] * 100:.0f}% busy), load {rec['load1']}{errs}",
              file=sys.stderr)


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def report(args):
    recs = [json.loads(line) for line in open(args.file) if line.strip()]
    recs = [r for r in recs if "error" not in r]
    groups = {}
    for r in recs:
        groups.setdefault((r["section"], r["mode"]), {}).setdefault(r["server"], []).append(r)
    out = []
    for (section, mode), servers in groups.items():
        title = {"redirect": "Redirects", "proxy": "Proxied responses"}.get(section, section)
        out.append(f"### {title}: {mode}\n")
        out.append("| server | rounds | req/s (median) | req/s min-max | p50 ms | p99 ms | server CPU us/req | "
                   "server CPU % | server core busy % | client core busy % |")
        out.append("|---|---|---|---|---|---|---|---|---|---|")
        meds = {}
        for name in ("nginx", "router"):
            rs = servers.get(name, [])
            if not rs:
                continue
            m = {k: med([r[k] for r in rs]) for k in ("rps", "p50_ms", "p99_ms", "server_cpu_us_per_req",
                                                      "server_cpu_util", "server_core_busy", "client_core_busy")}
            meds[name] = m
            lo, hi = min(r["rps"] for r in rs), max(r["rps"] for r in rs)
            out.append(f"| {name} | {len(rs)} | {m['rps']:,.0f} | {lo:,.0f}-{hi:,.0f} | {m['p50_ms']:.2f} | "
                       f"{m['p99_ms']:.2f} | {m['server_cpu_us_per_req']:.2f} | {m['server_cpu_util'] * 100:.0f} | "
                       f"{m['server_core_busy'] * 100:.0f} | {m['client_core_busy'] * 100:.0f} |")
        if "nginx" in meds and "router" in meds:
            n, r = meds["nginx"], meds["router"]
            # Per-round ratios (router round k / nginx round k): their spread shows the noise.
            pairs = {}
            for rec in servers["nginx"] + servers["router"]:
                pairs.setdefault(rec["round"], {})[rec["server"]] = rec
            rps_ratios = sorted(p["router"]["rps"] / p["nginx"]["rps"] for p in pairs.values() if len(p) == 2)
            cpu_ratios = sorted(p["router"]["server_cpu_us_per_req"] / p["nginx"]["server_cpu_us_per_req"]
                                for p in pairs.values() if len(p) == 2)
            out.append("")
            out.append(f"router/nginx: **req/s {r['rps'] / n['rps']:.2f}x**, "
                       f"**CPU per request {r['server_cpu_us_per_req'] / n['server_cpu_us_per_req']:.2f}x**, "
                       f"p99 {r['p99_ms'] / n['p99_ms']:.2f}x (ratios of medians); per-round ratios: "
                       f"req/s {', '.join(f'{x:.2f}' for x in rps_ratios)}; "
                       f"CPU/req {', '.join(f'{x:.2f}' for x in cpu_ratios)}.")
        errs = [(r["server"], r["round"], r["errors"]) for rs in servers.values() for r in rs if r["errors"]]
        if errs:
            out.append("")
            out.append("wrk errors: " + "; ".join(f"{s} round {k}: {e}" for s, k, e in errs))
        out.append("")
    print("\n".join(out))


def perf_top(args):
    """Top symbols by self time from `perf report` (overall, then user space only)."""
    out = subprocess.run(["perf", "report", "-i", args.data, "--no-children", "--sort", "dso,symbol",
                          "--stdio", "-g", "none", "--percent-limit", "0.05"],
                         capture_output=True, text=True, check=False).stdout
    rows = []
    for line in out.splitlines():
        m = re.match(r"^\s+([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*?)\s*(?:-\s+-\s*)?$", line)
        if m:
            rows.append((float(m.group(1)), m.group(2), m.group(3), m.group(4).strip()))
    rows.sort(key=lambda r: -r[0])
    kernel = sum(r[0] for r in rows if r[2] == "k")
    print(f"samples in the kernel: {kernel:.1f}%, in user space: {sum(r[0] for r in rows if r[2] != 'k'):.1f}% "
          "(symbols above 0.05%)")
    print(f"\nTop {args.n} by self time:")
    print("| self % | where | symbol |\n|---|---|---|")
    for pct, dso, kind, sym in rows[:args.n]:
        print(f"| {pct:.2f} | {dso} | `{sym[:110]}` |")
    print(f"\nTop {args.n} in user space:")
    print("| self % | where | symbol |\n|---|---|---|")
    for pct, dso, kind, sym in [r for r in rows if r[2] != "k"][:args.n]:
        print(f"| {pct:.2f} | {dso} | `{sym[:110]}` |")


def callgrind(args):
    """Self instruction counts per function from a callgrind dump, per request."""
    names, cost, callers, ncalls = {}, Counter(), Counter(), Counter()
    cur = pending = None
    call_line = False
    for line in open(args.file, errors="replace"):
        line = line.rstrip("\n")
        m = re.match(r"^(c?)fn=\((\d+)\)(?: (.*))?$", line)
        if m:  # fn= starts a function's costs, cfn= names the callee of the next calls= line
            if m.group(3):
                names[m.group(2)] = m.group(3)
            if m.group(1):
                pending = m.group(2)
            else:
                cur = m.group(2)
            continue
        m = re.match(r"^calls=(\d+)", line)
        if m:
            call_line, n_calls = True, int(m.group(1))
            continue
        if cur and re.match(r"^([+-]?\d+|\*)\s", line):
            ir = int(line.split()[1])
            if call_line:  # inclusive cost of a call: not this function's own
                call_line = False
                if args.callers and args.callers in names.get(pending, ""):
                    callers[cur] += ir
                    ncalls[cur] += n_calls
                continue
            cost[cur] += ir
    total = sum(cost.values())
    req = args.requests
    print(f"{total:,} instructions (Ir) for {req:,} requests: **{total / req:,.0f} instructions per request** "
          "(user space: the program and its libraries, not the kernel)")
    print(f"\n| Ir/request | share | function |\n|---|---|---|")
    for k, v in cost.most_common(args.n):
        print(f"| {v / req:,.0f} | {v / total * 100:.1f}% | `{names.get(k, k)[:110]}` |")
    if args.callers:
        print(f"\nCallers of {args.callers} (inclusive Ir per request, calls per request):")
        print("| Ir/request | calls/request | Ir/call | caller |\n|---|---|---|---|")
        for k, v in callers.most_common(8):
            print(f"| {v / req:,.0f} | {ncalls[k] / req:.2f} | {v / max(ncalls[k], 1):,.0f} | `{names.get(k, k)[:100]}` |")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record")
    r.add_argument("file")
    for k in ("--section", "--mode", "--server", "--wrk-log", "--stat-before", "--stat-after"):
        r.add_argument(k, required=True)
    r.add_argument("--round", type=int, required=True)
    r.add_argument("--ticks-before", type=int, required=True)
    r.add_argument("--ticks-after", type=int, required=True)
    r.add_argument("--edge-ticks-before", type=int)
    r.add_argument("--edge-ticks-after", type=int)
    r.add_argument("--wall", type=float, required=True)
    r.add_argument("--server-cpu", type=int, required=True)
    r.add_argument("--client-cpu", type=int, required=True)
    p = sub.add_parser("report")
    p.add_argument("file")
    f = sub.add_parser("perf")
    f.add_argument("data")
    f.add_argument("n", type=int, nargs="?", default=15)
    c = sub.add_parser("callgrind")
    c.add_argument("file")
    c.add_argument("requests", type=int)
    c.add_argument("n", type=int, nargs="?", default=15)
    c.add_argument("--callers", default=None, help="also list the callers of functions whose name contains this")
    args = ap.parse_args(argv)
    {"record": record, "report": report, "perf": perf_top, "callgrind": callgrind}[args.cmd](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
