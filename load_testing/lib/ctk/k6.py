"""k6 --summary-export files: the figures the scripts report.

    summary(path)  -> dict of requests, rate, checks, failed requests, dropped iterations,
                      latency (ms), crossed thresholds and failed checks by name; a figure
                      the file lacks is None. Raises OSError / ValueError / KeyError.
    line(path)     -> one line for run.sh, soak.sh and ci-smoke.sh (lib/router.sh
                      lt_summary_line), or "no summary (Error)"
    figures(path)  -> "p50 p99 rate checks_ok checks_all failed" for chaos/hostile.sh
"""

import json


def _failed_checks(group, out):
    for name, c in (group.get("checks") or {}).items():
        out[name] = (c.get("passes", 0), c.get("fails", 0))
    for g in (group.get("groups") or {}).values():
        _failed_checks(g, out)
    return out


def summary(path):
    with open(path) as f:
        doc = json.load(f)
    m = doc["metrics"]
    reqs, dur = m.get("http_reqs", {}), m.get("http_req_duration", {})
    checks, failed = m.get("checks", {}), m.get("http_req_failed", {})
    per_check = _failed_checks(doc.get("root_group", {}), {})
    return {
        "requests": reqs.get("count"), "rate": reqs.get("rate"),
        "checks_passed": checks.get("passes"), "checks_failed": checks.get("fails"),
        "http_req_failed": failed.get("passes"),
        "dropped_iterations": m.get("dropped_iterations", {}).get("count", 0),
        "p50_ms": dur.get("med"), "p95_ms": dur.get("p(95)"), "p99_ms": dur.get("p(99)"), "max_ms": dur.get("max"),
        # In this export a threshold's value is true when it was crossed.
        "crossed": sorted(f"{name} {expr}" for name, metric in m.items()
                          for expr, hit in metric.get("thresholds", {}).items() if hit),
        "failed_checks": {n: v for n, v in per_check.items() if v[1]},
    }


def _or(value, default):
    return default if value is None else value


def line(path):
    try:
        s = summary(path)
    except (OSError, ValueError, KeyError) as e:
        return f"no summary ({e.__class__.__name__})"
    passes, fails = _or(s["checks_passed"], 0), _or(s["checks_failed"], 0)
    nan = float("nan")
    return (f"{_or(s['requests'], 0)} reqs, {_or(s['rate'], 0):.1f} req/s, "
            f"p95 {_or(s['p95_ms'], nan):.2f} ms, p99 {_or(s['p99_ms'], nan):.2f} ms, "
            f"checks {passes}/{passes + fails}, failed reqs {_or(s['http_req_failed'], 0)}"
            + (f"; crossed: {', '.join(s['crossed'])}" if s["crossed"] else ""))


def figures(path):
    s = summary(path)
    return (f"{s['p50_ms']:.3f} {s['p99_ms']:.3f} {s['rate']:.1f} {s['checks_passed']} "
            f"{s['checks_passed'] + s['checks_failed']} {s['http_req_failed']}")
