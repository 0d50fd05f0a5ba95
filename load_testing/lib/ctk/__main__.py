"""Command line of ctk for the shell scripts (lt_ctk in lib/router.sh runs
`PYTHONPATH=load_testing/lib python3 -B -m ctk ...`):

  config SRC DST [--port P --mgmt-port M --runtime-dir D [--health]] [--routing FILE]
         [--bench [--vod-proxy]] [--trusted CIDR,CIDR] [--access-log-json] [--http KEY=VALUE]...
      writes DST: SRC (a router config) with those edits (ctk.config); exit 1 when an edit
      does not apply exactly once
  k6-line FILE      one summary line of a k6 --summary-export file (ctk.k6.line)
  k6-figures FILE   "p50 p99 rate checks_ok checks_all failed" (ctk.k6.figures)
  selftest [--bin ROUTER]   quick check of the module (ctk.selftest)
"""

import argparse
import sys

from . import config, k6, selftest


def cmd_config(a):
    text = open(a.src).read()
    try:
        if a.port is not None:
            if a.mgmt_port is None or a.runtime_dir is None:
                sys.exit("config: --port needs --mgmt-port and --runtime-dir")
            text = config.load_test(text, a.port, a.mgmt_port, a.runtime_dir, a.health, a.src)
        if a.routing:
            text = config.routing(text, a.routing, a.src)
        if a.bench:
            text = config.bench(text, a.vod_proxy, a.src)
        if a.trusted:
            text = config.trusted_proxies(text, a.trusted.split(","), a.src)
        if a.access_log_json:
            text = config.access_log_json(text)
        for kv in a.http:
            key, _, value = kv.partition("=")
            text = config.http_setting(text, key, value, a.src)
    except config.EditError as e:
        sys.exit(str(e))
    config.write_atomic(a.dst, text)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python3 -m ctk", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("config", help="derive a router config")
    c.add_argument("src")
    c.add_argument("dst")
    c.add_argument("--port", type=int)
    c.add_argument("--mgmt-port", type=int)
    c.add_argument("--runtime-dir", help="pid file and upgrade socket go here")
    c.add_argument("--health", action="store_true", help="keep router.health.enabled as it is")
    c.add_argument("--routing", help="router.routing.file")
    c.add_argument("--bench", action="store_true", help="threads 1, no work stealing, access log off")
    c.add_argument("--vod-proxy", action="store_true", help="with --bench: VOD in proxy mode")
    c.add_argument("--trusted", help="router.client_ip.trusted_proxies, comma-separated")
    c.add_argument("--access-log-json", action="store_true", help="router.access_log on, JSON")
    c.add_argument("--http", action="append", default=[], metavar="KEY=VALUE", help="router.http.KEY")
    c.set_defaults(fn=cmd_config)
    for name, fn in (("k6-line", k6.line), ("k6-figures", k6.figures)):
        s = sub.add_parser(name)
        s.add_argument("file")
        s.set_defaults(fn=lambda a, fn=fn: print(fn(a.file)))
    s = sub.add_parser("selftest")
    s.add_argument("--bin", help="also start this router binary, ask it, stop it")
    s.set_defaults(fn=lambda a: selftest.main(a.bin))
    a = p.parse_args(argv)
    return a.fn(a) or 0


if __name__ == "__main__":
    sys.exit(main())
