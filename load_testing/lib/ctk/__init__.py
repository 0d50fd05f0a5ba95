"""ctk: the Python pieces every load_testing/ script shares (issue 13), standard library only.

    rawhttp   raw-socket HTTP/1.1 client: request bytes as given, one response by its
              Content-Length, close vs reset, timeouts; url_get for the management API
    prom      Prometheus text format: samples by name and labels, sums
    fake      fake edge and admin-API servers (threaded, loopback only, bounded)
    router    the router as a child process: start, wait for /readyz, SIGTERM then SIGKILL
    config    router configs derived from conf/cti-kaltura.yaml by exact text edits
    snapshot  reading routing snapshots (JSON or YAML), `cti-kaltura-snapshot check` counts
    routing   the routing model gen_nginx.py turns into nginx tables (what it mirrors, and
              how bench/equivalence.py proves it: see its docstring)
    k6        k6 --summary-export files
    procfs    /proc figures: RSS, open fds, per-core CPU time

A script run as `python3 load_testing/<dir>/<script>.py` finds it with

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))

Shell scripts use its command line (__main__.py) through lt_ctk in lib/router.sh, i.e.
`PYTHONPATH=load_testing/lib python3 -B -m ctk ...`.
"""

from pathlib import Path

LT_DIR = Path(__file__).resolve().parents[2]
REPO = LT_DIR.parent
