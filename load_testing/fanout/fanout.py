#!/usr/bin/env python3
"""Many routers following one database (issue 17): a throwaway PostgreSQL cluster with the
original admin schema and a generated snapshot loaded into it, one cti-kaltura-admin-api, N
routers on loopback fed by it. Each change is an UPDATE committed with psql; the script then
asks every router, round robin, for the changed stream until each one redirects to the new
path, and reports per change the time from commit to served on the first, median and last
router, the admin API's CPU time and the bytes it sent. Runs with router long-poll on (the
default) and off (polling every second), and an idle window in each mode.

    python3 load_testing/fanout/fanout.py --routers 50 --changes 5
    python3 load_testing/fanout/fanout.py --scale full --routers 5 --changes 3 --modes long-poll

Everything listens on 127.0.0.1 and is stopped at the end (also on Ctrl-C). As root, the
PostgreSQL server runs as the `postgres` user (it refuses root).
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
from ctk import REPO  # noqa: E402
from ctk import prom  # noqa: E402
from ctk.rawhttp import fetch, url_get  # noqa: E402
from ctk.router import Router  # noqa: E402

TABLE_COLUMNS = {
    "regions": ["id", "name", "status"],
    "subnets": ["id", "cidr", "name", "region_id"],
    "server_groups": ["id", "name", "status"],
    "servers": ["id", "domain_name", "ip", "port", "weight", "prefix", "healthcheck_enabled",
                "healthcheck_path", "type", "status", "availability"],
    "linear_channels": ["id", "name", "code_name", "dvr_enabled", "epg_id", "server_group_id"],
    "tv_streams": ["id", "stream_path", "status", "protocol", "encryption", "linear_channel_id"],
    "programs": ["id", "name", "epg_id", "linear_channel_id"],
    "program_records": ["id", "path", "program_id", "server_id", "encryption", "protocol",
                        "status"],
}


_HANDED_OUT = set()


def free_port():
    """A loopback port free now and not handed out before by this script."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def pg_bin():
    versions = sorted(int(p.name) for p in Path("/usr/lib/postgresql").iterdir()
                      if p.name.isdigit() and (p / "bin/initdb").exists())
    if not versions:
        sys.exit("no PostgreSQL in /usr/lib/postgresql: run .ci/install-deps")
    return Path(f"/usr/lib/postgresql/{versions[-1]}/bin")


class Postgres:
    def __init__(self, workdir):
        self.bin, self.port = pg_bin(), free_port()
        self.data = workdir / "pgdata"
        self.data.mkdir()
        self.as_postgres = []
        if os.geteuid() == 0:
            os.chmod(workdir, 0o755)
            shutil.chown(self.data, user="postgres")
            self.as_postgres = ["runuser", "-u", "postgres", "--"]
        self.server("initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "-E", "UTF8",
                    "--no-sync")
        options = (f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                   "-c shared_buffers=512MB -c max_connections=200")
        self.server("pg_ctl", "-D", self.data, "-o", options, "-l", self.data / "server.log",
                    "-w", "-t", "60", "start")
        self.running = True
        self.psql("CREATE DATABASE kaltura_admin", db="postgres")

    def server(self, name, *args):
        subprocess.run(self.as_postgres + [str(self.bin / name)] + [str(a) for a in args],
                       check=True, stdout=subprocess.DEVNULL)

    @property
    def url(self):
        return f"postgresql://postgres@127.0.0.1:{self.port}/kaltura_admin"

    def psql(self, sql=None, db="kaltura_admin", file=None, stdin=None):
        args = [str(self.bin / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                "-p", str(self.port), "-U", "postgres", "-d", db]
        args += ["-f", str(file)] if file else (["-c", sql] if sql else [])
        subprocess.run(args, check=True, input=stdin, stdout=subprocess.DEVNULL)

    def stop(self):
        if self.running:
            self.server("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
            self.running = False


def copy_text(rows, columns):
    def field(v):
        if v is None:
            return "\\N"
        if isinstance(v, bool):
            return "t" if v else "f"
        return str(v).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
    return "".join("\t".join(field(r.get(c)) for c in columns) + "\n" for r in rows)


def load_document(pg, document):
    """A routing snapshot document into the original schema (join tables from the id lists).
    The unique indexes are dropped first: the generator does not follow the admin's
    uniqueness rules, and the admin API does not depend on them."""
    pg.psql(file=REPO / "conf/admin-api/original-schema.sql")
    pg.psql("DO $$ DECLARE i record; BEGIN FOR i IN SELECT indexname FROM pg_indexes "
            "WHERE schemaname = 'public' AND indexdef LIKE 'CREATE UNIQUE%' AND indexname NOT LIKE '%_pkey' "
            "LOOP EXECUTE format('DROP INDEX %I', i.indexname); END LOOP; END $$")
    for table, columns in TABLE_COLUMNS.items():
        rows = document.get(table, [])
        copy = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
        pg.psql(stdin=(f"{copy};\n" + copy_text(rows, columns) + "\\.\n").encode())
    pairs = [{"region_id": r["id"], "server_group_id": g}
             for r in document.get("regions", []) for g in r.get("server_group_ids", [])]
    pg.psql(stdin=("COPY region_server_groups (region_id, server_group_id) FROM STDIN;\n"
                   + copy_text(pairs, ["region_id", "server_group_id"]) + "\\.\n").encode())
    pairs = [{"server_group_id": g["id"], "server_id": s}
             for g in document.get("server_groups", []) for s in g.get("server_ids", [])]
    pg.psql(stdin=("COPY server_group_servers (server_group_id, server_id) FROM STDIN;\n"
                   + copy_text(pairs, ["server_group_id", "server_id"]) + "\\.\n").encode())
    pg.psql("ANALYZE")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def router_config(path, port, mgmt, api_url, long_poll, timeout_secs):
    path.write_text(f"""version: 1
threads: 1
pid_file: {path.parent}/router-{port}.pid
upgrade_sock: {path.parent}/router-{port}.sock
grace_period_seconds: 0
graceful_shutdown_timeout_seconds: 1
router:
  listen: ["127.0.0.1:{port}"]
  management_listen: "127.0.0.1:{mgmt}"
  routing:
    admin_api:
      url: "{api_url}"
      poll_interval_secs: 1
      timeout_secs: {timeout_secs}
      long_poll_wait_secs: {25 if long_poll else 0}
  health:
    enabled: false
""")


def answer(port, client, target):
    try:
        r = fetch("127.0.0.1", port, target, headers=[("X-Real-IP", client)], timeout=5)
    except OSError as e:
        return f"error {e}"
    return f"{r.status} {r.header('location', '')}"


def find_client(port, document, target):
    """A client address whose live request routes (302) on the router at port."""
    for subnet in document["subnets"]:
        cidr = subnet["cidr"]
        if ":" in cidr:
            continue
        base, _ = cidr.split("/")
        a, b, c, d = (int(x) for x in base.split("."))
        client = f"{a}.{b}.{c}.{d + 1}"
        if answer(port, client, target).startswith("302 "):
            return client
    sys.exit("no subnet of the document routes the live request")


def run_mode(args, pg, api, api_url, document, long_poll, workdir, mode):
    routers = []
    for i in range(args.routers):
        port, mgmt = free_port(), free_port()
        config = workdir / f"router-{mode}-{i}.yaml"
        router_config(config, port, mgmt, api_url, long_poll, args.router_timeout)
        r = Router(args.bin_dir / "cti-kaltura", config, workdir / f"router-{mode}-{i}.log",
                   cwd=workdir, name=f"router {i}")
        r.start()
        routers.append((r, port, mgmt))
    started = time.monotonic()
    for r, _, mgmt in routers:
        try:
            r.wait_ready(f"127.0.0.1:{mgmt}", timeout=args.ready_timeout)
        except RuntimeError:
            print(r.log_text()[-3000:], file=sys.stderr)
            raise
    print(f"[{mode}] {len(routers)} routers ready in {time.monotonic() - started:.1f} s",
          flush=True)
    stream = document["tv_streams"][0]
    channel = next(c for c in document["linear_channels"] if c["id"] == stream["linear_channel_id"])
    target = f"/btv/live/hls/{channel['epg_id']}.m3u8"
    client = find_client(routers[0][1], document, target)

    def api_sent():
        text = url_get(f"http://127.0.0.1:{args.api_port}/metrics", timeout=5)[1].decode()
        return prom.total(text, "cti_kaltura_admin_api_sent_bytes_total"), \
            prom.total(text, "cti_kaltura_admin_api_answers_total")

    # Idle: what N routers cost the API when nothing changes.
    time.sleep(2)
    cpu0, (sent0, answers0) = cpu_seconds(api.pid), api_sent()
    time.sleep(args.idle_secs)
    cpu1, (sent1, answers1) = cpu_seconds(api.pid), api_sent()
    idle = {"cpu_per_s": (cpu1 - cpu0) / args.idle_secs,
            "answers_per_s": (answers1 - answers0) / args.idle_secs,
            "bytes_per_s": (sent1 - sent0) / args.idle_secs}
    print(f"[{mode}] idle: {json.dumps(idle)}", flush=True)
    changes = []
    for k in range(1, args.changes + 1):
        new_path = f"/live/fanout/{mode}/{k}/index.m3u8"
        cpu0, (sent0, answers0) = cpu_seconds(api.pid), api_sent()
        routers_cpu0 = sum(cpu_seconds(r.pid) for r, _, _ in routers)
        t0 = time.monotonic()
        pg.psql(f"UPDATE tv_streams SET stream_path = '{new_path}', updated_at = now() "
                f"WHERE id = {stream['id']}")
        committed = time.monotonic()
        served = {}
        deadline = committed + args.change_timeout
        while len(served) < len(routers) and time.monotonic() < deadline:
            for i, (_, port, _) in enumerate(routers):
                if i not in served and answer(port, client, target).endswith(new_path):
                    served[i] = time.monotonic() - committed
        cpu1, (sent1, answers1) = cpu_seconds(api.pid), api_sent()
        routers_cpu1 = sum(cpu_seconds(r.pid) for r, _, _ in routers)
        times = sorted(served.values())
        changes.append({
            "served": len(times), "psql_s": committed - t0,
            "first_s": times[0] if times else None,
            "median_s": statistics.median(times) if times else None,
            "worst_s": times[-1] if len(times) == len(routers) else None,
            "api_cpu_s": cpu1 - cpu0, "api_bytes": sent1 - sent0,
            "api_answers": answers1 - answers0,
            "routers_cpu_s": routers_cpu1 - routers_cpu0,
        })
        print(f"[{mode}] change {k}: {json.dumps(changes[-1])}", flush=True)
        time.sleep(1.5)
    for r, _, _ in routers:
        r.signal(signal.SIGTERM)
    for r, _, _ in routers:
        r.stop()
    return {"mode": mode, "routers": len(routers), "idle": idle, "changes": changes}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--routers", type=int, default=50)
    p.add_argument("--changes", type=int, default=5)
    p.add_argument("--scale", default="smoke", help="cti-kaltura-snapshot gen --scale")
    for key in ("subnets", "channels", "programs"):
        p.add_argument(f"--{key}", type=int, help=f"cti-kaltura-snapshot gen --{key}")
    p.add_argument("--modes", default="long-poll,poll", help="long-poll, poll, or both")
    p.add_argument("--no-triggers", action="store_true",
                   help="leave conf/admin-api/notify.sql out: the fingerprint notices changes")
    p.add_argument("--bin-dir", type=Path, default=REPO / "target/release")
    p.add_argument("--idle-secs", type=float, default=10)
    p.add_argument("--change-timeout", type=float, default=60)
    p.add_argument("--ready-timeout", type=float, default=120)
    p.add_argument("--router-timeout", type=int, default=3)
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args()
    args.bin_dir = args.bin_dir.resolve()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    workdir = Path(tempfile.mkdtemp(prefix="cti-kaltura-fanout-"))
    pg = api = None
    try:
        doc_path = workdir / "generated.json"
        gen = [str(args.bin_dir / "cti-kaltura-snapshot"), "gen", "--scale", args.scale,
               "-o", str(doc_path)]
        for key in ("subnets", "channels", "programs"):
            if getattr(args, key) is not None:
                gen += [f"--{key}", str(getattr(args, key))]
        subprocess.run(gen, check=True)
        document = json.loads(doc_path.read_text())
        pg = Postgres(workdir)
        t = time.monotonic()
        load_document(pg, document)
        records = sum(len(v) for v in document.values() if isinstance(v, list))
        print(f"loaded {records} records into PostgreSQL in {time.monotonic() - t:.1f} s",
              flush=True)
        if not args.no_triggers:
            pg.psql(file=REPO / "conf/admin-api/notify.sql")
        args.api_port = free_port()
        api_config = workdir / "admin-api.yaml"
        api_config.write_text(f'listen: "127.0.0.1:{args.api_port}"\n'
                              f'database: {{url: "{pg.url}", max_backoff_secs: 2}}\n')
        api = Router(args.bin_dir / "cti-kaltura-admin-api", api_config, workdir / "admin-api.log",
                     name="admin API")
        api.start()
        deadline = time.monotonic() + args.ready_timeout
        while url_get(f"http://127.0.0.1:{args.api_port}/readyz")[0] != 200:
            if time.monotonic() > deadline or not api.alive:
                sys.exit(f"admin API not ready; see {workdir / 'admin-api.log'}")
            time.sleep(0.2)
        api_url = f"http://127.0.0.1:{args.api_port}/api/routing/snapshot"
        size = url_get(f"http://127.0.0.1:{args.api_port}/metrics")[1].decode()
        print("admin API ready: snapshot of "
              f"{prom.total(size, 'cti_kaltura_admin_api_snapshot_bytes'):.0f} bytes "
              f"({prom.total(size, 'cti_kaltura_admin_api_snapshot_gzip_bytes'):.0f} gzipped)",
              flush=True)
        results = {"records": records, "scale": args.scale, "triggers": not args.no_triggers,
                   "modes": []}
        for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
            results["modes"].append(run_mode(args, pg, api, api_url, document,
                                             mode == "long-poll", workdir, mode))
        print(json.dumps(results, indent=1))
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
    finally:
        if api is not None:
            api.stop()
        if pg is not None:
            pg.stop()
        if not os.environ.get("FANOUT_KEEP"):
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"kept {workdir}", file=sys.stderr)


if __name__ == "__main__":
    main()
