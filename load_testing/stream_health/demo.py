#!/usr/bin/env python3
"""Stream health demo (issue 16): stages a stalled (edge, channel) pair and shows what the
router makes of it.

Two fake live edges (127.0.0.71 and .72) serve channels ch1 and ch2 as HLS media playlists that
advance one 1-second segment a second. The router (redirect mode, health and stream health on,
k = 3) is started on them; a player loop asks for both channels. Then edge A's copy of ch1
freezes: the script waits until the router lists the pair as stalled, prints /debug/streams,
where 20 ch1 and 20 ch2 players were sent, the stream-health metrics and the log lines, then
lets the copy advance again and waits until the pair is back.

    python3 load_testing/stream_health/demo.py [--binary target/debug/cti-kaltura]

Loopback only; everything it starts is stopped when it ends (about 15 s).
"""

import argparse
import json
import math
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
from ctk import REPO, prom  # noqa: E402
from ctk.fake import Server  # noqa: E402
from ctk.rawhttp import url_get  # noqa: E402
from ctk.router import Router  # noqa: E402

SEGMENT_SECS = 1.0
CHANNELS = ("ch1", "ch2")


class FakeLiveEdge:
    """An edge at ip:port: /healthcheck answers OK; /live/CH.m3u8 a live media playlist whose
    media sequence rises once per segment, unless the channel is frozen."""

    def __init__(self, ip, port):
        self.started = time.monotonic()
        self.frozen = {}  # channel -> the sequence it is stuck at
        self.lock = threading.Lock()
        self.probes = 0
        self.mode = "live"  # ctk.fake.Server hands each answer its owner's mode
        self.server = Server((ip, port), self)
        self.server.start()

    def sequence_now(self):
        return 1000 + int((time.monotonic() - self.started) / SEGMENT_SECS)

    def freeze(self, channel):
        with self.lock:
            self.frozen[channel] = self.sequence_now()

    def thaw(self, channel):
        with self.lock:
            self.frozen.pop(channel, None)

    def answer(self, h, _mode):
        path = h.path.split("?")[0]
        if path == "/healthcheck":
            return h.send(200, b"OK")
        channel = path.removeprefix("/live/").removesuffix(".m3u8")
        if channel not in CHANNELS:
            return h.send(404, b"")
        with self.lock:
            if h.headers.get("User-Agent", "").startswith("cti-kaltura-stream-probe/"):
                self.probes += 1
            last = self.frozen.get(channel, self.sequence_now())
        first = last - 2
        lines = ["#EXTM3U", "#EXT-X-VERSION:3",
                 f"#EXT-X-TARGETDURATION:{math.ceil(SEGMENT_SECS)}",
                 f"#EXT-X-MEDIA-SEQUENCE:{first}"]
        for n in range(first, last + 1):
            lines += [f"#EXTINF:{SEGMENT_SECS:.3f},", f"seg{n}.ts"]
        h.send(200, ("\n".join(lines) + "\n").encode(),
               [("Content-Type", "application/vnd.apple.mpegurl")])

    def gone(self, _mode):
        pass

    def stop(self):
        self.server.stop()


def free_port(ip="127.0.0.1"):
    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def snapshot(edges):
    servers = [{"id": i + 1, "type": "EDGE", "domain_name": ip, "ip": ip, "port": port,
                "status": "ACTIVE", "availability": True, "weight": 10,
                "healthcheck_enabled": True, "healthcheck_path": "/healthcheck"}
               for i, (ip, port) in enumerate(edges)]
    return {
        "version": "stream-health-demo",
        "regions": [{"id": 1, "name": "demo", "status": "ACTIVE", "server_group_ids": [1]}],
        "subnets": [{"id": 1, "cidr": "127.0.0.0/8", "region_id": 1}],
        "server_groups": [{"id": 1, "status": "ACTIVE", "server_ids": [s["id"] for s in servers]}],
        "servers": servers,
        "linear_channels": [{"id": n + 1, "epg_id": ch} for n, ch in enumerate(CHANNELS)],
        "tv_streams": [{"id": 101 + n, "linear_channel_id": n + 1, "stream_path": f"/live/{ch}.m3u8",
                        "status": "ACTIVE", "protocol": "HLS", "encryption": "NONE"}
                       for n, ch in enumerate(CHANNELS)],
    }


def config(port, mgmt, routing_file, run_dir):
    return f"""version: 1
threads: 1
pid_file: "{run_dir}/cti-kaltura.pid"
upgrade_sock: "{run_dir}/upgrade.sock"
grace_period_seconds: 0
graceful_shutdown_timeout_seconds: 1
router:
  listen:
    - "127.0.0.1:{port}"
  management_listen: "127.0.0.1:{mgmt}"
  routing:
    file: "{routing_file}"
  health:
    enabled: true
    interval_ms: 500
    timeout_ms: 400
  stream_health:
    stall_factor: 3
    probes_per_sec: 20
    min_round_interval_ms: 500
"""


def where_to(router_port, channel, n):
    """Edge host -> how many of n players of `channel` were redirected there."""
    counts = {}
    for _ in range(n):
        status, _body, location = redirect(router_port, f"/btv/live/hls/{channel}")
        host = location.split("//", 1)[1].split(":", 1)[0] if status == 302 else f"status {status}"
        counts[host] = counts.get(host, 0) + 1
    return counts


def redirect(port, path):
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode(errors="replace").split("\r\n")
    status = int(head[0].split()[1])
    location = next((l.split(":", 1)[1].strip() for l in head[1:] if l.lower().startswith("location:")), "")
    return status, data, location


def wait_for(what, check, players, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        players()
        if check():
            return
        time.sleep(0.2)
    raise SystemExit(f"FAIL: {what} not within {timeout:g} s")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", default=str(REPO / "target" / "debug" / "cti-kaltura"))
    args = ap.parse_args()
    if not Path(args.binary).exists():
        raise SystemExit(f"{args.binary}: no such binary (cargo build first)")

    a = FakeLiveEdge("127.0.0.71", free_port("127.0.0.71"))
    b = FakeLiveEdge("127.0.0.72", free_port("127.0.0.72"))
    work = Path(tempfile.mkdtemp(prefix="cti-kaltura-stream-demo-"))
    (work / "run").mkdir()
    routing_file = work / "routing.json"
    routing_file.write_text(json.dumps(snapshot([a.server.addr, b.server.addr])))
    port, mgmt = free_port(), free_port()
    (work / "router.yaml").write_text(config(port, mgmt, routing_file, work / "run"))
    base = f"http://127.0.0.1:{mgmt}"

    def streams():
        return json.loads(url_get(f"{base}/debug/streams")[1])

    def players():
        for ch in CHANNELS:
            redirect(port, f"/btv/live/hls/{ch}")

    try:
        with Router(args.binary, work / "router.yaml", work / "router.log", cwd=work / "run") as router:
            router.wait_ready(f"127.0.0.1:{mgmt}")
            print(f"router on 127.0.0.1:{port}, management {base}, log {work / 'router.log'}")
            wait_for("probes of both edges", lambda: a.probes >= 2 and b.probes >= 2, players)
            print("before:", {ch: where_to(port, ch, 20) for ch in CHANNELS})

            print("\n== edge A (127.0.0.71) freezes its copy of ch1 ==")
            a.freeze("ch1")
            frozen_at = time.monotonic()
            wait_for("the stalled pair", lambda: streams()["stalled_pairs"] == 1, players)
            print(f"stalled after {time.monotonic() - frozen_at:.1f} s (k × target duration = 3 s + probe rounds)")
            print("\nGET /debug/streams\n" + json.dumps(streams(), indent=2))
            print("\nplayers now go to:", {ch: where_to(port, ch, 20) for ch in CHANNELS})
            route = json.loads(url_get(f"{base}/debug/route?ip=127.0.0.1&path=/btv/live/hls/ch1")[1])
            print("/debug/route ch1: stream_health =", json.dumps(route["stream_health"]),
                  "| result.stream_stall =", route["result"]["stream_stall"])
            text = url_get(f"{base}/metrics")[1].decode()
            print("\nmetrics:")
            for line in text.splitlines():
                if line.startswith("cti_kaltura_stream_"):
                    print("  " + line)

            print("\n== edge A's copy of ch1 advances again ==")
            a.thaw("ch1")
            wait_for("the pair back", lambda: streams()["stalled_pairs"] == 0, players)
            print("players now go to:", {ch: where_to(port, ch, 20) for ch in CHANNELS})
            print("\nrouter log (stream health):")
            for line in router.log_text().splitlines():
                if "stream health:" in line:
                    print("  " + line)
            metrics = url_get(f"{base}/metrics")[1].decode()
            print("\nstalled pairs now:", prom.total(metrics, "cti_kaltura_stream_stalled_pairs"),
                  "| transitions:", prom.by_label(metrics, "cti_kaltura_stream_transitions_total", "to"))
    finally:
        a.stop()
        b.stop()


if __name__ == "__main__":
    main()
