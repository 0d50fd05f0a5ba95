#!/usr/bin/env python3
"""Generates conf/routing.yaml, the bundled demo routing snapshot.

Usage:
    python3 conf/gen_routing.py [OUTPUT]          write the snapshot (default: routing.yaml
                                                  next to this script)
    python3 conf/gen_routing.py --check [FILE]    re-read a written snapshot and verify it

The data has the shape of the original system's seed set: 50 regions, 1,000 subnets (20 per
region), 25 server groups, 13 servers (4 DVR, 9 EDGE), 250 linear channels with 8 streams each,
20 programs with 8 catch-up records each. Output is deterministic (fixed random seed) and uses
only the standard library: every entity is one line of JSON-compatible YAML flow syntax.
"""

import argparse
import ipaddress
import json
import random
import sys
from pathlib import Path

SEED = 2019
VERSION = "demo-1"
DOMAIN = "demo.cti-kaltura.test"

REGION_NAMES = [
    "Almaty", "Astana", "Shymkent", "Karaganda", "Aktobe", "Taraz", "Pavlodar", "Oskemen",
    "Semey", "Atyrau", "Kostanay", "Kyzylorda", "Oral", "Petropavl", "Aktau", "Temirtau",
    "Turkistan", "Kokshetau", "Taldykorgan", "Ekibastuz", "Rudny", "Zhezkazgan", "Balkhash",
    "Satpayev", "Kentau", "Ridder", "Stepnogorsk", "Zhanaozen", "Kulsary", "Konaev", "Saran",
    "Shakhtinsk", "Arkalyk", "Lisakovsk", "Aksu", "Zhitikara", "Shchuchinsk", "Aral",
    "Kaskelen", "Talgar", "Esik", "Zharkent", "Ushtobe", "Sarkand", "Shu", "Karatau",
    "Zhanatas", "Aksay", "Khromtau", "Ayagoz",
]

N_REGIONS = 50
N_SUBNETS = 1000
SUBNETS_PER_REGION = 20
N_GROUPS = 25
N_DVR = 4
N_EDGE = 9
N_CHANNELS = 250
N_PROGRAMS = 20
EDGES_PER_GROUP = 5
DVRS_PER_GROUP = 2
EDGE_HTTPS = {4, 8}  # edge4 and edge8 listen on 443, so https redirects show up

PROTOCOLS = ["HLS", "MPD"]
ENCRYPTIONS = ["NONE", "CENC", "WIDEVINE", "PLAYREADY"]
CODEC_SUFFIX = {"NONE": "", "CENC": "_cenc", "WIDEVINE": "_wv", "PLAYREADY": "_pr"}
MANIFEST = {"HLS": "index.m3u8", "MPD": "manifest.mpd"}

# Loopback subnets (subnet index -> cidr), so that local requests route. The most specific one
# for 127.0.0.1 is the /24; each sits in a different region. Host bits set on purpose in two
# of them, as in the original seed set.
LOOPBACK_SUBNETS = {
    0: "127.0.0.0/8",
    1: "::1/128",
    25: "127.0.0.1/16",
    47: "127.0.0.0/20",
    105: "127.0.0.1/24",
}

# First octets of public-looking IPv4 space (no private, loopback, multicast or reserved).
V4_FIRST_OCTETS = [
    2, 5, 31, 37, 46, 62, 77, 78, 79, 80, 81, 82, 83, 85, 86, 87, 88, 89, 91, 92, 93, 94, 95,
    109, 145, 176, 178, 185, 188, 194, 195, 212, 213, 217,
]
# (prefix length, weight): /22, /21, /20, /19 and /24 most common, some /14-/18.
V4_PREFIXES = [
    (24, 18), (22, 18), (21, 16), (20, 14), (19, 12), (23, 6),
    (18, 4), (17, 3), (16, 3), (15, 2), (14, 2),
]
V6_SHARE = 0.05
V6_PREFIXES = [(32, 1), (40, 2), (44, 2), (48, 6), (56, 4), (60, 2), (64, 5)]


def weighted(rng, choices):
    values = [v for v, _ in choices]
    weights = [w for _, w in choices]
    return rng.choices(values, weights=weights, k=1)[0]


def random_v4_cidr(rng):
    prefix = weighted(rng, V4_PREFIXES)
    addr = (rng.choice(V4_FIRST_OCTETS) << 24) | rng.getrandbits(24)
    if rng.random() < 0.1:
        # Host bits set in the text (e.g. 95.25.252.200/24); the router truncates.
        return f"{ipaddress.IPv4Address(addr)}/{prefix}"
    net = ipaddress.IPv4Network((addr, prefix), strict=False)
    return str(net)


def random_v6_cidr(rng):
    prefix = weighted(rng, V6_PREFIXES)
    # Under the documentation range 2001:db8::/32.
    addr = (0x20010DB8 << 96) | (rng.getrandbits(32) << 64)
    net = ipaddress.IPv6Network((addr, prefix), strict=False)
    return str(net)


def build():
    rng = random.Random(SEED)
    assert len(REGION_NAMES) == N_REGIONS and len(set(REGION_NAMES)) == N_REGIONS

    # Servers: 1-4 DVR, 5-13 EDGE.
    servers = []
    for n in range(1, N_DVR + 1):
        servers.append({
            "id": n, "type": "DVR", "domain_name": f"dvr{n}.{DOMAIN}", "ip": f"192.0.2.{n}",
            "port": 80, "status": "ACTIVE", "availability": True, "weight": 30,
            "prefix": f"dvr{n}", "healthcheck_enabled": True, "healthcheck_path": "/healthcheck",
        })
    for n in range(1, N_EDGE + 1):
        servers.append({
            "id": N_DVR + n, "type": "EDGE", "domain_name": f"edge{n}.{DOMAIN}",
            "ip": f"192.0.2.{100 + n}", "port": 443 if n in EDGE_HTTPS else 80,
            "status": "ACTIVE", "availability": True, "weight": rng.randint(21, 51),
            "prefix": None, "healthcheck_enabled": True, "healthcheck_path": "/healthcheck",
        })
    dvr_ids = [s["id"] for s in servers if s["type"] == "DVR"]
    edge_ids = [s["id"] for s in servers if s["type"] == "EDGE"]

    # Server groups: a sliding window of 5 of the 9 edges and 2 of the 4 DVRs.
    server_groups = []
    for g in range(N_GROUPS):
        edges = [edge_ids[(g + k) % N_EDGE] for k in range(EDGES_PER_GROUP)]
        dvrs = [dvr_ids[(g + k) % N_DVR] for k in range(DVRS_PER_GROUP)]
        server_groups.append({
            "id": g + 1, "name": f"name{g}", "status": "ACTIVE",
            "server_ids": sorted(edges) + sorted(dvrs),
        })
    group_ids = [g["id"] for g in server_groups]

    # Regions: about 12 groups each (every group carries edges, so every region has some).
    regions = []
    for r, name in enumerate(REGION_NAMES):
        k = rng.randint(10, 14)
        regions.append({
            "id": r + 1, "name": name, "status": "ACTIVE",
            "server_group_ids": sorted(rng.sample(group_ids, k)),
        })

    # Subnets: subnet i belongs to region i // 20.
    subnets = []
    for i in range(N_SUBNETS):
        if i in LOOPBACK_SUBNETS:
            cidr = LOOPBACK_SUBNETS[i]
        elif rng.random() < V6_SHARE:
            cidr = random_v6_cidr(rng)
        else:
            cidr = random_v4_cidr(rng)
        subnets.append({
            "id": i + 1, "name": f"name{i}", "cidr": cidr,
            "region_id": regions[i // SUBNETS_PER_REGION]["id"],
        })

    # Linear channels and their live streams (HLS/MPD x NONE/CENC/WIDEVINE/PLAYREADY).
    linear_channels = []
    tv_streams = []
    for c in range(N_CHANNELS):
        epg = f"epg_{c}"
        linear_channels.append({
            "id": c + 1, "epg_id": epg, "name": f"{epg}_name", "code_name": f"{epg}_code_name",
            "dvr_enabled": True, "server_group_id": rng.choice(group_ids),
        })
        for protocol in PROTOCOLS:
            for encryption in ENCRYPTIONS:
                codec = protocol.lower() + CODEC_SUFFIX[encryption]
                tv_streams.append({
                    "id": len(tv_streams) + 1, "linear_channel_id": c + 1,
                    "stream_path": f"/live/{epg}/{codec}/{MANIFEST[protocol]}",
                    "status": "ACTIVE", "protocol": protocol, "encryption": encryption,
                })

    # Programs (program i on channel epg_i) and their completed catch-up records.
    programs = []
    program_records = []
    for p in range(N_PROGRAMS):
        epg = f"p_epg_{p}"
        programs.append({
            "id": p + 1, "linear_channel_id": linear_channels[p]["id"], "epg_id": epg,
            "name": f"{epg}_name",
        })
        for protocol in PROTOCOLS:
            for encryption in ENCRYPTIONS:
                codec = protocol.lower() + CODEC_SUFFIX[encryption]
                program_records.append({
                    "id": len(program_records) + 1, "program_id": p + 1,
                    "server_id": dvr_ids[len(program_records) % N_DVR], "status": "COMPLETED",
                    "protocol": protocol, "encryption": encryption,
                    "path": f"{epg}/{codec}/{MANIFEST[protocol]}",
                })

    return {
        "version": VERSION,
        "regions": regions,
        "subnets": subnets,
        "server_groups": server_groups,
        "servers": servers,
        "linear_channels": linear_channels,
        "tv_streams": tv_streams,
        "programs": programs,
        "program_records": program_records,
    }


HEADER = """\
# Demo routing snapshot for the CtiKaltura request router.
#
# GENERATED by `python3 conf/gen_routing.py` -- do not edit by hand; change the generator
# and re-run it instead. The admin API serves the same shape as JSON.
#
# Counts: {counts}.
# Requests from 127.0.0.1 and ::1 route (loopback subnets in regions with eligible edges),
# e.g. /btv/live/hls/epg_0, /btv/catchup/mpd_wv/p_epg_3, /vod/w/w/w.
"""


def render(doc):
    counts = ", ".join(f"{len(v)} {k}" for k, v in doc.items() if isinstance(v, list))
    out = [HEADER.format(counts=counts), f"version: {json.dumps(doc['version'])}\n"]
    for key, items in doc.items():
        if not isinstance(items, list):
            continue
        out.append(f"\n{key}:\n")
        for item in items:
            out.append(f"  - {json.dumps(item, ensure_ascii=True)}\n")
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# --check: re-read the file and verify counts, references and loopback routing.


def load(path):
    text = Path(path).read_text(encoding="utf-8")
    try:
        import yaml  # optional; the generator itself never needs it
    except ImportError:
        yaml = None
    if yaml is not None:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        return yaml.load(text, Loader=loader), "PyYAML"
    # Fallback for this generator's own layout: `key: scalar`, `key:` and `  - {json}` lines.
    doc, current = {}, None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line.startswith("  - "):
            doc[current].append(json.loads(line[4:]))
        else:
            key, _, value = line.partition(":")
            if value.strip():
                doc[key] = json.loads(value)
            else:
                current = key
                doc[key] = []
    return doc, "line parser"


def check(path):
    doc, how = load(path)
    errors = []

    def expect(cond, message):
        if not cond:
            errors.append(message)

    expected = {
        "regions": N_REGIONS, "subnets": N_SUBNETS, "server_groups": N_GROUPS,
        "servers": N_DVR + N_EDGE, "linear_channels": N_CHANNELS,
        "tv_streams": N_CHANNELS * 8, "programs": N_PROGRAMS,
        "program_records": N_PROGRAMS * 8,
    }
    expect(isinstance(doc.get("version"), str), "version is not a string")
    for key, n in expected.items():
        expect(len(doc.get(key, [])) == n, f"{key}: {len(doc.get(key, []))} != {n}")
        ids = [e["id"] for e in doc.get(key, [])]
        expect(ids == list(range(1, len(ids) + 1)), f"{key}: ids are not 1..{len(ids)}")

    servers = {s["id"]: s for s in doc["servers"]}
    groups = {g["id"]: g for g in doc["server_groups"]}
    regions = {r["id"]: r for r in doc["regions"]}
    channels = {c["id"]: c for c in doc["linear_channels"]}
    programs = {p["id"]: p for p in doc["programs"]}

    for s in servers.values():
        expect(s["type"] in ("EDGE", "DVR"), f"server {s['id']}: type {s['type']}")
        expect(s["domain_name"].endswith(".test"), f"server {s['id']}: not a .test domain")
        expect(isinstance(s["weight"], int) and s["weight"] > 0, f"server {s['id']}: weight")
        expect((s["prefix"] is None) == (s["type"] == "EDGE"), f"server {s['id']}: prefix")
        ipaddress.ip_address(s["ip"])
    for g in groups.values():
        for sid in g["server_ids"]:
            expect(sid in servers, f"group {g['id']}: no server {sid}")
    for r in regions.values():
        expect(r["server_group_ids"], f"region {r['id']}: no groups")
        for gid in r["server_group_ids"]:
            expect(gid in groups, f"region {r['id']}: no group {gid}")
    for s in doc["subnets"]:
        expect(s["region_id"] in regions, f"subnet {s['id']}: no region {s['region_id']}")
        ipaddress.ip_network(s["cidr"], strict=False)
    for c in channels.values():
        expect(c["server_group_id"] in groups, f"channel {c['id']}: no group")
    for t in doc["tv_streams"]:
        expect(t["linear_channel_id"] in channels, f"stream {t['id']}: no channel")
        expect(t["stream_path"].startswith("/"), f"stream {t['id']}: path")
    for p in programs.values():
        expect(p["linear_channel_id"] in channels, f"program {p['id']}: no channel")
    for rec in doc["program_records"]:
        expect(rec["program_id"] in programs, f"record {rec['id']}: no program")
        expect(servers.get(rec["server_id"], {}).get("type") == "DVR", f"record {rec['id']}: not a DVR")

    # Eligible edges per region, as the router computes them.
    def eligible(region):
        if region["status"] != "ACTIVE":
            return []
        out = set()
        for gid in region["server_group_ids"]:
            g = groups.get(gid)
            if not g or g["status"] != "ACTIVE":
                continue
            for sid in g["server_ids"]:
                s = servers.get(sid)
                if s and s["type"] == "EDGE" and s["status"] == "ACTIVE" and s["availability"] and s["weight"] > 0:
                    out.add(sid)
        return sorted(out)

    for r in regions.values():
        expect(eligible(r), f"region {r['id']} ({r['name']}) has no eligible edge")

    networks = [(ipaddress.ip_network(s["cidr"], strict=False), s) for s in doc["subnets"]]

    def route(ip_text):
        """Most specific subnet first (ties by subnet id); first region with edges wins."""
        ip = ipaddress.ip_address(ip_text)
        chain = sorted(((n, s) for n, s in networks if n.version == ip.version and ip in n),
                       key=lambda ns: (-ns[0].prefixlen, ns[1]["id"]))
        for net, s in chain:
            edges = eligible(regions[s["region_id"]])
            if edges:
                return s, regions[s["region_id"]], edges
        return None

    routes = {}
    for ip in ("127.0.0.1", "::1"):
        routes[ip] = route(ip)
        expect(routes[ip] is not None, f"{ip} does not route")
    for net, s in networks:
        if net.version == 4 and net.subnet_of(ipaddress.ip_network("127.0.0.0/8")) or s["cidr"] == "::1/128":
            expect(eligible(regions[s["region_id"]]), f"loopback subnet {s['cidr']} region has no edges")

    # Content lookups for the example URLs.
    def live(epg, protocol, encryption):
        cid = next(c["id"] for c in channels.values() if c["epg_id"] == epg)
        for enc in [encryption] + (["CENC"] if encryption in ("WIDEVINE", "PLAYREADY") else []):
            for t in doc["tv_streams"]:
                if (t["linear_channel_id"], t["protocol"], t["encryption"], t["status"]) == (cid, protocol, enc, "ACTIVE"):
                    return t["stream_path"]
        return None

    def catchup(epg, protocol, encryption):
        pid = next(p["id"] for p in programs.values() if p["epg_id"] == epg)
        for enc in [encryption] + (["CENC"] if encryption in ("WIDEVINE", "PLAYREADY") else []):
            for rec in doc["program_records"]:
                if (rec["program_id"], rec["protocol"], rec["encryption"], rec["status"]) == (pid, protocol, enc, "COMPLETED"):
                    return f"/dvr/{servers[rec['server_id']]['prefix']}/{rec['path']}"
        return None

    for c in channels.values():
        for protocol in PROTOCOLS:
            for enc in ENCRYPTIONS:
                expect(live(c["epg_id"], protocol, enc), f"live {c['epg_id']} {protocol} {enc} missing")
    for p in programs.values():
        for protocol in PROTOCOLS:
            for enc in ENCRYPTIONS:
                expect(catchup(p["epg_id"], protocol, enc), f"catchup {p['epg_id']} {protocol} {enc} missing")

    print(f"{path}: {Path(path).stat().st_size} bytes, loaded with {how}, version {doc['version']!r}")
    for key in expected:
        print(f"  {key}: {len(doc[key])}")
    v6 = sum(1 for n, _ in networks if n.version == 6)
    print(f"  subnets: {len(networks) - v6} IPv4, {v6} IPv6")
    for ip, found in routes.items():
        if found:
            s, r, edges = found
            names = ", ".join(f"{servers[e]['domain_name']}:{servers[e]['port']}(w{servers[e]['weight']})" for e in edges)
            print(f"  {ip} -> subnet {s['id']} {s['name']} {s['cidr']} -> region {r['id']} {r['name']}; edges: {names}")
    print("  /btv/live/hls/epg_0          -> <edge>" + str(live("epg_0", "HLS", "NONE")))
    print("  /btv/catchup/mpd_wv/p_epg_3  -> <edge>" + str(catchup("p_epg_3", "MPD", "WIDEVINE")))
    print("  /vod/w/w/w                   -> <edge>/vod/w/w/w")
    if errors:
        print(f"{len(errors)} problem(s):", file=sys.stderr)
        for e in errors[:50]:
            print(f"  {e}", file=sys.stderr)
        return 1
    print("OK")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default=str(Path(__file__).resolve().with_name("routing.yaml")),
                        help="output file (or the file to check); default: routing.yaml next to this script")
    parser.add_argument("--check", action="store_true", help="verify an existing snapshot instead of writing one")
    args = parser.parse_args(argv)
    if args.check:
        return check(args.path)
    text = render(build())
    Path(args.path).write_text(text, encoding="utf-8", newline="\n")
    print(f"wrote {args.path} ({len(text.encode())} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
