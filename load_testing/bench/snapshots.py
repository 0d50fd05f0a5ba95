#!/usr/bin/env python3
"""Snapshot variants for the nginx benchmark, derived from one snapshot (the demo by default).

Usage:
    python3 load_testing/bench/snapshots.py exact OUT.json [--from SNAPSHOT]
    python3 load_testing/bench/snapshots.py proxy OUT.json --port P [--ip 127.0.0.1] [--from SNAPSHOT]

exact: every region has at most ONE eligible edge, so the router's answers are deterministic
       and an equivalence check can compare Locations byte for byte. It also exercises the
       rules the demo data never triggers: regions without an eligible edge (the client falls
       back to the next less specific subnet), duplicate CIDRs, nested networks, IPv4-mapped
       and host-bit CIDRs, quarantined subnets, ports other than 80/443, inactive and
       unavailable edges, inactive groups and regions, missing encryptions (wv/pr -> CENC),
       inactive streams, unknown protocols, unnormalised paths, DVR prefixes that are empty or
       full of slashes, and epg ids that differ only in case.
proxy: every EDGE gets `ip` (default 127.0.0.1) and `port` P: the fake edge of the proxy
       benchmark. Nothing else changes.
Output is JSON (the router and gen_nginx.py read JSON and YAML alike).
"""

import argparse
import copy
import json
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
from ctk.snapshot import DEMO, SnapshotError, load_snapshot  # noqa: E402

# Regions without an eligible edge in the exact variant, and why.
NO_EDGE_REGIONS = {
    6: "no groups",          # 127.0.0.1/24: 127.0.0.1 falls back ...
    3: "inactive group",     # ... past 127.0.0.0/20 to 127.0.0.1/16 (region 2)
    10: "inactive edge",
    11: "unavailable edge",
    12: "region INACTIVE",
    13: "dangling group id",
}

# Subnets added to the exact variant: (cidr, region id); ids from 2001 on.
EXTRA_SUBNETS = [
    ("10.1.0.0/16", 1),
    ("10.1.2.0/24", 6),          # no edge: falls back to 10.1.0.0/16 (region 1)
    ("10.1.2.128/25", 2),        # duplicate CIDR below: the lower id (this one) wins
    ("10.1.2.128/25", 1),
    ("10.1.3.0/24", 10),         # duplicate CIDR: first candidate has no edge ...
    ("10.1.3.0/24", 4),          # ... the next one of the same network does
    ("10.200.0.0/16", 3),        # no edge, no enclosing network: 404
    ("::ffff:10.9.0.0/112", 5),  # IPv4-mapped: 10.9.0.0/16
    ("2001:db8:aaaa::/48", 7),
    ("2001:db8:aaaa:1::/64", 11),  # no edge: falls back to the /48 (region 7)
    ("2001:db8:aaaa:2::1/64", 8),  # host bits set
    ("10.0.0.0/33", 9),          # not a CIDR: quarantined
    ("10.1.4.0/24", 999),        # no such region: quarantined
    ("10.1.5.7", 9),             # bare address: /32
]

# Addresses (X-Real-IP) that exercise the extra subnets; equivalence.py sends them.
PROBE_ADDRESSES = [
    "10.1.0.1", "10.1.2.5", "10.1.2.200", "10.1.3.9", "10.200.1.1", "10.9.3.4", "10.1.5.7",
    "10.1.5.8", "10.1.4.1", "2001:db8:aaaa::5", "2001:db8:aaaa:1::5", "2001:db8:aaaa:2::9",
    "::ffff:10.1.0.7", "::ffff:10.9.0.1",
]


def edge_ids(doc):
    return [s["id"] for s in doc["servers"] if s.get("type") == "EDGE"]


def exact_variant(doc):
    doc = copy.deepcopy(doc)
    doc["version"] = f"{doc.get('version', 'snapshot')}-exact"
    servers = {s["id"]: s for s in doc["servers"]}
    edges = edge_ids(doc)[:9]
    if len(edges) < 9:
        sys.exit("exact variant: needs a snapshot with at least 9 EDGE servers (the demo has 9)")
    ports = [80, 443, 8080, 443, 80, 81, 80, 80, 80]
    for sid, port in zip(edges, ports):
        servers[sid]["port"] = port
        servers[sid]["availability"] = True
        servers[sid]["status"] = "ACTIVE"
    inactive_edge, unavailable_edge = edges[8], edges[7]
    servers[inactive_edge]["status"] = "INACTIVE"
    servers[unavailable_edge]["availability"] = False
    # DVR prefixes: keep one, make one empty, one full of slashes.
    dvrs = [s for s in doc["servers"] if s.get("type") == "DVR"]
    if len(dvrs) >= 3:
        dvrs[1]["prefix"] = None
        dvrs[2]["prefix"] = "/a//b/"

    # One group per usable edge (101..107), plus groups that yield nothing.
    groups = doc["server_groups"]
    for k, sid in enumerate(edges[:7]):
        groups.append({"id": 101 + k, "name": f"single{k}", "status": "ACTIVE", "server_ids": [sid]})
    groups.append({"id": 110, "name": "inactive", "status": "INACTIVE", "server_ids": [edges[0]]})
    groups.append({"id": 111, "name": "inactive-edge", "status": "ACTIVE", "server_ids": [inactive_edge]})
    groups.append({"id": 112, "name": "unavailable-edge", "status": "ACTIVE", "server_ids": [unavailable_edge]})
    for r in doc["regions"]:
        rid = r["id"]
        r["status"] = "ACTIVE"
        r["server_group_ids"] = [101 + (rid - 1) % 7]
    special = {6: [], 3: [110], 10: [111], 11: [112], 13: [999]}
    for r in doc["regions"]:
        if r["id"] in special:
            r["server_group_ids"] = special[r["id"]]
        if r["id"] == 12:
            r["status"] = "INACTIVE"

    next_id = max(s["id"] for s in doc["subnets"]) + 1
    next_id = max(next_id, 2001)
    for k, (cidr, region) in enumerate(EXTRA_SUBNETS):
        doc["subnets"].append({"id": next_id + k, "name": f"extra{k}", "cidr": cidr, "region_id": region})

    # Live streams.
    streams = doc["tv_streams"]
    channels = {c["epg_id"]: c["id"] for c in doc["linear_channels"]}

    def find(epg, protocol, encryption):
        cid = channels[epg]
        return [t for t in streams if t["linear_channel_id"] == cid and t["protocol"] == protocol
                and t.get("encryption", "NONE") == encryption]

    def drop(rows):
        for t in rows:
            streams.remove(t)

    drop(find("epg_0", "HLS", "WIDEVINE"))                         # hls_wv -> CENC
    drop(find("epg_1", "HLS", "CENC"))                             # hls_cenc 404, hls_pr keeps its own
    drop(find("epg_2", "MPD", "WIDEVINE") + find("epg_2", "MPD", "CENC"))  # mpd_wv, mpd_cenc 404
    for t in find("epg_3", "HLS", "PLAYREADY"):
        t["status"] = "INACTIVE"                                   # hls_pr -> CENC
    drop(find("epg_4", "MPD", "NONE"))                             # mpd 404, no fallback
    for t in find("epg_5", "HLS", "NONE"):
        t["stream_path"] = "live//epg_5///x.m3u8"                  # normalised
    next_stream = max(t["id"] for t in streams) + 1
    streams.append({"id": next_stream, "linear_channel_id": channels["epg_6"], "status": "ACTIVE",
                    "stream_path": "/loser/epg_6.m3u8", "protocol": "HLS", "encryption": "NONE"})
    for t in find("epg_7", "HLS", "NONE"):
        del t["encryption"]                                        # absent = NONE
    for t in find("epg_8", "MPD", "NONE"):
        t["protocol"] = "DASH"                                     # never matches
    for t in find("epg_9", "HLS", "NONE"):
        t["stream_path"] = "a b"                                   # quarantined
    # Case: two channels whose ids differ only in case, and one more mixed-case id.
    next_channel = max(c["id"] for c in doc["linear_channels"]) + 1
    group = doc["linear_channels"][0].get("server_group_id")
    for k, epg in enumerate(["Epg_Case", "epg_case", "ABC"]):
        cid = next_channel + k
        doc["linear_channels"].append({"id": cid, "epg_id": epg, "name": epg, "code_name": epg,
                                       "dvr_enabled": False, "server_group_id": group})
        for j, (protocol, encryption) in enumerate([("HLS", "NONE"), ("MPD", "CENC")]):
            streams.append({"id": next_stream + 1 + 2 * k + j, "linear_channel_id": cid, "status": "ACTIVE",
                            "stream_path": f"/live/{epg}/{protocol.lower()}/{k}", "protocol": protocol,
                            "encryption": encryption})

    # Catch-up records.
    records = doc["program_records"]
    programs = {p["epg_id"]: p["id"] for p in doc["programs"]}

    def rec(epg, protocol, encryption):
        return [r for r in records if r["program_id"] == programs[epg] and r["protocol"] == protocol
                and r.get("encryption", "NONE") == encryption]

    for r in rec("p_epg_0", "HLS", "WIDEVINE"):
        records.remove(r)                                          # hls_wv -> CENC
    for r in rec("p_epg_1", "HLS", "NONE"):
        r["status"] = "RECORDING"                                  # 404
    for r in rec("p_epg_2", "MPD", "NONE"):
        r["server_id"] = edges[0]                                  # not a DVR: quarantined
    for r in rec("p_epg_3", "HLS", "NONE"):
        r["path"] = "//deep//path/x.m3u8"                          # normalised
    return doc


def proxy_variant(doc, ip, port):
    doc = copy.deepcopy(doc)
    doc["version"] = f"{doc.get('version', 'snapshot')}-proxy-{port}"
    for s in doc["servers"]:
        if s.get("type") == "EDGE":
            s["ip"] = ip
            s["port"] = port
    return doc


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("exact", help="single-edge regions and every corner of the routing rules")
    e.add_argument("out")
    e.add_argument("--from", dest="src", default=str(DEMO))
    p = sub.add_parser("proxy", help="every EDGE at one ip:port (the fake edge)")
    p.add_argument("out")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ip", default="127.0.0.1")
    p.add_argument("--from", dest="src", default=str(DEMO))
    args = parser.parse_args(argv)
    try:
        doc = load_snapshot(args.src)
    except SnapshotError as e:
        sys.exit(str(e))
    doc = exact_variant(doc) if args.cmd == "exact" else proxy_variant(doc, args.ip, args.port)
    Path(args.out).write_text(json.dumps(doc, indent=None, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"wrote {args.out} ({args.cmd} variant of {args.src})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
