#!/usr/bin/env python3
"""Generates an nginx configuration that answers like the CtiKaltura router, from one snapshot.

Usage:
    python3 load_testing/bench/gen_nginx.py [SNAPSHOT] OUT_DIR [--port P] [options]

SNAPSHOT is a routing snapshot, YAML or JSON (default: conf/routing.yaml, the demo data).
OUT_DIR receives nginx.conf (self-contained) and the directories nginx writes to (logs/, tmp/).
Run it with a temp prefix, never touching /etc/nginx or /run:

    nginx -p OUT_DIR -c nginx.conf           # pid file and error log inside OUT_DIR
    nginx -p OUT_DIR -c nginx.conf -s stop

What the configuration reproduces (the router's rules, see src/routing and src/snapshot):
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
    but visible ASCII or a `#` (the router's rule) or `"`, `<`, `>` (refused by Pingora's
    request parser, like a non-ASCII byte, `<` or `>` anywhere in the target or a backtick in
    the path; such requests get 400 even with a method other than GET/HEAD, as from Pingora);
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
import ipaddress
import json
import os
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_SNAPSHOT = REPO / "conf" / "routing.yaml"

PROTOCOLS = {"HLS": "hls", "MPD": "mpd"}
ENCRYPTIONS = ["NONE", "CENC", "WIDEVINE", "PLAYREADY"]
SUFFIX = {"NONE": "", "CENC": "_cenc", "WIDEVINE": "_wv", "PLAYREADY": "_pr"}
ACCEPTABLE = {
    "NONE": ["NONE"],
    "CENC": ["CENC"],
    "WIDEVINE": ["WIDEVINE", "CENC"],
    "PLAYREADY": ["PLAYREADY", "CENC"],
}
ROUTE_KINDS = ("live", "catchup", "vod", "static")

BODY_NOT_FOUND = "Server not found"
BODY_INVALID = "Request invalid"
BODY_METHOD = "Method not allowed"
BODY_BAD_GATEWAY = "Edge server unavailable"
CACHE_CONTROL = "max-age=0, private, must-revalidate"

EPG_RE = re.compile(r"[A-Za-z0-9_]+\Z")


# --- loading ------------------------------------------------------------------------------


def load_snapshot(path):
    text = Path(path).read_text(encoding="utf-8")
    stripped = text.lstrip()
    if stripped.startswith("{"):
        return json.loads(text)
    try:
        import yaml
    except ImportError:
        sys.exit(f"{path}: YAML needs PyYAML (apt-get install python3-yaml), or convert it to "
                 "JSON first")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    doc = yaml.load(text, Loader=loader)
    if not isinstance(doc, dict):
        sys.exit(f"{path}: not a snapshot document (an object of entity arrays)")
    return doc


# --- the router's rules, in Python --------------------------------------------------------


def normalize_path(path):
    """src/routing/location.rs normalize_path_into: runs of / collapsed, leading / added."""
    out = []
    last_was_slash = False
    if not path.startswith("/"):
        out.append("/")
        last_was_slash = True
    for segment in path.split("/"):
        if not last_was_slash:
            out.append("/")
        out.append(segment)
        last_was_slash = segment == ""
    return "".join(out)


def is_path_like(s):
    return (isinstance(s, str) and s != "" and all(0x21 <= ord(c) <= 0x7E and c not in "?#\\" for c in s)
            and "://" not in s)


def is_domain_name(s):
    if not s or len(s) > 253:
        return False
    for label in s.split("."):
        if not label or len(label) > 63:
            return False
        if not all(c.isascii() and (c.isalnum() or c in "-_") for c in label):
            return False
    return True


def is_epg_id(s):
    return isinstance(s, str) and s.isascii() and EPG_RE.match(s) is not None


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def parse_cidr(text):
    """crate::config::parse_cidr + ipv4_mapped_as_ipv4: `addr/len` truncated, or a bare address."""
    if not isinstance(text, str):
        return None
    text = text.strip()
    try:
        if "/" in text:
            addr, _, plen = text.partition("/")
            if not plen.isdigit():
                return None
            net = ipaddress.ip_network(f"{ipaddress.ip_address(addr)}/{int(plen)}", strict=False)
        else:
            net = ipaddress.ip_network(ipaddress.ip_address(text))
    except ValueError:
        return None
    if net.version == 6 and net.prefixlen >= 96 and net.network_address.ipv4_mapped is not None:
        net = ipaddress.ip_network(f"{net.network_address.ipv4_mapped}/{net.prefixlen - 96}")
    return net


def unique_by_id(items, required):
    """parse_all: entities missing a required field (or with a non-integer id) are skipped;
    a repeated id is skipped after its first occurrence."""
    seen, out = set(), []
    for item in items or []:
        if not isinstance(item, dict) or not is_int(item.get("id")):
            continue
        if any(k not in item or item[k] is None for k in required):
            continue
        if item["id"] in seen:
            continue
        seen.add(item["id"])
        out.append(item)
    return out


class Model:
    """The parts of a compiled snapshot that decide a redirect."""

    def __init__(self, doc):
        self.version = doc.get("version")
        # Servers.
        self.servers = {}
        for s in unique_by_id(doc.get("servers"), ("domain_name", "port")):
            domain = s["domain_name"].strip() if isinstance(s["domain_name"], str) else ""
            port = s["port"]
            stype = s.get("type")
            weight = s.get("weight", 0)
            if not is_domain_name(domain) or not is_int(port) or not 1 <= port <= 65535:
                continue
            if not is_int(weight):
                continue
            if stype == "EDGE" and weight <= 0:
                continue
            ip = s.get("ip")
            if isinstance(ip, str) and ip.strip():
                try:
                    ip = str(ipaddress.ip_address(ip.strip()))
                except ValueError:
                    continue
            else:
                ip = None
            prefix = s.get("prefix")
            if isinstance(prefix, str) and prefix and not is_path_like(prefix):
                continue
            domain = domain.lower()
            live_base = {443: f"https://{domain}", 80: f"http://{domain}"}.get(port, f"http://{domain}:{port}")
            self.servers[s["id"]] = {
                "id": s["id"], "type": stype, "domain": domain, "ip": ip, "port": port,
                "active": s.get("status") == "ACTIVE", "available": s.get("availability", True) is not False,
                "weight": max(weight, 0), "prefix": prefix if isinstance(prefix, str) else None,
                "live_base": live_base, "http_base": f"http://{domain}",
            }
        # Groups and regions: the eligible edges of each region.
        groups = {}
        for g in unique_by_id(doc.get("server_groups"), ()):
            groups[g["id"]] = (g.get("status") == "ACTIVE",
                               [sid for sid in g.get("server_ids") or [] if sid in self.servers])
        self.regions = {}
        for r in unique_by_id(doc.get("regions"), ()):
            eligible = set()
            for gid in r.get("server_group_ids") or []:
                active, members = groups.get(gid, (False, []))
                if not active:
                    continue
                for sid in members:
                    s = self.servers[sid]
                    if s["type"] == "EDGE" and s["active"] and s["available"] and s["weight"] > 0:
                        eligible.add(sid)
            if r.get("status") != "ACTIVE":
                eligible = set()
            self.regions[r["id"]] = tuple((sid, self.servers[sid]["weight"]) for sid in sorted(eligible))
        # Subnets, grouped into distinct networks with candidates by subnet id.
        self.networks = {}
        for s in unique_by_id(doc.get("subnets"), ("cidr", "region_id")):
            net = parse_cidr(s["cidr"])
            if net is None or s["region_id"] not in self.regions:
                continue
            self.networks.setdefault(net, []).append((s["id"], s["region_id"]))
        for cands in self.networks.values():
            cands.sort()
        # Content.
        channel_epg = {}
        for c in unique_by_id(doc.get("linear_channels"), ("epg_id",)):
            if is_epg_id(c["epg_id"]):
                channel_epg[c["id"]] = c["epg_id"]
        program_epg = {}
        for p in unique_by_id(doc.get("programs"), ("epg_id", "linear_channel_id")):
            if p["linear_channel_id"] in channel_epg and is_epg_id(p["epg_id"]):
                program_epg[p["id"]] = p["epg_id"]
        self.live = {}  # (epg, protocol, encryption) -> (row id, path)
        for t in unique_by_id(doc.get("tv_streams"), ("linear_channel_id", "stream_path")):
            epg = channel_epg.get(t["linear_channel_id"])
            if epg is None or not is_path_like(t["stream_path"]):
                continue
            self._offer(self.live, epg, t, "ACTIVE", normalize_path(t["stream_path"]))
        self.catchup = {}
        for rec in unique_by_id(doc.get("program_records"), ("program_id", "server_id", "path")):
            epg = program_epg.get(rec["program_id"])
            dvr = self.servers.get(rec["server_id"])
            if epg is None or dvr is None or dvr["type"] != "DVR" or not is_path_like(rec["path"]):
                continue
            path = normalize_path(f"/dvr/{dvr['prefix'] or ''}/{rec['path']}")
            self._offer(self.catchup, epg, rec, "COMPLETED", path)

    @staticmethod
    def _offer(table, epg, row, wanted_status, path):
        protocol = row.get("protocol")
        encryption = row.get("encryption")
        encryption = "NONE" if encryption is None else encryption
        if row.get("status") != wanted_status or protocol not in PROTOCOLS or encryption not in ENCRYPTIONS:
            return
        key = (epg, protocol, encryption)
        if key not in table or table[key][0] > row["id"]:
            table[key] = (row["id"], path)

    def content_map(self, table):
        """(codec, epg) -> path for every request that finds content, fallback applied."""
        out = {}
        for epg in sorted({k[0] for k in table}):
            for protocol, pname in PROTOCOLS.items():
                for requested in ENCRYPTIONS:
                    for enc in ACCEPTABLE[requested]:
                        hit = table.get((epg, protocol, enc))
                        if hit:
                            out[(pname + SUFFIX[requested], epg)] = hit[1]
                            break
        return out

    def effective_pools(self):
        """For each distinct network: the weighted edge pool of the first region along its
        fallback chain that has one (or None)."""
        by_version = {4: [], 6: []}
        for net in self.networks:
            by_version[net.version].append(net)
        result = {}
        for nets in by_version.values():
            for net in nets:
                enclosing = sorted((n for n in nets if n.prefixlen <= net.prefixlen and net.subnet_of(n)),
                                   key=lambda n: -n.prefixlen)
                pool = None
                for n in enclosing:
                    for _, region_id in self.networks[n]:
                        if self.regions[region_id]:
                            pool = self.regions[region_id]
                            break
                    if pool:
                        break
                result[net] = pool
        return result


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
        w("    # holds anything but visible ASCII, or a # (the router's rule), or a quote, < or >\n")
        w("    # (which Pingora's request parser refuses).\n")
        w("    map $args $qs {\n        \"\" $bare_q;\n        \"~[^\\x21-\\x7e]|[#\\\"<>]\" \"!\";\n"
          "        default \"?$args\";\n    }\n")
        w("    map $request_uri $bare_q {\n        \"~[?]$\" \"?\";\n        default \"\";\n    }\n")
    else:
        w("    map $args $qs {\n        default \"\";\n    }\n")
    w("    # 405 for other methods, unless Pingora's request parser would have answered 400 first\n")
    w("    # (a non-ASCII byte, < or > in the target, a backtick in the path, a quote in the query):\n")
    w("    # then the location's own checks answer 400. Only evaluated for methods other than GET/HEAD.\n")
    w("    map $request_method $method_bad {\n        GET 0;\n        HEAD 0;\n        default $target_parses;\n    }\n")
    w("    map $request_uri $target_parses {\n        \"~[\\x80-\\xff<>]|^[^?]*`|[?].*\\\"\" 0;\n        default 1;\n    }\n\n")

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
                        help=f"routing snapshot (default {DEFAULT_SNAPSHOT.relative_to(REPO)}) and output directory")
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
    args = parser.parse_args(argv)
    if len(args.paths) == 1:
        args.snapshot, out_dir = str(DEFAULT_SNAPSHOT), args.paths[0]
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

    model = Model(load_snapshot(args.snapshot))
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
