#!/usr/bin/env python3
"""Sends the same requests to the router and to the generated nginx and compares the answers.

Usage:
    python3 load_testing/bench/equivalence.py --router 4001 --nginx 8081 --snapshot FILE \
        --mode exact|eligible [--requests N] [--seed S] [--snapshot-tool BIN] [-v]

Each request is sent over a fresh connection (raw HTTP/1.1, so that paths reach the servers
byte for byte: no client-side dot-segment removal) to 127.0.0.1 or [::1], optionally from
another loopback source address (127.0.20.1, ...) or with an X-Real-IP header (both servers
trust loopback peers), and compared on:
  * status;
  * Location: exact (--mode exact, a snapshot where each region has at most one eligible
    edge), or (--mode eligible) the part after scheme://host[:port] exactly and the host one
    of the eligible edges of the client's effective region as the router itself explains it
    (`cti-kaltura-snapshot route`), with the base URL the port rule gives that host;
  * the body of non-302 answers (`Server not found`, `Request invalid`, `Method not
    allowed`) and the Allow header of 405s.
Requests refused by a server's own HTTP parser, before any routing, are counted separately:
Pingora's (400 with an empty body: a non-ASCII byte, `<`, `>` in the target) are compared on
status only; nginx's (its HTML 400 page: a bad %-escape) may meet a 405 from the router for
methods other than GET/HEAD, since nginx parses the path before it looks at the method.
Prints every mismatch and a summary; exits 1 when there is any mismatch.
"""

import argparse
import ipaddress
import json
import random
import subprocess
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from ctk import REPO, rawhttp  # noqa: E402
from ctk.routing import Model  # noqa: E402
from ctk.snapshot import load_snapshot  # noqa: E402
from snapshots import PROBE_ADDRESSES  # noqa: E402

CODECS = [p + s for p in ("hls", "mpd") for s in ("", "_wv", "_pr", "_cenc")]
WORDS = ["lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit", "sed", "do"]
# A query is absent half of the time; `a=\xe9` (non-ASCII) is answered 400 by both.
QUERIES = [None] * 7 + ["token=abc", "token=abc", "a=1&b=%20x", "", "t=1;x=y~z", "k=v#frag", "a=\\xe9"]

# Paths the router rejects (400), from src/routing/request_path.rs, sent raw.
INVALID_PATHS = [
    "/btv/life/hls/r", "/btv/live/hlss/r", "/btv/live/hls_xx/r", "/btv/live/hls_/r",
    "/btv/live/hls/asd123!", "/btv/live/HLS/a", "/btv/live/hls/a.M3U8", "/btv/live/hls/a/",
    "/btv/live/hls/", "/btv/live/hls/a/b", "/btv/live/hls/a.mpd.m3u8", "/btv/live/hls/a!m3u8",
    "/btv/live/hls/a/mpd", "/btv/xlive/hls/a", "/btv/live/catchup/hls/x", "/btv/live",
    "//btv//live/hls/x", "/btv//live/hls/x", "/btv/live/hls/ab%20c", "/BTV/live/hls/a", "/vod",
    "//vod/x", "/vod/a%zz", "/vod/a%2", "/vod/../etc/passwd", "/vod/a/./b", "/vod/a/.",
    "/static.x", "/staticx", '/static/a"b', "/non/existing/path", "/", "/btv/catchup/mpd/",
    "/btv/live/hls/.m3u8", "/btv/live/hls/epg_1%5F", "/btv/live/hls/./epg_1",
    "/btv/catchup/hls/p_epg_1/../p_epg_2", "/vod/a<b", "/static/%7e/x",
    # Refused by Pingora's request parser (400, empty body), whatever the method.
    "/vod/a`b", "/vod/a>b", "/vod/a\\xe9b", '/vod/a?x="q', "/vod/a?x=<", "/btv/live/hls/epg_1?\\x80",
]


def raw_request(host, port, target, method="GET", headers=(), source=None):
    """(status, headers, body) of one request on a fresh connection, read to EOF."""
    r = rawhttp.fetch(host, port, target, method, headers, source, timeout=5, host_header="bench")
    return r.status, r.headers, r.body


def split_location(loc):
    """scheme://host[:port] and the rest."""
    scheme, sep, rest = loc.partition("://")
    if not sep:
        return None, loc
    hostport, slash, path = rest.partition("/")
    return f"{scheme}://{hostport}", slash + path


def build_requests(doc, model, rng, n, exact):
    epgs = sorted(c["epg_id"] for c in doc["linear_channels"])
    programs = sorted(p["epg_id"] for p in doc["programs"])
    special_live = [e for e in epgs if not e[4:].isdigit() or int(e[4:]) < 12]
    nets = sorted(model.networks, key=lambda x: (x.version, x))
    clients = [("127.0.0.1", None, None), ("::1", None, None), ("127.0.0.1", None, "127.0.20.1"),
               ("127.0.0.1", None, "127.0.5.1"), ("127.0.0.1", None, "127.1.0.1"),
               ("127.0.0.1", "198.51.100.77", None), ("::1", "2001:db8:ffff:ffff::1", None)]
    for net in rng.sample(nets, min(40, len(nets))):
        host = int(net.network_address) + rng.randrange(net.num_addresses)
        clients.append(("127.0.0.1", str(ipaddress.ip_address(host)), None))
        clients.append(("127.0.0.1", str(net.network_address), None))
    if exact:
        clients += [("127.0.0.1", a, None) for a in PROBE_ADDRESSES]
    reqs = []

    def query_suffix():
        qv = rng.choice(QUERIES)
        return "" if qv is None else "?" + qv

    def content(kind, ids, special):
        epg = rng.choice(special if special and rng.random() < 0.5 else ids)
        ext = rng.choice(["", "", ".m3u8", ".mpd"])
        return f"/btv/{kind}/{rng.choice(CODECS)}/{epg}{ext}"

    for i in range(n):
        r = rng.random()
        if r < 0.30:
            path = content("live", epgs + ["nochan", "EPG_0", "Epg_Case", "epg_case", "EPG_CASE", "abc"],
                           special_live + ["Epg_Case", "epg_case", "ABC"])
        elif r < 0.50:
            path = content("catchup", programs + ["p_epg_999", "P_EPG_1"], programs[:4])
        elif r < 0.68:
            parts = [rng.choice(WORDS) for _ in range(rng.randint(1, 4))]
            seps = ["/", "/", "/", "//", "///"]
            path = "/vod/" + "".join(p + rng.choice(seps) for p in parts[:-1]) + parts[-1]
            if rng.random() < 0.2:
                path += rng.choice([".mp4", "%20x", "/", "%41b", "/x;y=1"])
        elif r < 0.78:
            path = rng.choice(["/static", "/static/", "/static/img/x.png", "/static//a//b.css",
                               "/static/" + rng.choice(WORDS) + ".png"])
        else:
            path = rng.choice(INVALID_PATHS)
        target = path + query_suffix()
        method = rng.choice(["GET"] * 24 + ["HEAD", "HEAD", "POST", "DELETE"])
        reqs.append((method, target, rng.choice(clients)))
    # Every client at least once with a plain live request.
    for c in clients:
        reqs.append(("GET", "/btv/live/hls/epg_10.m3u8?token=abc", c))
    return reqs


class Eligible:
    """Eligible edge hosts per client address, as the router explains them."""

    def __init__(self, tool, snapshot):
        self.tool, self.snapshot, self.cache = tool, snapshot, {}

    def hosts(self, ip):
        if ip not in self.cache:
            out = subprocess.run([self.tool, "route", self.snapshot, ip, "/vod/x"], capture_output=True,
                                 text=True, check=False)
            try:
                doc = json.loads(out.stdout)
            except ValueError:
                sys.exit(f"{self.tool} route {ip}: {out.stdout}{out.stderr}")
            hosts = set()
            for step in doc.get("fallback_chain", []):
                hosts = {c["domain_name"] for c in step.get("candidates", []) if c.get("verdict") == "eligible"}
                if hosts:
                    break
            self.cache[ip] = hosts
        return self.cache[ip]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--router", type=int, required=True, help="router port (127.0.0.1 and [::1])")
    ap.add_argument("--nginx", type=int, required=True, help="nginx port (127.0.0.1 and [::1])")
    ap.add_argument("--snapshot", required=True)
    ap.add_argument("--mode", choices=("exact", "eligible"), required=True)
    ap.add_argument("--requests", type=int, default=320)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--snapshot-tool", default=str(REPO / "target/release/cti-kaltura-snapshot"))
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)

    doc = load_snapshot(args.snapshot)
    model = Model(doc)
    bases = {}
    for s in model.servers.values():
        bases[s["domain"]] = (s["live_base"], s["http_base"])
    rng = random.Random(args.seed)
    reqs = build_requests(doc, model, rng, args.requests, args.mode == "exact")
    eligible = Eligible(args.snapshot_tool, args.snapshot) if args.mode == "eligible" else None

    mismatches, status_only, by_status = [], 0, {}
    for method, target, (host, xrip, source) in reqs:
        raw_target = target.encode("latin-1").decode("unicode_escape").encode("latin-1")
        headers = [("X-Real-IP", xrip)] if xrip else []
        answers = []
        for port in (args.router, args.nginx):
            try:
                answers.append(raw_request(host, port, raw_target, method, headers, source))
            except (OSError, ValueError, IndexError) as e:
                answers.append((0, {}, repr(e).encode()))
        (rs, rh, rb), (ns, nh, nb) = answers
        by_status[rs] = by_status.get(rs, 0) + 1
        who = f"{method} {target} from {source or host}" + (f" X-Real-IP {xrip}" if xrip else "")
        problems = []
        nginx_parser = ns == 400 and nb.lstrip().startswith(b"<html>")
        if nginx_parser and rs in (400, 405):
            # nginx's own parser refused the target (bad %-escape) before any method check.
            status_only += 1
        elif rs != ns:
            problems.append(f"status router {rs} nginx {ns}")
        elif rs == 302:
            rl, nl = rh.get("location", ""), nh.get("location", "")
            if args.mode == "exact":
                if rl != nl:
                    problems.append(f"Location router {rl} nginx {nl}")
            else:
                (rb_, rp), (nb_, np_) = split_location(rl), split_location(nl)
                if rp != np_:
                    problems.append(f"Location path router {rp} nginx {np_}")
                client = xrip or source or host
                hosts = eligible.hosts(client)
                for name, base in (("router", rb_), ("nginx", nb_)):
                    hostname = (base or "").partition("://")[2].partition(":")[0]
                    if hostname not in hosts:
                        problems.append(f"{name} edge {hostname} not eligible for {client} ({sorted(hosts)})")
                    elif base not in bases.get(hostname, ()):
                        problems.append(f"{name} base {base} is not {bases.get(hostname)}")
        elif method != "HEAD":
            if rs == 400 and rb == b"":
                status_only += 1  # Pingora's request parser answered, not routing
            elif rb != nb:
                problems.append(f"body router {rb!r} nginx {nb!r}")
            if rs == 405 and rh.get("allow") != nh.get("allow"):
                problems.append(f"Allow router {rh.get('allow')} nginx {nh.get('allow')}")
        if problems:
            mismatches.append((who, problems))
        elif args.verbose:
            print(f"ok  {rs} {who} -> {rh.get('location', '')}")

    for who, problems in mismatches:
        print(f"MISMATCH {who}: " + "; ".join(problems))
    statuses = ", ".join(f"{k}: {v}" for k, v in sorted(by_status.items()))
    print(f"{args.mode}: {len(reqs)} requests ({statuses}); {len(mismatches)} mismatches"
          + (f"; {status_only} refused by a request parser (status compared only)" if status_only else ""))
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
