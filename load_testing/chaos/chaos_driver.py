#!/usr/bin/env python3
"""Chaos soak driver (Python 3 standard library only); run it through chaos.sh. The fake servers,
the router processes, the raw-socket client and the Prometheus parser are load_testing/lib/ctk's.

It owns everything of one run, all on 127.0.0.0/8:

* a fake admin API (http.server on 127.0.0.1:ADMIN_PORT) serving the demo snapshot as JSON
  with ETag / If-None-Match (304), which it makes flap: down (connection refused), garbage
  bodies (truncated JSON, binary, JSON of the wrong shape), bodies over max_body_bytes (with a
  Content-Length, and streamed without one), HTTP 500, a slow answer past the router's
  timeout, valid variants (one edge's availability toggled), and `{}` (the blast-radius guard
  must refuse it);
* nine fake edges (http.server on 127.0.0.11..19:EDGE_PORT; the snapshot's EDGE servers point
  there) answering the health check `OK`, or 503 / closed port / wrong body / too slow as the
  driver flips a couple of them every EDGE_EVERY seconds, and once all of them (panic drill);
* the router (started here, with the admin API source, health checks every 500 ms, fall 2,
  rise 2, panic mode on), reloaded with SIGHUP every HUP_EVERY seconds (keepalive 60 / 75 /
  access log on), pushed with POST /admin/refresh now and then, and upgraded once or twice
  (`cti-kaltura -u -c same.yaml`, then SIGQUIT to the old PID);
* k6 (chaos.js) at a steady rate for the whole run;
* samplers: VmRSS of every router process every 5 s, /metrics, /debug/edges and
  /debug/snapshot every second, a routing check every 2 s (no Location to an edge that the
  router itself sees down, outside panic mode, or that the snapshot in service marks
  unavailable), and two probe clients without automatic retry (one keep-alive, one new
  connection per request) that record exactly what the upgrade does to a connection.

Writes <out>-summary.json / <out>-summary.txt and exits 0 when every pass criterion held,
1 when one did not, 2 when the run could not be made.
"""

import argparse
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
from ctk import k6 as k6_summary, procfs, prom  # noqa: E402
from ctk.config import write_atomic  # noqa: E402
from ctk.fake import FakeAdmin, FakeEdge  # noqa: E402
from ctk.rawhttp import read_response, request, url_get as http_get  # noqa: E402
from ctk.router import Router  # noqa: E402
from ctk.snapshot import load_snapshot  # noqa: E402

STOP = threading.Event()
SIGNALLED = threading.Event()
T0 = time.monotonic()
LOG_LOCK = threading.Lock()
EVENTS = []  # (t, kind, detail)


def now():
    return time.monotonic() - T0


def event(kind, detail=""):
    t = now()
    with LOG_LOCK:
        EVENTS.append((round(t, 3), kind, detail))
        print(f"[chaos {t:7.2f}s] {kind}: {detail}", file=sys.stderr, flush=True)


def sleep_until(t):
    """Sleeps until driver time t (or STOP); returns False when stopped."""
    while not STOP.is_set():
        left = t - now()
        if left <= 0:
            return True
        STOP.wait(min(left, 0.5))
    return False


# --- snapshot variants ----------------------------------------------------------------------


class Variants:
    """The admin API's documents: the demo snapshot with its EDGE servers moved to the fake
    edges (valid-A), one variant per edge with it unavailable (valid-B-e<id>), garbage, `{}`."""

    def __init__(self, repo, edge_port):
        doc = load_snapshot(Path(repo) / "conf" / "routing.yaml")
        self.edge_ids = sorted(s["id"] for s in doc["servers"] if s["type"] == "EDGE")
        self.host_of = {}
        for i, sid in enumerate(self.edge_ids):
            ip = f"127.0.0.{11 + i}"
            self.host_of[sid] = f"{ip}:{edge_port}"
            for s in doc["servers"]:
                if s["id"] == sid:
                    s.update({"domain_name": ip, "ip": ip, "port": edge_port, "healthcheck_enabled": True,
                              "healthcheck_path": "/healthcheck", "availability": True, "status": "ACTIVE"})
        self.doc = doc
        self.bodies = {}
        self.unavailable = {}  # version -> edge id marked unavailable
        a = dict(doc, version="chaos-A")
        self.bodies["valid-A"] = json.dumps(a).encode()
        for sid in self.edge_ids:
            b = json.loads(json.dumps(doc))
            b["version"] = f"chaos-B-e{sid}"
            for s in b["servers"]:
                if s["id"] == sid:
                    s["availability"] = False
            self.bodies[f"valid-B-e{sid}"] = json.dumps(b).encode()
            self.unavailable[b["version"]] = sid
        full = self.bodies["valid-A"]
        self.bodies["garbage-truncated"] = full[: len(full) * 6 // 10]
        rng = random.Random(8)
        self.bodies["garbage-binary"] = bytes(rng.getrandbits(8) for _ in range(65536))
        self.bodies["garbage-shape"] = b'{"version": "chaos-shape", "regions": 5, "servers": {"a": 1}}'
        self.bodies["empty"] = b"{}"


# --- the run ----------------------------------------------------------------------------------


class Run:
    def __init__(self, a):
        self.a = a
        self.work = Path(a.work)
        self.out = a.out
        self.variants = Variants(a.repo, a.edge_port)
        # The router's timeout_secs is 2: a slow answer takes 3.5 s; health timeout_ms is 400:
        # a slow edge answers after 1 s.
        self.admin = FakeAdmin("127.0.0.1", a.admin_port, self.variants.bodies, "valid-A",
                               huge_bytes=2 * a.max_body, slow_body="valid-A", slow_secs=3.5)
        self.edges = {
            sid: FakeEdge(f"127.0.0.{11 + i}", a.edge_port, slow_secs=1.0) for i, sid in enumerate(self.variants.edge_ids)
        }
        # live / catch-up Locations carry host:port; VOD / static ones the host alone
        # (always http://, no port: docs/admin-api.md "Redirect URLs").
        self.host_to_sid = {v: k for k, v in self.variants.host_of.items()}
        self.host_to_sid.update({v.rsplit(":", 1)[0]: k for k, v in self.variants.host_of.items()})
        self.routers = []  # dicts: pid, popen, log, started, quit_at, exited_at
        self.current = None
        self.k6 = None
        self.lock = threading.Lock()
        self.rss = []  # (t, pid, kB, fds)
        self.versions = []  # (t, version)
        self.edge_view = {}  # sid -> list of (t, up) transitions seen in /debug/edges
        self.panic_max = 0
        self.panic_seen = []
        self.last_refused = set()
        self.snapshot_problems = []
        self.route_checks = {"samples": 0, "requests": 0, "skipped_unstable": 0, "skipped_panic": 0,
                             "to_down_edge": [], "to_unavailable_edge": [], "errors": 0}
        self.probe = {}
        self.upgrades = []
        self.upgrade_threads = []
        self.bursts = []
        self.quits = []  # SIGQUIT times
        self.hups = []
        self.pushes = []
        self.flips = []  # (t, sid, mode)
        self.admin_modes = []  # (t, mode)
        self.metrics_last = {}  # pid -> last samples
        self.mgmt_addr = f"127.0.0.1:{a.mgmt_port}"
        self.mgmt = f"http://{self.mgmt_addr}"

    # -- config --

    def write_config(self, variant):
        a = self.a
        keepalive = {"keepalive-60": 60, "keepalive-75": 75, "access-log-on": 60}[variant]
        access = variant == "access-log-on"
        text = f"""# chaos soak config ({variant}); written by chaos_driver.py
version: 1
threads: 2
work_stealing: false
pid_file: {self.work}/cti-kaltura.pid
upgrade_sock: {self.work}/upgrade.sock
grace_period_seconds: 3
graceful_shutdown_timeout_seconds: 2
router:
  listen:
    - "127.0.0.1:{a.port}"
  management_listen: "127.0.0.1:{a.mgmt_port}"
  routing:
    admin_api:
      url: "http://127.0.0.1:{a.admin_port}/api/routing/snapshot"
      poll_interval_secs: 1
      timeout_secs: 2
      max_body_bytes: {a.max_body}
      max_backoff_secs: 2
    state_dir: {self.work}/state
    guard:
      enabled: true
      max_removed_fraction: 0.5
  health:
    enabled: true
    interval_ms: 500
    timeout_ms: 400
    fall: 2
    rise: 2
    panic_mode: true
  http:
    keepalive_timeout_secs: {keepalive}
  access_log:
    enabled: {"true" if access else "false"}
    format: text
"""
        path = self.work / "chaos.yaml"
        write_atomic(path, text)
        return path

    # -- processes --

    def record_pids(self):
        pids = [r["pid"] for r in self.routers] + ([self.k6.pid] if self.k6 else [])
        (self.work / "pids").write_text("\n".join(map(str, pids)) + "\n")

    def start_router(self, upgrade=False):
        n = len(self.routers) + 1
        log = Path(f"{self.out}-router-{n}.log")
        proc = Router(self.a.bin, self.work / "chaos.yaml", log, cwd=self.work, upgrade=upgrade,
                      name=f"router #{n}").start()
        r = {"n": n, "pid": proc.pid, "proc": proc, "log": log, "started": now(), "quit_at": None, "exited_at": None}
        with self.lock:
            self.routers.append(r)
        self.record_pids()
        event("router started", f"#{n} pid {proc.pid}{' (-u)' if upgrade else ''}, log {log.name}")
        return r

    def wait_ready(self, r, timeout=30):
        if not r["proc"].wait_ready(self.mgmt_addr, timeout, stop=STOP):
            raise RuntimeError(f"router #{r['n']}: stopped while waiting for /readyz")
        return True

    def stop_router(self, r, timeout=10):
        r["proc"].stop(timeout)
        if r["exited_at"] is None:
            r["exited_at"] = now()

    def upgrade(self, label):
        old = self.current
        sock = self.work / "upgrade.sock"
        if sock.exists():
            sock.unlink()
        t_start = now()
        new = self.start_router(upgrade=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if not new["proc"].alive:
                raise RuntimeError(f"upgraded router exited with {new['proc'].returncode}; see {new['log']}")
            if sock.exists() and "Bootstrap starting" in new["log"].read_text(errors="replace"):
                break
            time.sleep(0.05)
        else:
            raise RuntimeError("the upgraded router never waited on the upgrade socket")
        t_wait = now()
        down_before = self.edges_down_view() or frozenset()
        os.kill(old["pid"], signal.SIGQUIT)
        old["quit_at"] = now()
        self.quits.append(old["quit_at"])
        with self.lock:
            self.current = new
        event("upgrade", f"{label}: SIGQUIT to old pid {old['pid']}; new pid {new['pid']} was waiting after {t_wait - t_start:.2f} s")
        # The old process serves on for Pingora's close timeout, then exits: wait for it in a
        # thread, so that the schedule goes on meanwhile.
        th = threading.Thread(target=self.finish_upgrade, args=(label, old, new, t_wait - t_start), daemon=True)
        th.start()
        self.upgrade_threads.append(th)
        th = threading.Thread(target=self.upgrade_burst, args=(label, down_before), daemon=True)
        th.start()
        self.upgrade_threads.append(th)

    def upgrade_burst(self, label, down_before):
        """For 4 s after the SIGQUIT, static requests on new connections (either process may
        take them): how many go to an edge the old process had seen down, while that edge's
        health check still failed? The new process starts with every edge up."""
        modes_before = {sid: e.mode for sid, e in self.edges.items()}
        rng = random.Random(11)
        hits, total, errors, first_hit, last_hit = 0, 0, 0, None, None
        start = now()
        while now() - start < 4.0 and not STOP.is_set():
            try:
                with socket.create_connection(("127.0.0.1", self.a.port), timeout=2) as s:
                    s.sendall(request(f"/static/burst/{rng.randrange(10**6)}.png", close=True))
                    resp, _ = read_response(s)
                total += 1
                m = re.match(r"https?://([^/]+)", resp.header("location", ""))
                sid = self.host_to_sid.get(m.group(1)) if m else None
                if sid in down_before and modes_before.get(sid) != "ok" and self.edges[sid].mode != "ok":
                    hits += 1
                    first_hit = first_hit if first_hit is not None else round(now() - start, 3)
                    last_hit = round(now() - start, 3)
            except (OSError, ConnectionError, ValueError):
                errors += 1
            STOP.wait(0.01)
        b = {"label": label, "down_before": sorted(down_before), "requests": total, "errors": errors,
             "to_down_edge": hits, "first_s": first_hit, "last_s": last_hit}
        self.bursts.append(b)
        event("upgrade burst", json.dumps(b))

    def finish_upgrade(self, label, old, new, waited):
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and old["proc"].alive:
            time.sleep(0.02)
        exited = not old["proc"].alive
        if exited:
            old["exited_at"] = now()
        old_log = old["log"].read_text(errors="replace")
        new_log = new["log"].read_text(errors="replace")
        u = {
            "label": label,
            "old_pid": old["pid"],
            "new_pid": new["pid"],
            "new_waiting_after_s": round(waited, 3),
            "sigquit_at_s": round(old["quit_at"], 3),
            "old_exited_after_s": round(old["exited_at"] - old["quit_at"], 3) if exited else None,
            "old_exit_code": old["proc"].returncode,
            "old_sent_sockets": "listener sockets sent" in old_log,
            "new_bootstrap_done": "Bootstrap done" in new_log,
            "new_alive": new["proc"].alive,
        }
        self.upgrades.append(u)
        event("upgrade done", json.dumps(u))
        if not exited:
            event("upgrade problem", f"old pid {old['pid']} still runs 15 s after SIGQUIT")

    # -- chaos actions --

    def set_admin(self, mode):
        self.admin.set(mode)
        self.admin_modes.append((round(now(), 3), mode))
        event("admin", mode)

    def flip_edges(self, down, mode):
        for sid, edge in self.edges.items():
            want = mode if sid in down else "ok"
            if edge.mode != want:
                edge.set(want)
                self.flips.append((round(now(), 3), sid, want))
        event("edges", f"down: {sorted(down)} ({mode})" if down else "all up")

    def hup(self, variant):
        self.write_config(variant)
        r = self.current
        before = r["log"].read_text(errors="replace").count("configuration ")
        os.kill(r["pid"], signal.SIGHUP)
        self.hups.append({"t": round(now(), 3), "pid": r["pid"], "variant": variant, "log_mark": before})
        event("SIGHUP", f"pid {r['pid']}: {variant}")

    def push(self):
        status, body = http_get(self.mgmt + "/admin/refresh", timeout=8, method="POST")
        try:
            outcome = json.loads(body).get("outcome")
        except ValueError:
            outcome = body[:60].decode("latin-1", "replace")
        self.pushes.append({"t": round(now(), 3), "status": status, "outcome": outcome,
                            "admin_mode": self.admin.mode})
        event("POST /admin/refresh", f"{status} {outcome}")

    # -- samplers --

    def sampler_rss(self):
        while not STOP.is_set():
            with self.lock:
                routers = [r for r in self.routers if r["proc"].alive]
            for r in routers:
                try:
                    kb, fds = procfs.rss_kb(r["pid"]), procfs.fd_count(r["pid"])
                except OSError:
                    continue
                if kb is not None:
                    self.rss.append((round(now(), 1), r["pid"], kb, fds, r is self.current))
            STOP.wait(5)

    def sampler_state(self):
        last_version = None
        while not STOP.is_set():
            t = now()
            status, body = http_get(self.mgmt + "/debug/snapshot", timeout=2)
            if status == 200:
                try:
                    d = json.loads(body)
                    v = d.get("version")
                    if v != last_version:
                        self.versions.append((round(t, 3), v))
                        last_version = v
                    if (d.get("counts") or {}).get("servers", 0) == 0:
                        self.snapshot_problems.append((round(t, 3), f"empty snapshot in service: {v}"))
                    lr = d.get("last_refused")
                    if lr:
                        self.last_refused.add((lr.get("version"), "; ".join(lr.get("reasons", []))))
                except ValueError:
                    pass
            status, body = http_get(self.mgmt + "/debug/edges", timeout=2)
            if status == 200:
                try:
                    for e in json.loads(body).get("edges", []):
                        seq = self.edge_view.setdefault(e["id"], [])
                        up = e["health"]["up"]
                        if not seq or seq[-1][1] != up:
                            seq.append((round(t, 3), up))
                except (ValueError, KeyError):
                    pass
            status, body = http_get(self.mgmt + "/metrics", timeout=2)
            if status == 200:
                panic = prom.total(body.decode(), "cti_kaltura_panic_regions")
                if panic > self.panic_max:
                    self.panic_max = panic
                if panic and (not self.panic_seen or self.panic_seen[-1][1] != panic):
                    self.panic_seen.append((round(t, 3), panic))
                elif not panic and self.panic_seen and self.panic_seen[-1][1]:
                    self.panic_seen.append((round(t, 3), 0))
            STOP.wait(1.0)

    def edges_down_view(self):
        status, body = http_get(self.mgmt + "/debug/edges", timeout=2)
        if status != 200:
            return None
        return frozenset(e["id"] for e in json.loads(body)["edges"] if not e["health"]["up"])

    def view(self):
        """(version, down edge ids, panic regions) as the router reports them."""
        status, body = http_get(self.mgmt + "/debug/snapshot", timeout=2)
        version = json.loads(body).get("version") if status == 200 else None
        down = self.edges_down_view()
        status, body = http_get(self.mgmt + "/metrics", timeout=2)
        panic = prom.total(body.decode(), "cti_kaltura_panic_regions") if status == 200 else None
        return version, down, panic

    def sampler_routes(self):
        """Every 2 s: 30 static requests on one connection; no Location may name an edge the
        router sees down (outside panic) or one the snapshot in service marks unavailable."""
        rng = random.Random(5)
        while not STOP.is_set():
            STOP.wait(2.0)
            if STOP.is_set():
                break
            try:
                before = self.view()
                hosts = []
                with socket.create_connection(("127.0.0.1", self.a.port), timeout=3) as s:
                    buf = b""
                    for _ in range(30):
                        path = f"/static/chaos/{rng.randrange(10**6)}.png"
                        s.sendall(request(path))
                        resp, buf = read_response(s, buf)
                        loc = resp.header("location", "")
                        m = re.match(r"https?://([^/]+)", loc)
                        hosts.append(m.group(1) if m else None)
                after = self.view()
            except (OSError, ValueError, ConnectionError):
                self.route_checks["errors"] += 1
                continue
            rc = self.route_checks
            rc["samples"] += 1
            rc["requests"] += len(hosts)
            rc["unknown_hosts"] = rc.get("unknown_hosts", 0) + sum(1 for h in hosts if h not in self.host_to_sid)
            if before != after or before[1] is None:
                rc["skipped_unstable"] += 1
                continue
            version, down, panic = before
            unavailable = self.variants.unavailable.get(version)
            since_upgrade = min((now() - q for q in self.quits), default=1e9)
            for h in hosts:
                sid = self.host_to_sid.get(h)
                if sid is not None and sid == unavailable:
                    rc["to_unavailable_edge"].append((round(now(), 2), h, version))
                if sid is not None and sid in down:
                    if panic:
                        continue
                    rc["to_down_edge"].append((round(now(), 2), h, round(since_upgrade, 2)))
            if panic:
                rc["skipped_panic"] += 1

    def probe_client(self, name, keep_alive):
        """50 req/s of one live URL without automatic retry: every failed attempt is recorded
        with its time relative to the last SIGQUIT, then retried once on a new connection."""
        expected_suffix = "/live/epg_0/hls/index.m3u8"
        p = {"sent": 0, "ok": 0, "first_attempt_errors": [], "failed_after_retry": [], "wrong": [],
             "connections": 0}
        self.probe[name] = p
        sock, buf = None, b""
        req = request("/btv/live/hls/epg_0", "probe", close=not keep_alive)

        def attempt():
            nonlocal sock, buf
            reused = sock is not None
            if sock is None:
                sock = socket.create_connection(("127.0.0.1", self.a.port), timeout=3)
                buf = b""
                p["connections"] += 1
            try:
                sock.sendall(req)
                resp, buf = read_response(sock, buf)
            except Exception:
                sock.close()
                sock = None
                raise
            if not keep_alive or resp.header("connection", "").lower() == "close":
                sock.close()
                sock = None
            return resp.status, resp.headers, reused

        while not STOP.is_set():
            p["sent"] += 1
            try:
                result = attempt()
            except (OSError, ConnectionError) as e:
                since = round(now() - max(self.quits), 3) if self.quits else None
                p["first_attempt_errors"].append({"t": round(now(), 3), "error": f"{type(e).__name__}: {e}",
                                                  "since_sigquit_s": since})
                try:
                    result = attempt()
                except (OSError, ConnectionError) as e2:
                    p["failed_after_retry"].append({"t": round(now(), 3), "error": f"{type(e2).__name__}: {e2}"})
                    STOP.wait(0.02)
                    continue
            status, headers, _ = result
            loc = headers.get("location", "")
            m = re.match(r"https?://([^/]+)", loc)
            if status == 302 and loc.endswith(expected_suffix) and m and m.group(1) in self.host_to_sid:
                p["ok"] += 1
            else:
                p["wrong"].append({"t": round(now(), 3), "status": status, "location": loc})
            STOP.wait(0.02)
        if sock is not None:
            sock.close()

    # -- main --

    def schedule(self, duration):
        a = self.a
        ev = []
        start, end = 3.0, duration - 4.0
        admin_cycle = ["valid-B", "down", "garbage-truncated", "500", "huge-length", "empty", "valid-A",
                       "slow", "huge-stream", "garbage-binary", "valid-B", "garbage-shape", "empty", "valid-A",
                       "down", "valid-B", "500", "valid-A"]
        t, i, b = start, 0, 0
        while t < end:
            mode = admin_cycle[i % len(admin_cycle)]
            if mode == "valid-B":
                mode = f"valid-B-e{self.variants.edge_ids[b % len(self.variants.edge_ids)]}"
                b += 1
            ev.append((t, "admin", mode))
            t += a.admin_every
            i += 1
        ev.append((end, "admin", "valid-A"))
        t, k = start + 1.0, 0
        ids = self.variants.edge_ids
        down_modes = ["503", "closed", "badbody", "slow"]
        while t < end:
            down = {ids[(2 * k) % len(ids)], ids[(2 * k + 1) % len(ids)]}
            ev.append((t, "edges", (frozenset(down), down_modes[k % len(down_modes)])))
            t += a.edge_every
            k += 1
        ev.append((end, "edges", (frozenset(), "ok")))
        panic_at = duration * a.panic_at
        ev.append((panic_at, "panic", None))
        t, h = start + a.hup_every, 0
        hup_variants = ["keepalive-75", "access-log-on", "keepalive-60"]
        while t < end:
            ev.append((t, "hup", hup_variants[h % len(hup_variants)]))
            t += a.hup_every
            h += 1
        t = start + a.push_every
        while t < end:
            ev.append((t, "push", None))
            t += a.push_every
        for n, frac in enumerate(a.upgrade_at):
            ev.append((duration * frac, "upgrade", f"upgrade {n + 1}"))
        ev.sort(key=lambda e: (e[0], e[1] != "upgrade"))
        return ev

    def run(self):
        a = self.a
        self.work.mkdir(parents=True, exist_ok=True)
        (self.work / "state").mkdir(exist_ok=True)
        self.write_config("keepalive-60")
        self.admin.set("valid-A")
        for e in self.edges.values():
            e.set("ok")
        event("fake servers", f"admin 127.0.0.1:{a.admin_port}, edges {', '.join(self.variants.host_of[s] for s in self.variants.edge_ids)}")
        self.current = self.start_router()
        self.wait_ready(self.current)
        event("router ready", f"pid {self.current['pid']}")
        # The first fetch has been persisted: an upgraded process starts serving from it.
        threads = [threading.Thread(target=f, daemon=True, name=f.__name__) for f in
                   (self.sampler_rss, self.sampler_state, self.sampler_routes)]
        threads += [threading.Thread(target=self.probe_client, args=("keep-alive", True), daemon=True),
                    threading.Thread(target=self.probe_client, args=("new-connection", False), daemon=True)]
        for th in threads:
            th.start()
        env = dict(os.environ, HOST="127.0.0.1", PORT=str(a.port), RATE=str(a.rate),
                   DURATION=f"{a.duration}s", K6_NO_USAGE_REPORT="true",
                   EDGE_HOSTS=",".join(self.variants.host_of.values()))
        k6_out = open(f"{self.out}-k6.txt", "wb")
        self.k6 = subprocess.Popen([a.k6, "run", "--no-usage-report", "--summary-export", f"{self.out}-k6.json",
                                    a.k6_script], env=env, stdout=k6_out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
        self.record_pids()
        k6_started = now()
        event("k6 started", f"pid {self.k6.pid}, {a.rate} req/s for {a.duration} s")
        panic_restore = None
        for t, kind, arg in self.schedule(a.duration):
            if not sleep_until(k6_started + t):
                break
            if self.k6.poll() is not None:
                event("k6 ended early", f"exit {self.k6.returncode}")
                break
            try:
                if kind == "admin":
                    self.set_admin(arg)
                elif kind == "edges":
                    if panic_restore is None:
                        self.flip_edges(*arg)
                elif kind == "panic":
                    event("panic drill", "every edge answers 503 for 4 s")
                    self.flip_edges(frozenset(self.edges), "503")
                    panic_restore = now() + 4.0
                    sleep_until(panic_restore)
                    self.flip_edges(frozenset(), "ok")
                    panic_restore = None
                elif kind == "hup":
                    self.hup(arg)
                elif kind == "push":
                    threading.Thread(target=self.push, daemon=True).start()
                elif kind == "upgrade":
                    self.upgrade(arg)
            except Exception as e:  # noqa: BLE001 -- recorded and judged
                event("driver error", f"{kind}: {type(e).__name__}: {e}")
                self.driver_errors.append(f"{kind}: {type(e).__name__}: {e}")
        if SIGNALLED.is_set():
            self.k6.terminate()
        # k6 ends on its own at DURATION (plus its graceful stop); bounded wait.
        try:
            self.k6.wait(timeout=max(5, a.duration + 60 - (now() - k6_started)))
        except subprocess.TimeoutExpired:
            event("k6 overran", "terminating")
            self.k6.terminate()
            self.k6.wait(10)
        k6_out.close()
        event("k6 finished", f"exit {self.k6.returncode}")
        for th in self.upgrade_threads:
            th.join(20)
        time.sleep(1.5)
        self.final_metrics = http_get(self.mgmt + "/metrics", timeout=3)[1].decode("utf-8", "replace")
        self.final_edges = http_get(self.mgmt + "/debug/edges", timeout=3)[1].decode("utf-8", "replace")
        STOP.set()
        for th in threads:
            th.join(10)

    def cleanup(self):
        STOP.set()
        if self.k6 and self.k6.poll() is None:
            self.k6.terminate()
            try:
                self.k6.wait(10)
            except subprocess.TimeoutExpired:
                self.k6.kill()
        for r in self.routers:
            self.stop_router(r)
        for e in self.edges.values():
            e.stop()
        self.admin.stop()


# --- judging ----------------------------------------------------------------------------------


def linear_slope(points):
    if len(points) < 3:
        return None
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    den = sum((p[0] - mx) ** 2 for p in points)
    return sum((p[0] - mx) * (p[1] - my) for p in points) / den if den else None


def summarize(run, aborted):
    a = run.a
    lines = []
    ok = True

    def line(s=""):
        lines.append(s)

    def crit(name, passed, detail):
        nonlocal ok
        ok = ok and passed
        line(f"  {'PASS' if passed else 'FAIL'}  {name}: {detail}")

    s = {"aborted": aborted, "duration_s": a.duration, "rate": a.rate}
    # k6
    try:
        k = k6_summary.summary(f"{run.out}-k6.json")
        s["k6"] = {
            "exit": run.k6.returncode if run.k6 else None,
            "requests": k["requests"],
            "rate": round(k["rate"] or 0, 1),
            "checks_passed": k["checks_passed"],
            "checks_failed": k["checks_failed"],
            "http_req_failed": k["http_req_failed"],
            "dropped_iterations": k["dropped_iterations"],
            **{f: round(k[f] or 0, 3) for f in ("p50_ms", "p95_ms", "p99_ms", "max_ms")},
            "failed_checks": k["failed_checks"],
        }
    except (OSError, ValueError, KeyError) as e:
        s["k6"] = {"error": str(e), "exit": run.k6.returncode if run.k6 else None}
    kk = s["k6"]
    line(f"chaos soak: {a.duration} s at {a.rate} req/s{' (ABORTED)' if aborted else ''}")
    line(f"k6: {kk.get('requests')} requests ({kk.get('rate')} req/s), checks {kk.get('checks_passed')} passed / "
         f"{kk.get('checks_failed')} failed, http_req_failed {kk.get('http_req_failed')}, dropped iterations "
         f"{kk.get('dropped_iterations')}, latency p50 {kk.get('p50_ms')} ms, p95 {kk.get('p95_ms')} ms, "
         f"p99 {kk.get('p99_ms')} ms, max {kk.get('max_ms')} ms; exit {kk.get('exit')}")
    if kk.get("failed_checks"):
        line(f"  failed checks: {kk['failed_checks']}")
    # probes
    s["probes"] = run.probe
    for name, p in run.probe.items():
        line(f"probe {name}: {p['sent']} sent, {p['ok']} correct 302, {len(p['wrong'])} wrong answers, "
             f"{len(p['first_attempt_errors'])} first-attempt errors, {len(p['failed_after_retry'])} failed after one retry, "
             f"{p['connections']} connections")
        for e in p["first_attempt_errors"][:6]:
            line(f"    first attempt failed at {e['t']} s ({e['since_sigquit_s']} s after the last SIGQUIT): {e['error']}")
        for w in p["wrong"][:3]:
            line(f"    wrong answer at {w['t']} s: {w['status']} {w['location']}")
    # upgrades
    s["upgrades"] = run.upgrades
    for u in run.upgrades:
        line(f"upgrade '{u['label']}' at {u['sigquit_at_s']} s: old pid {u['old_pid']} -> new pid {u['new_pid']}; new waited "
             f"on the socket after {u['new_waiting_after_s']} s; old exited {u['old_exited_after_s']} s after SIGQUIT "
             f"(code {u['old_exit_code']}); sockets sent: {u['old_sent_sockets']}; new bootstrap done: {u['new_bootstrap_done']}")
    s["upgrade_bursts"] = run.bursts
    for b in run.bursts:
        line(f"  right after '{b['label']}' (4 s, new connections): {b['requests']} requests, {b['to_down_edge']} redirected to "
             f"an edge the old process saw down (edges down: {b['down_before']}; first {b['first_s']} s, last {b['last_s']} s "
             f"after SIGQUIT), {b['errors']} errors")
    # RSS
    s["rss"] = run.rss
    by_pid = {}
    for t, pid, kb, fds, holder in run.rss:
        by_pid.setdefault(pid, []).append((t, kb, fds, holder))
    holder = [(t, kb) for t, pid, kb, fds, h in run.rss if h]
    rss_ok = True
    rss_detail = []
    for pid, pts in by_pid.items():
        start = pts[0][0]
        warm = [(t, kb) for t, kb, _f, h in pts if t - start >= a.rss_warmup and h]
        kbs = [kb for _t, kb, _f, _h in pts]
        slope = linear_slope(warm)
        growth = (warm[-1][1] - warm[0][1]) if len(warm) >= 2 else None
        line(f"RSS pid {pid}: {len(pts)} samples, min {min(kbs)} kB, max {max(kbs)} kB, first {kbs[0]} kB, last {kbs[-1]} kB; "
             f"as listener holder after {a.rss_warmup} s warm-up: {len(warm)} samples, growth {growth} kB, "
             f"trend {round(slope * 60, 1) if slope is not None else None} kB/min")
        if growth is not None and len(warm) >= 4:
            rss_detail.append(f"pid {pid} +{growth} kB over {warm[-1][0] - warm[0][0]:.0f} s")
            if growth > a.rss_max_growth_kb:
                rss_ok = False
    if holder:
        line(f"RSS of the listener holder: min {min(kb for _t, kb in holder)} kB, max {max(kb for _t, kb in holder)} kB over {len(holder)} samples")
        line("  samples (s: kB): " + ", ".join(f"{t:.0f}: {kb}" for t, kb in holder))
    # admin
    s["admin_seen"] = run.admin.seen
    s["admin_modes"] = run.admin_modes
    line(f"admin modes scheduled: {len(run.admin_modes)} changes; answers by mode: "
         + ", ".join(f"{k}: {v}" for k, v in sorted(run.admin.seen.items())))
    logs = {r["n"]: r["log"].read_text(errors="replace") for r in run.routers}
    def count(pattern):
        return sum(len(re.findall(pattern, t)) for t in logs.values())
    guard_lines = count(r"refused by the blast-radius guard")
    load_errors = count(r"routing snapshot from \S+ not loaded")
    accepted_lines = count(r"routing snapshot loaded from")
    s["log_counts"] = {"guard_refusal_lines": guard_lines, "fetch_error_lines": load_errors,
                       "accepted_lines": accepted_lines,
                       "edge_down_lines": count(r"is DOWN after"), "edge_up_lines": count(r"is UP again"),
                       "panic_lines": count(r"PANIC MODE"), "panic_over_lines": count(r"panic over"),
                       "sighup_applied": count(r"SIGHUP: configuration \S+ applied"),
                       "sighup_refused": count(r"SIGHUP: .* refused"),
                       "error_lines": count(r"\] ERROR|ERROR "), "total_lines": sum(t.count("\n") for t in logs.values()),
                       "fail_to_proxy": count(r"Fail to proxy")}
    lc = s["log_counts"]
    line(f"router logs: {accepted_lines} snapshots accepted, {load_errors} fetch/load failures logged, "
         f"{guard_lines} guard refusals logged; last_refused seen in /debug/snapshot: {sorted(run.last_refused)}")
    fetch = {k: int(v) for k, v in prom.by_label(getattr(run, "final_metrics", ""),
                                                 "cti_kaltura_snapshot_fetch_total", "result").items()}
    line(f"final process fetch counters (since its start): {fetch}")
    s["final_fetch_counters"] = fetch
    line(f"versions in service over time: " + ", ".join(f"{t:.0f}s {v}" for t, v in run.versions))
    s["versions"] = run.versions
    # health
    downs = [(t, sid, m) for t, sid, m in run.flips if m != "ok"]
    line(f"edge flips made: {len(downs)} down ({', '.join(sorted({m for _t, _s, m in downs}))}), "
         f"{len(run.flips) - len(downs)} up; router log: {lc['edge_down_lines']} 'is DOWN' and {lc['edge_up_lines']} "
         f"'is UP again' lines; panic: {lc['panic_lines']} 'PANIC MODE' lines, max cti_kaltura_panic_regions {run.panic_max}")
    observed_down = 0
    missed = []
    for t, sid, m in downs:
        # up again at the next flip of that edge
        later = [ft for ft, fs, fm_ in run.flips if fs == sid and ft > t]
        until = later[0] if later else t + 10
        seen = any(vt >= t and vt <= until + 1.5 and not up for vt, up in run.edge_view.get(sid, []))
        # a down already seen before t (still down) counts too
        prior = [up for vt, up in run.edge_view.get(sid, []) if vt <= t]
        if seen or (prior and prior[-1] is False):
            observed_down += 1
        elif until - t >= 3.0:
            missed.append((t, sid, m, round(until - t, 1)))
    line(f"  edge downs seen by the router in /debug/edges: {observed_down} of {len(downs)}"
         + (f"; not seen (down >= 3 s): {missed[:5]}" if missed else ""))
    s["edge_view"] = {str(k): v for k, v in run.edge_view.items()}
    s["flips"] = run.flips
    s["panic_seen"] = run.panic_seen
    # routing checks
    rc = run.route_checks
    s["route_checks"] = rc
    post_upgrade = [v for v in rc["to_down_edge"] if v[2] <= a.upgrade_grace]
    other = [v for v in rc["to_down_edge"] if v[2] > a.upgrade_grace]
    line(f"routing check: {rc['samples']} samples / {rc['requests']} requests ({rc['skipped_unstable']} skipped: the view "
         f"changed meanwhile; {rc['skipped_panic']} in panic mode), {rc['errors']} errors; Locations to an edge the router "
         f"saw down: {len(other)} (+{len(post_upgrade)} within {a.upgrade_grace} s after an upgrade), to an unavailable edge: "
         f"{len(rc['to_unavailable_edge'])}, to an unknown host: {rc.get('unknown_hosts', 0)}")
    if post_upgrade:
        line(f"  after upgrades (the new process starts with every edge up): {post_upgrade[:5]}")
    if other:
        line(f"  others: {other[:5]}")
    # reloads and pushes
    line(f"SIGHUP reloads: {len(run.hups)} sent, {lc['sighup_applied']} 'configuration applied' lines, {lc['sighup_refused']} refused")
    pushes = {}
    for p in run.pushes:
        key = f"{p['status']} {p['outcome']}"
        pushes[key] = pushes.get(key, 0) + 1
    line(f"POST /admin/refresh: {len(run.pushes)} pushes: {pushes}")
    s["pushes"] = run.pushes
    s["hups"] = run.hups
    line(f"router log lines: {lc['total_lines']} in total, {lc['error_lines']} at ERROR ({lc['fail_to_proxy']} 'Fail to proxy')")
    line(f"driver errors: {run.driver_errors or 'none'}")
    s["snapshot_problems"] = run.snapshot_problems
    s["events"] = EVENTS

    line("")
    line("pass criteria:")
    crit("every valid request got a correct redirect (k6)",
         kk.get("exit") == 0 and kk.get("checks_failed") == 0 and kk.get("http_req_failed") == 0 and (kk.get("requests") or 0) > 0,
         f"checks {kk.get('checks_passed')}/{(kk.get('checks_passed') or 0) + (kk.get('checks_failed') or 0)}, "
         f"http_req_failed {kk.get('http_req_failed')}, k6 exit {kk.get('exit')}")
    expected = a.rate * a.duration
    crit("no request left unsent (k6 dropped iterations)", (kk.get("dropped_iterations") or 0) == 0,
         f"{kk.get('dropped_iterations')} dropped, {kk.get('requests')} sent of ~{expected}")
    lost = sum(len(p["failed_after_retry"]) + len(p["wrong"]) for p in run.probe.values())
    crit("no request lost across the upgrades (probes: failed after one retry or wrong)", lost == 0,
         f"{lost}; first-attempt errors: " + ", ".join(f"{n} {len(p['first_attempt_errors'])}" for n, p in run.probe.items()))
    crit("upgrades completed", len(run.upgrades) == len(a.upgrade_at) and all(
        u["old_exited_after_s"] is not None and u["old_sent_sockets"] and u["new_alive"] for u in run.upgrades),
        f"{len(run.upgrades)} of {len(a.upgrade_at)}")
    crit("memory flat", rss_ok and bool(rss_detail),
         f"growth per process after warm-up <= {a.rss_max_growth_kb} kB: {'; '.join(rss_detail) or 'no process lived long enough'}")
    refused_empty = any("would remove" in r[1] for r in run.last_refused) or guard_lines > 0
    crit("the blast-radius guard refused {}", refused_empty and not run.snapshot_problems,
         f"{guard_lines} refusal lines, empty snapshot in service: {run.snapshot_problems[:2] or 'never'}")
    crit("edges going down were seen by the router", not missed, f"{observed_down}/{len(downs)}, missed {len(missed)}")
    crit("no Location to an edge the router saw down (outside panic and the post-upgrade window) or unavailable",
         not other and not rc["to_unavailable_edge"] and not rc.get("unknown_hosts") and rc["samples"] > 0,
         f"{len(other)} + {len(rc['to_unavailable_edge'])} (+{rc.get('unknown_hosts', 0)} unknown hosts) in {rc['samples']} samples")
    crit("every SIGHUP applied", lc["sighup_applied"] >= len(run.hups) and lc["sighup_refused"] == 0,
         f"{lc['sighup_applied']}/{len(run.hups)}")
    crit("driver ran its schedule without errors", not run.driver_errors and not aborted, f"{len(run.driver_errors)} errors")
    line(f"chaos: {'PASS' if ok else 'FAIL'}")
    s["pass"] = ok
    with open(f"{run.out}-summary.json", "w") as f:
        json.dump(s, f, indent=1, default=str)
    text = "\n".join(lines) + "\n"
    with open(f"{run.out}-summary.txt", "w") as f:
        f.write(text)
    print(text, flush=True)
    return ok


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repo", required=True)
    p.add_argument("--bin", required=True)
    p.add_argument("--k6", required=True)
    p.add_argument("--k6-script", required=True)
    p.add_argument("--work", required=True, help="temp dir for config, state, sockets")
    p.add_argument("--out", required=True, help="results path prefix")
    p.add_argument("--port", type=int, default=4201)
    p.add_argument("--mgmt-port", type=int, default=4202)
    p.add_argument("--admin-port", type=int, default=4203)
    p.add_argument("--edge-port", type=int, default=4210)
    p.add_argument("--duration", type=int, default=300)
    p.add_argument("--rate", type=int, default=300)
    p.add_argument("--admin-every", type=float, default=6.0)
    p.add_argument("--edge-every", type=float, default=10.0)
    p.add_argument("--hup-every", type=float, default=20.0)
    p.add_argument("--push-every", type=float, default=15.0)
    p.add_argument("--upgrade-at", type=float, nargs="*", default=[0.4, 0.75])
    p.add_argument("--panic-at", type=float, default=0.3)
    p.add_argument("--max-body", type=int, default=1 << 20)
    p.add_argument("--rss-warmup", type=float, default=30.0)
    p.add_argument("--rss-max-growth-kb", type=int, default=16384)
    p.add_argument("--upgrade-grace", type=float, default=3.0,
                   help="seconds after a SIGQUIT in which a Location to a down edge is reported, not failed")
    a = p.parse_args()
    run = Run(a)
    run.driver_errors = []
    aborted = False

    def on_signal(signo, _frame):
        event("signal", f"{signo}: stopping")
        SIGNALLED.set()
        STOP.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        run.run()
        aborted = SIGNALLED.is_set()
    except Exception as e:  # noqa: BLE001
        event("run failed", f"{type(e).__name__}: {e}")
        run.driver_errors.append(f"run: {type(e).__name__}: {e}")
        aborted = True
    finally:
        run.cleanup()
    if not run.routers or run.k6 is None:
        print("chaos: the run could not be made", file=sys.stderr)
        sys.exit(2)
    ok = summarize(run, aborted)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
