"""The routing model gen_nginx.py turns into nginx tables (`geo`, `split_clients`, `map`s).

nginx needs the router's decisions as tables up front, so they are computed here from the
snapshot; the router's own tools answer one request at a time (`cti-kaltura-snapshot route`
is used by bench/equivalence.py, `check` by gen_nginx.py, see below). Each piece mirrors one
router behaviour:

  normalize_path       src/vocab/path.rs normalize_path_into: runs of / collapsed, leading /
  is_path_like         src/vocab/path.rs is_path_like: visible ASCII, no ? # \\, no ://
  is_epg_id            src/vocab/path.rs is_epg_id: [A-Za-z0-9_]+
  is_domain_name       src/snapshot/compile (servers) is_domain_name
  parse_cidr           src/vocab/net.rs parse_cidr, and ipv4_mapped_as_ipv4 of the subnets
                       step: addr/len truncated to the network, a bare address as /32 or
                       /128, ::ffff:a.b.c.d/96+n as a.b.c.d/n
  unique_by_id         src/snapshot/compile parse_all: an entity without a required field or
                       with a non-integer id is skipped, a repeated id after its first
  Model.servers        the servers step: a bad domain, port, ip, weight or prefix skips the
                       server (an EDGE must weigh > 0); base_urls: https://host for 443,
                       http://host for 80, http://host:port otherwise (live and catch-up),
                       always http://host for VOD and static
  Model.regions        the regions step, is_eligible_edge: a region's edges are the EDGE,
                       ACTIVE, available, weighted members of its ACTIVE groups, none when
                       the region is not ACTIVE
  Model.networks       the subnets step: subnets with a valid CIDR and a known region, grouped
                       by network, candidates in subnet-id order
  effective_pools      routing's fallback chain (src/routing/decide.rs, prefix_table.rs): the
                       most specific network holding the client, its candidates by subnet
                       id, then each enclosing network, to the first region with an edge
  live, catchup,       the content step (src/snapshot/compile content): ACTIVE streams and
  content_map          COMPLETED records with a known protocol and encryption, lowest id per
                       (epg, protocol, encryption); a request for wv or pr falls back to
                       CENC, none and cenc never fall back (src/vocab/kinds.rs acceptable);
                       records under /dvr/<DVR prefix>/<path>, normalised
  counts               what `cti-kaltura-snapshot check` prints as "routable regions, eligible
                       edges, live channels, catch-up programs"

How they are proven equal to the router: bench/check_equivalence.sh runs the router and the
generated nginx side by side and bench/equivalence.py sends both the same requests (every
codec, mixed-case and unknown epg ids, clients in sampled networks and on every corner of
bench/snapshots.py's `exact` variant: fallback past edgeless, inactive or dangling regions,
duplicate, nested, IPv4-mapped, host-bit and quarantined CIDRs, odd ports, wv/pr fallback,
inactive streams, unknown protocols, unnormalised paths and DVR prefixes), comparing status,
Location (byte for byte on `exact`, the edge by the eligible set `cti-kaltura-snapshot route`
names on the demo data) and body: 0 mismatches is required. gen_nginx.py also compares
counts() with `cti-kaltura-snapshot check` on every snapshot it is given.
"""

import ipaddress
import re

PROTOCOLS = {"HLS": "hls", "MPD": "mpd"}
ENCRYPTIONS = ["NONE", "CENC", "WIDEVINE", "PLAYREADY"]
SUFFIX = {"NONE": "", "CENC": "_cenc", "WIDEVINE": "_wv", "PLAYREADY": "_pr"}
ACCEPTABLE = {
    "NONE": ["NONE"],
    "CENC": ["CENC"],
    "WIDEVINE": ["WIDEVINE", "CENC"],
    "PLAYREADY": ["PLAYREADY", "CENC"],
}

EPG_RE = re.compile(r"[A-Za-z0-9_]+\Z")


def normalize_path(path):
    """src/vocab/path.rs normalize_path_into: runs of / collapsed, leading / added."""
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
    """src/vocab/net.rs parse_cidr + ipv4_mapped_as_ipv4: `addr/len` truncated, or a bare address."""
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

    def counts(self):
        """The figures `cti-kaltura-snapshot check` prints about what can route."""
        routable = [edges for edges in self.regions.values() if edges]
        return {
            "routable_regions": len(routable),
            "eligible_edges": len({sid for edges in routable for sid, _ in edges}),
            "live_channels": len({k[0] for k in self.live}),
            "catchup_programs": len({k[0] for k in self.catchup}),
        }
