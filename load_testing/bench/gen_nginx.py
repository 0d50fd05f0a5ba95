#!/usr/bin/env python3
"""Generates an nginx configuration that answers like the CtiKaltura router, from one snapshot.

Usage:
    python3 load_testing/bench/gen_nginx.py [SNAPSHOT] OUT_DIR [--port P] [options]

SNAPSHOT is a routing snapshot, YAML or JSON (default: conf/routing.yaml, the demo data).
OUT_DIR receives nginx.conf (self-contained) and the directories nginx writes to (logs/, tmp/).
Run it with a temp prefix, never touching /etc/nginx or /run:

    nginx -p OUT_DIR -c nginx.conf           # pid file and error log inside OUT_DIR
    nginx -p OUT_DIR -c nginx.conf -s stop

What the configuration reproduces (the router's rules, see src/routing and src/snapshot; the
routing model behind the tables is load_testing/lib/ctk/routing.py, which lists what each of
its pieces mirrors; before writing, its counts of routable regions, eligible edges, live
channels and catch-up programs must equal `cti-kaltura-snapshot check`'s, see --snapshot-tool):
  * the path grammar `/btv/{live|catchup}/{hls|mpd}[_{wv|pr|cenc}]/{epg}[.m3u8|.mpd]`,
    `/vod/...`, `/static[/...]` (regex and prefix locations, checked against the raw request
    path, which the router parses undecoded), 400 `Request invalid` otherwise;
  * GET and HEAD only (405 `Method not allowed`, `Allow: GET, HEAD`);
  * the client address: the TCP peer, or X-Real-IP from trusted proxies (realip module);
  * `geo` with every subnet, the value being the EFFECTIVE edge pool of that network: the
    router walks the network's fallback chain (its subnets by id, then those of each
    enclosing network, most specific first) to the first region with an eligible edge
    (region ACTIVE, group ACTIVE, server EDGE + ACTIVE + available + weight > 0); that walk
    is done here, in Python, once per distinct network;
  * the weighted choice among a pool's edges: `split_clients` (MurmurHash2 of a per-request
    string, by default `${connection}.${connection_requests}.${msec}`; --split-key
    '$request_id' is the textbook choice but costs nginx an OpenSSL RAND_bytes per request);
  * live streams `(codec, epg) -> stream path` and catch-up records
    `(codec, program epg) -> /dvr/<prefix>/<path>` as `map`s, with the encryption fallback
    (wv and pr fall back to CENC; none and cenc never fall back), lowest id winning a slot,
    only ACTIVE streams and COMPLETED records;
  * `https://host` for port 443, `http://host` for 80, `http://host:port` otherwise (live and
    catch-up); VOD and static always `http://host` + the request path with runs of `/`
    collapsed;
  * the query string appended (`?` + raw query, a bare `?` kept), 400 when it holds anything
    but visible ASCII or a `#` (the router's rule); a non-ASCII byte anywhere in the target
    gets 400 even with a method other than GET/HEAD (the router hands such heads to Pingora's
    parser, which refuses them);
  * 404 `Server not found` for unknown content and for clients without an eligible edge;
  * optionally (--proxy KINDS) proxy mode for those route kinds: `proxy_pass` to the chosen
    edge's ip:port, Host = its domain name, X-Real-IP / X-Forwarded-For = the client.

Known differences (requests the benchmark and the equivalence check do not send): nginx
decodes `%2e%2e` and merges it as `..` before choosing a location (the router redirects
`/vod/%2e%2e/x` as is); nginx ignores a malformed or bracketed X-Real-IP where the router
answers 400 or accepts `[v6]`; nginx itself rejects `%00` in a path; in proxy mode there is no
retry on a second edge after a failed connection; edge health checks are not modelled (every
eligible edge is up, as with `health.enabled: false`); runs of `/` in a VOD path containing
`%` escapes are collapsed at most --max-slash-runs times; a raw DEL byte (0x7f) in the target
is %-encoded by Pingora (302) and refused here (400); a `#` in the target is cut off by both,
but with a method other than GET/HEAD nginx may answer 400 for a bad %-escape where the router
answers 405 (nginx parses the path first). nginx's 302 carries its small HTML body
(about 140 bytes) where the router's has none.
"""

import argparse
import os
import re
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
from ctk import REPO  # noqa: E402
from ctk.routing import Model  # noqa: E402
from ctk.snapshot import DEMO, SnapshotError, load_snapshot, snapshot_tool, tool_counts  # noqa: E402

ROUTE_KINDS = ("live", "catchup", "vod", "static")

BODY_NOT_FOUND = "Server not found"
BODY_INVALID = "Request invalid"
BODY_METHOD = "Method not allowed"
BODY_BAD_GATEWAY = "Edge server unavailable"
CACHE_CONTROL = "max-age=0, private, must-revalidate"


def cross_check(model, tool, snapshot):
    """The model's view of what can route must be the router's (`cti-kaltura-snapshot
    check`): a drifted model would configure nginx for another routing."""
    router = tool_counts(tool, snapshot)
    ours = model.counts()
    if ours != router:
        diff = ", ".join(f"{k} {ours[k]} here, {router[k]} by the router" for k in router if ours[k] != router[k])
        raise SnapshotError(f"{snapshot}: the routing model disagrees with {tool} check: {diff}")


# --- nginx configuration ------------------------------------------------------------------


def q(s):
    """An nginx string literal."""
    if not re.fullmatch(r"[\x21-\x7e ]*", s):
        raise ValueError(f"cannot quote {s!r}")
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def split_percentages(pool):
    """split_clients shares (2 decimals) of each (edge id, weight); the last edge takes `*`."""
    total = sum(w for _, w in pool)
    shares, cum, prev = [], 0, 0.0
    for sid, w in pool[:-1]:
        cum += w
        point = round(cum * 100.0 / total, 2)
        share = round(point - prev, 2)
        if share > 0:
            shares.append((f"{share:.2f}%", sid))
            prev = point
    shares.append(("*", pool[-1][0]))
    return shares


def content_maps(name, source_var, entries, out):
    """Two maps: `${name}_lc` (exact string keys, lowercase ids) and `${name}_mixed` (a
    case-sensitive regex per id with an uppercase letter). nginx compares map strings without
    case; the router's ids are case-sensitive, so each request only consults the map of its
    own case class."""
    lower = {k: v for k, v in entries.items() if k[1] == k[1].lower()}
    mixed = {k: v for k, v in entries.items() if k[1] != k[1].lower()}
    out.append(f"    map {q(source_var)} ${name}_lc {{\n        default \"\";\n")
    for (codec, epg), path in sorted(lower.items()):
        out.append(f"        {q(codec + ':' + epg)} {q(path)};\n")
    out.append("    }\n")
    out.append(f"    map {q(source_var)} ${name}_mixed {{\n        default \"\";\n")
    for (codec, epg), path in sorted(mixed.items()):
        out.append(f"        {q('~^' + codec + ':' + epg + '$')} {q(path)};\n")
    out.append("    }\n")


def generate(model, args):
    proxy_kinds = set(args.proxy)
    edges_used = set()
    pools, pool_ids = model.effective_pools(), {}
    for net in sorted(pools, key=lambda n: (n.version, n)):
        pool = pools[net]
        if pool and pool not in pool_ids:
            pool_ids[pool] = f"p{len(pool_ids) + 1}"
            edges_used.update(sid for sid, _ in pool)

    o = []
    w = o.append
    w(f"# GENERATED by load_testing/bench/gen_nginx.py from {args.snapshot}\n")
    w(f"# (snapshot version {model.version!r}): {len(model.networks)} networks, {len(pool_ids)} edge pools,\n")
    w(f"# {len(model.live)} live streams, {len(model.catchup)} catch-up records. Do not edit; re-generate.\n")
    w("# Run: nginx -p THIS_DIR -c nginx.conf   (stop: add -s stop)\n\n")
    if args.user:
        w(f"user {args.user};\n")
    w("worker_processes 1;\n")
    if args.cpu is not None:
        w(f"worker_cpu_affinity {format(1 << args.cpu, 'b')};\n")
    w("worker_rlimit_nofile 65536;\npid nginx.pid;\nerror_log logs/error.log warn;\npcre_jit on;\n\n")
    w("events {\n    worker_connections 16384;\n}\n\n")
    w("http {\n")
    w("    access_log off;\n    server_tokens off;\n    default_type text/plain;\n")
    w("    keepalive_requests 1000000;\n    keepalive_timeout 60s;\n    absolute_redirect off;\n")
    w("    # The router parses the raw path: keep `//` so that it does not match a location by luck.\n")
    w("    merge_slashes off;\n")
    for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        w(f"    {d}_temp_path tmp/{d};\n")
    w("    map_hash_max_size 262144;\n    map_hash_bucket_size 128;\n")
    w("    variables_hash_max_size 4096;\n    variables_hash_bucket_size 128;\n\n")

    if args.trusted_proxy:
        w("    # Client address: X-Real-IP from trusted proxies (router.client_ip.trusted_proxies).\n")
        for cidr in args.trusted_proxy:
            w(f"    set_real_ip_from {cidr};\n")
        w("    real_ip_header X-Real-IP;\n\n")

    w("    # Effective edge pool of each network (fallback chain already walked).\n")
    w("    geo $pool {\n        default \"\";\n")
    for net in sorted(pools, key=lambda n: (n.version, n)):
        pool = pools[net]
        w(f"        {net} {q(pool_ids[pool]) if pool else chr(34) * 2};\n")
    w("    }\n\n")

    w("    # Weighted choice inside each pool with more than one edge.\n")
    for pool, pid in pool_ids.items():
        if len(pool) < 2:
            continue
        w(f"    split_clients {q(args.split_key)} $edge_{pid} {{\n")
        for share, sid in split_percentages(list(pool)):
            w(f"        {share} e{sid};\n")
        w("    }\n")
    w("    map $pool $edge {\n        default \"\";\n")
    for pool, pid in pool_ids.items():
        w(f"        {pid} {('e' + str(pool[0][0])) if len(pool) == 1 else '$edge_' + pid};\n")
    w("    }\n")
    w("    map $edge $live_base {\n        default \"\";\n")
    for sid in sorted(edges_used):
        w(f"        e{sid} {q(model.servers[sid]['live_base'])};\n")
    w("    }\n")
    w("    map $edge $http_base {\n        default \"\";\n")
    for sid in sorted(edges_used):
        w(f"        e{sid} {q(model.servers[sid]['http_base'])};\n")
    w("    }\n\n")

    if proxy_kinds:
        w("    # Proxy mode: one upstream per edge (its ip, or its name, and port).\n")
        for sid in sorted(edges_used):
            s = model.servers[sid]
            host = s["ip"] or s["domain"]
            if ":" in host:
                host = f"[{host}]"
            w(f"    upstream edge_e{sid} {{\n        server {host}:{s['port']};\n        keepalive 64;\n    }}\n")
        w("    map $edge $edge_upstream {\n        default \"\";\n")
        for sid in sorted(edges_used):
            scheme = "https" if model.servers[sid]["port"] == 443 else "http"
            w(f"        e{sid} \"{scheme}://edge_e{sid}\";\n")
        w("    }\n")
        w("    map $edge $edge_host {\n        default \"\";\n")
        for sid in sorted(edges_used):
            w(f"        e{sid} {q(model.servers[sid]['domain'])};\n")
        w("    }\n\n")

    w("    # Live: (codec:epg) -> stream path, catch-up: (codec:program epg) -> /dvr/prefix/path,\n")
    w("    # encryption fallback applied (wv, pr -> CENC).\n")
    content_maps("live", "$codec:$epg", model.content_map(model.live), o)
    content_maps("catchup", "$codec:$epg", model.content_map(model.catchup), o)
    w("\n")

    w("    # The raw path of a live/catch-up request must be the one the location matched: no\n")
    w("    # %-escapes and no dot segments (nginx decodes and resolves both in $uri).\n")
    w("    map $request_uri $btv_raw_bad {\n        \"~^[^?]*(?:%|/\\.)\" 1;\n        default 0;\n    }\n")
    w("    # VOD/static: the raw path if it is a safe path (RFC 3986 path characters, %XX, no dot\n")
    w("    # segments), else \"\"; then runs of / collapsed.\n")
    w("    map $request_uri $vp_raw {\n")
    w("        \"~^(?![^?]*/\\.\\.?(?:[/?]|$))(?<vpr>/(?:vod/|static/|static(?=[?]|$))"
      "(?:[-A-Za-z0-9._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})*)(?:[?]|$)\" $vpr;\n")
    w("        default \"\";\n    }\n")
    w("    map $vp_raw $vp {\n        \"~//\" $vp_c" + str(args.max_slash_runs) + ";\n        default $vp_raw;\n    }\n")
    prev = "$vp_raw"
    for i in range(1, args.max_slash_runs + 1):
        w(f"    map {prev} $vp_c{i} {{\n        \"~^(?<s{i}a>.*?)//+(?<s{i}b>.*)$\" \"$s{i}a/$s{i}b\";\n"
          f"        default {prev};\n    }}\n")
        prev = f"$vp_c{i}"

    if args.append_query_string:
        w("    # What the Location gets after the path: ?query (a bare ? kept), or ! when the query\n")
        w("    # holds anything but visible ASCII, or a # (the router's rule).\n")
        w("    map $args $qs {\n        \"\" $bare_q;\n        \"~[^\\x21-\\x7e]|[#]\" \"!\";\n"
          "        default \"?$args\";\n    }\n")
        w("    map $request_uri $bare_q {\n        \"~[?]$\" \"?\";\n        default \"\";\n    }\n")
    else:
        w("    map $args $qs {\n        default \"\";\n    }\n")
    w("    # 405 for other methods, unless the router's head parser would have answered 400 first\n")
    w("    # (a non-ASCII byte in the target, which it hands to Pingora's parser):\n")
    w("    # then the location's own checks answer 400. Only evaluated for methods other than GET/HEAD.\n")
    w("    map $request_method $method_bad {\n        GET 0;\n        HEAD 0;\n        default $target_parses;\n    }\n")
    w("    map $request_uri $target_parses {\n        \"~[\\x80-\\xff]\" 0;\n        default 1;\n    }\n\n")

    w("    server {\n")
    for addr in args.listen:
        w(f"        listen {addr}:{args.port} backlog=4096;\n")
    w("        server_name _;\n")
    method_check = ("            if ($method_bad) {\n                add_header Allow \"GET, HEAD\" always;\n"
                    f"                return 405 {q(BODY_METHOD)};\n            }}\n")

    codec_re = "(?<codec>(?:hls|mpd)(?:_(?:wv|pr|cenc))?)"
    ext_re = "(?:\\.m3u8|\\.mpd)?$"

    def answer(kind, base_var, path_var, indent="            "):
        lines = []
        if kind in proxy_kinds:
            lines += [
                f"{indent}proxy_pass $edge_upstream{path_var}$qs;\n",
                f"{indent}proxy_http_version 1.1;\n",
                f"{indent}proxy_set_header Connection \"\";\n",
                f"{indent}proxy_set_header Host $edge_host;\n",
                f"{indent}proxy_set_header X-Forwarded-For $remote_addr;\n",
                f"{indent}proxy_set_header X-Real-IP $remote_addr;\n",
                f"{indent}proxy_ssl_server_name on;\n",
                f"{indent}proxy_ssl_name $edge_host;\n",
                f"{indent}proxy_connect_timeout {args.proxy_connect_timeout};\n",
                f"{indent}proxy_buffering {args.proxy_buffering};\n",
                f"{indent}proxy_buffer_size 64k;\n",
                f"{indent}proxy_buffers 16 64k;\n",
                f"{indent}proxy_busy_buffers_size 128k;\n",
                f"{indent}proxy_max_temp_file_size 0;\n",
                f"{indent}error_page 502 504 = @bad_gateway;\n",
            ]
        else:
            lines += [
                f"{indent}add_header Cache-Control {q(CACHE_CONTROL)};\n",
                f"{indent}return 302 {base_var}{path_var}$qs;\n",
            ]
        return "".join(lines)

    # First, like Pingora's request parser, which answers 400 to a request target with bytes
    # outside visible ASCII before the router sees the method.
    checks_tail = (
        f"            if ($qs = \"!\") {{\n                return 400 {q(BODY_INVALID)};\n            }}\n"
    )
    for kind in ("live", "catchup"):
        for case, epg_re in (("lc", "[a-z0-9_]+"), ("mixed", "[A-Za-z0-9_]+")):
            w(f"        location ~ \"^/btv/{kind}/{codec_re}/(?<epg>{epg_re}){ext_re}\" {{\n")
            w(checks_tail)
            w(method_check)
            w(f"            if ($btv_raw_bad) {{\n                return 400 {q(BODY_INVALID)};\n            }}\n")
            w(f"            if (${kind}_{case} = \"\") {{\n                return 404 {q(BODY_NOT_FOUND)};\n            }}\n")
            w(f"            if ($edge = \"\") {{\n                return 404 {q(BODY_NOT_FOUND)};\n            }}\n")
            w(answer(kind, "$live_base", f"${kind}_{case}"))
            w("        }\n")
    for kind, loc in (("vod", "^~ /vod/"), ("static", "= /static"), ("static", "^~ /static/")):
        w(f"        location {loc} {{\n")
        w(checks_tail)
        w(method_check)
        w(f"            if ($vp = \"\") {{\n                return 400 {q(BODY_INVALID)};\n            }}\n")
        w(f"            if ($edge = \"\") {{\n                return 404 {q(BODY_NOT_FOUND)};\n            }}\n")
        w(answer(kind, "$http_base", "$vp"))
        w("        }\n")
    if proxy_kinds:
        w(f"        location @bad_gateway {{\n            return 502 {q(BODY_BAD_GATEWAY)};\n        }}\n")
    w(f"        location / {{\n{checks_tail}{method_check}            return 400 {q(BODY_INVALID)};\n        }}\n")
    w("    }\n}\n")
    return "".join(o), len(pool_ids)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", metavar="[SNAPSHOT] OUT_DIR",
                        help=f"routing snapshot (default {DEMO.relative_to(REPO)}) and output directory")
    parser.add_argument("--port", type=int, default=8081, help="listening port (default 8081)")
    parser.add_argument("--listen", action="append", default=None,
                        help="listening address, repeatable (default 127.0.0.1; add [::1] for IPv6)")
    parser.add_argument("--trusted-proxy", action="append", default=None,
                        help="peer whose X-Real-IP is believed, repeatable (default 127.0.0.0/8 and ::1; "
                             "'none' for none), like router.client_ip.trusted_proxies")
    parser.add_argument("--no-append-query-string", dest="append_query_string", action="store_false",
                        help="like router.redirect.append_query_string: false")
    parser.add_argument("--proxy", default="", help="route kinds in proxy mode, comma-separated (live,catchup,vod,static)")
    parser.add_argument("--proxy-buffering", choices=("on", "off"), default="off",
                        help="proxy_buffering (default off: streams like the router, and measured faster here)")
    parser.add_argument("--proxy-connect-timeout", default="1s")
    parser.add_argument("--cpu", type=int, default=None, help="worker_cpu_affinity: pin the worker to this CPU")
    parser.add_argument("--user", default=None,
                        help="nginx `user` directive (default when run as root: 'nobody nogroup'; otherwise none)")
    parser.add_argument("--split-key", default="${connection}.${connection_requests}.${msec}",
                        help="string split_clients hashes per request (default: connection serial, request "
                             "number on it and time in ms, unique per request and cheap; '$request_id' costs "
                             "an OpenSSL RAND_bytes call per request)")
    parser.add_argument("--max-slash-runs", type=int, default=4,
                        help="runs of / collapsed in a VOD/static path (default 4)")
    parser.add_argument("--snapshot-tool", default=snapshot_tool(),
                        help="cti-kaltura-snapshot whose `check` counts the model must match (default "
                             "target/release/cti-kaltura-snapshot when built; 'none' skips the check)")
    args = parser.parse_args(argv)
    if len(args.paths) == 1:
        args.snapshot, out_dir = str(DEMO), args.paths[0]
    elif len(args.paths) == 2:
        args.snapshot, out_dir = args.paths
    else:
        parser.error("expected [SNAPSHOT] OUT_DIR")
    args.listen = args.listen or ["127.0.0.1"]
    tp = args.trusted_proxy or ["127.0.0.0/8", "::1"]
    args.trusted_proxy = [] if tp == ["none"] else tp
    args.proxy = [k for k in args.proxy.split(",") if k]
    for k in args.proxy:
        if k not in ROUTE_KINDS:
            parser.error(f"--proxy: unknown route kind {k!r}")
    if args.user is None and hasattr(os, "geteuid") and os.geteuid() == 0:
        try:
            import grp
            grp.getgrnam("nogroup")
            args.user = "nobody nogroup"
        except (ImportError, KeyError):
            args.user = "nobody"
    if args.max_slash_runs < 1:
        parser.error("--max-slash-runs must be >= 1")

    try:
        model = Model(load_snapshot(args.snapshot))
        if args.snapshot_tool and args.snapshot_tool != "none":
            cross_check(model, args.snapshot_tool, args.snapshot)
        else:
            print("note: no cti-kaltura-snapshot: the model's counts are not checked against the router's",
                  file=sys.stderr)
    except SnapshotError as e:
        sys.exit(str(e))
    text, n_pools = generate(model, args)
    out = Path(out_dir)
    for sub in ("logs", "tmp"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    (out / "nginx.conf").write_text(text, encoding="utf-8")
    print(f"wrote {out / 'nginx.conf'} ({len(text)} bytes): {len(model.networks)} networks, "
          f"{n_pools} edge pools, port {args.port}"
          + (f", proxy mode for {','.join(args.proxy)}" if args.proxy else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
