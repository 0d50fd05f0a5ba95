"""Quick self-check of ctk (a few seconds, 127.0.0.1 only, everything it starts is stopped):

    PYTHONPATH=load_testing/lib python3 -B -m ctk selftest [--bin target/debug/cti-kaltura]

Checks the Prometheus parser and the response parser on fixed text, the fake edge and admin
servers through the raw-socket client (modes, ETag / 304, down and up again, close vs
reset), the config edits on conf/cti-kaltura.yaml, the routing model's counts against
`cti-kaltura-snapshot check` (when built) and, given a router binary, a router started on a
derived config, asked for a redirect and /metrics, and stopped. Exit 1 on the first failure.
"""

import socket
import tempfile
from pathlib import Path

from . import REPO, config, prom, rawhttp
from .fake import FakeAdmin, FakeEdge
from .router import Router
from .routing import Model
from .snapshot import DEMO, load_snapshot, snapshot_tool, tool_counts

METRICS = '''# HELP x_total a counter
# TYPE x_total counter
x_total{kind="live",outcome="redirect"} 3
x_total{kind="vod",outcome="redirect"} 2
x_total{kind="vod",outcome="bad_request"} 1
y{path="a\\"b,c=d"} 1.5e3
gauge 7
'''


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check(name, ok, detail=""):
    print(f"ok   {name}" if ok else f"FAIL {name}: {detail}", flush=True)
    if not ok:
        raise SystemExit(1)


def parsers():
    check("prom total", prom.total(METRICS, "x_total") == 6)
    check("prom total by labels", prom.total(METRICS, "x_total", ['outcome="redirect"']) == 5)
    check("prom by_label", prom.by_label(METRICS, "x_total", "kind") == {"live": 3, "vod": 3})
    check("prom escapes", prom.samples(METRICS)[3] == ("y", {"path": 'a"b,c=d'}, 1500.0))
    check("prom no labels", prom.total(METRICS, "gauge") == 7)
    buf = b"HTTP/1.1 302 Found\r\nLocation: http://e/x\r\nContent-Length: 2\r\n\r\nab" + b"HTTP/1.1 400"
    check("parse_one incomplete", rawhttp.parse_one(buf[:20]) is None)
    resp, used = rawhttp.parse_one(buf)
    check("parse_one", (resp.status, resp.header("location"), resp.body, buf[used:]) == (302, "http://e/x", b"ab", b"HTTP/1.1 400"))
    check("parse_one HEAD", rawhttp.parse_one(buf[:buf.index(b"ab")], head_request=True)[0].body == b"")
    try:
        rawhttp.parse_one(b"SSH-2.0\r\n\r\n")
        check("parse_one refuses non-HTTP", False)
    except ValueError:
        check("parse_one refuses non-HTTP", True)


def fakes():
    port = free_port()
    edge, admin = FakeEdge("127.0.0.1", port), FakeAdmin("127.0.0.1", free_port(), {"a": b'{"v": 1}'}, "a", 1 << 20, "a")
    try:
        for mode, want in (("ok", (200, b"OK")), ("503", (503, b"DOWN")), ("badbody", (200, b"NOT OK"))):
            edge.set(mode)
            r = rawhttp.fetch("127.0.0.1", port, "/healthcheck")
            check(f"fake edge {mode}", (r.status, r.body) == want, (r.status, r.body))
        edge.set("closed")
        try:
            rawhttp.fetch("127.0.0.1", port, "/healthcheck", timeout=2)
            check("fake edge closed", False)
        except ConnectionRefusedError:
            check("fake edge closed", True)
        edge.set("ok")
        x = rawhttp.exchange("127.0.0.1", port, rawhttp.request("/", close=True), timeout=3)
        check("exchange: answer, then close", (x.response().status, x.closed, x.error) == (200, True, None))
        admin.set("a")
        a = admin.server.addr
        r = rawhttp.fetch(*a, "/api/routing/snapshot")
        check("fake admin 200 + ETag", r.status == 200 and r.body == b'{"v": 1}' and r.header("etag"), r.headers)
        r = rawhttp.fetch(*a, "/api/routing/snapshot", headers=[("If-None-Match", r.header("etag"))])
        check("fake admin 304", r.status == 304)
        admin.set("500")
        check("fake admin 500", rawhttp.fetch(*a, "/").status == 500)
        check("fake admin counts", admin.seen == {"a -> 200": 1, "a -> 304": 1, "500 -> 500": 1}, admin.seen)
        try:
            FakeEdge("10.0.0.1", port)
            check("fake servers refuse non-loopback", False)
        except ValueError:
            check("fake servers refuse non-loopback", True)
    finally:
        edge.stop()
        admin.stop()


def configs_and_model():
    text = (REPO / "conf" / "cti-kaltura.yaml").read_text()
    text = config.bench(config.load_test(text, 1, 2, "/tmp/x"), vod_proxy=True)
    check("config edits apply", "threads: 1" in text and '"127.0.0.1:2"' in text)
    counts = Model(load_snapshot(DEMO)).counts()
    tool = snapshot_tool()
    if tool:
        check("routing model counts = cti-kaltura-snapshot check", counts == tool_counts(tool, DEMO), counts)
    else:
        print("skip routing model counts (no target/release/cti-kaltura-snapshot)")


def router(binary):
    port, mgmt = free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="ctk-selftest.") as tmp:
        text = config.load_test((REPO / "conf" / "cti-kaltura.yaml").read_text(), port, mgmt, tmp)
        cfg = Path(tmp) / "cti-kaltura.yaml"
        config.write_atomic(cfg, config.routing(text, DEMO))
        with Router(binary, cfg, Path(tmp) / "router.log", cwd=REPO) as r:
            r.wait_ready(f"127.0.0.1:{mgmt}", timeout=60)
            resp = rawhttp.fetch("127.0.0.1", port, "/static/selftest.png")
            check("router redirects", resp.status == 302 and resp.header("location", "").endswith("/static/selftest.png"),
                  resp.header("location"))
            total = prom.total(prom.scrape(f"http://127.0.0.1:{mgmt}/metrics"), "cti_kaltura_requests_total")
            check("router counts it in /metrics", total >= 1, total)
            code = r.stop()
        check("router stopped", code is not None and not r.alive, code)


def main(binary=None):
    parsers()
    fakes()
    configs_and_model()
    if binary:
        router(binary)
    print("selftest: ok")
    return 0
