#!/usr/bin/env bash
# Two router binaries at once in proxy mode (1 KiB body), for a direct A/B of CPU per request:
# both on the proxy snapshot and the same fake edge (bench.sh's), both pinned to SERVER_CPU,
# loaded one at a time in alternating rounds (odd rounds A first) of
#     taskset -c CLIENT_CPU wrk -t1 -c64 -dDURATIONs -s urls.lua http://127.0.0.1:PORT -- /vod/1k.bin
# CPU per request from /proc/PID/stat (utime+stime) over each round. Used with a binary run
# under an LD_PRELOAD shim of this folder, e.g. (docs/performance.md, "Where the time goes"):
#   gcc -shared -fPIC -O2 -o /tmp/coalesce_head.so load_testing/bench/preload/coalesce_head.c -ldl -lpthread
#   printf '#!/bin/sh\nexec env LD_PRELOAD=/tmp/coalesce_head.so /tmp/cti-kaltura "$@"\n' >/tmp/b.sh
#   chmod +x /tmp/b.sh
#   A_BIN=/tmp/cti-kaltura B_BIN=/tmp/b.sh ROUNDS=6 load_testing/bench/preload/ab_two_routers.sh
# Environment (defaults): A_BIN (target/release/cti-kaltura), B_BIN (required), ROUNDS (6),
#   DURATION (8), SERVER_CPU (0), CLIENT_CPU (1), ports 25101/25102 (A), 25111/25112 (B),
#   EDGE_PORT (25190), OUT (load_testing/results/ab-TIMESTAMP). Everything on 127.0.0.1; every
#   process started here is stopped on exit.
set -euo pipefail
PORT=25101
MGMT_PORT=25102
# shellcheck source=../../lib/router.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../lib/router.sh"
# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
A_BIN=${A_BIN:-$LT_REPO/target/release/cti-kaltura}
B_BIN=${B_BIN:?B_BIN: the second router binary (or wrapper) is required}
ROUNDS=${ROUNDS:-6}
DURATION=${DURATION:-8}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
EDGE_CPU=$CLIENT_CPU
CONNECTIONS=64
WRK_THREADS=1
EDGE_PORT=${EDGE_PORT:-25190}
OUT=${OUT:-$LT_RESULTS/ab-$(date +%Y%m%d-%H%M%S)}

lt_init
lt_on_exit bench_cleanup
chmod 755 "$LT_TMP"
mkdir -p "$OUT"
: >"$OUT/rounds.txt"
bench_ensure_tools
for p in 25101 25102 25111 25112 "$EDGE_PORT"; do bench_port_free "$p"; done
bench_start_edge "$LT_TMP/edge" "$EDGE_PORT" "$OUT/edge.log" "$EDGE_CPU"
python3 "$BENCH_DIR/snapshots.py" proxy "$LT_TMP/routing-proxy.json" --port "$EDGE_PORT" >&2
declare -A pid
for v in a b; do
  port=$([ "$v" = a ] && echo 25101 || echo 25111)
  mkdir -p "$LT_TMP/rt-$v"
  lt_ctk config "$LT_REPO/conf/cti-kaltura.yaml" "$LT_TMP/base-$v.yaml" --port "$port" \
    --mgmt-port $((port + 1)) --runtime-dir "$LT_TMP/rt-$v" --routing "$LT_TMP/routing-proxy.json"
  LT_BIN=$A_BIN bench_router_config "$LT_TMP/base-$v.yaml" "$OUT/router-$v.yaml" "$LT_TMP/routing-proxy.json" proxy
  bin=$([ "$v" = a ] && echo "$A_BIN" || echo "$B_BIN")
  LT_BIN=$bin bench_start_router "$OUT/router-$v.yaml" "$OUT/router-$v.log" "$SERVER_CPU" "127.0.0.1:$((port + 1))"
  pid[$v]=$ROUTER_PID
done
echo /vod/1k.bin >"$LT_TMP/urls.txt"
bench_check_urls 1024 "$LT_TMP/urls.txt" 25101 25111
bench_wrk 2 25101 "$LT_TMP/urls.txt" keepalive /dev/null
bench_wrk 2 25111 "$LT_TMP/urls.txt" keepalive /dev/null

# one NAME PORT ROUND: one round of one router; appends "NAME ROUND requests cpu_us/req req/s".
one() {
  local tb ta rq
  tb=$(bench_cpu_ticks "${pid[$1]}")
  bench_wrk "$DURATION" "$2" "$LT_TMP/urls.txt" keepalive "$OUT/wrk-$1-$3.txt"
  ta=$(bench_cpu_ticks "${pid[$1]}")
  rq=$(bench_wrk_requests "$OUT/wrk-$1-$3.txt")
  echo "$1 $3 $rq $(python3 -c "print(round(($ta - $tb) / $CLK_TCK / $rq * 1e6, 2), round($rq / $DURATION))")" |
    tee -a "$OUT/rounds.txt"
}
for ((r = 1; r <= ROUNDS; r++)); do
  if ((r % 2)); then one a 25101 "$r"; one b 25111 "$r"; else one b 25111 "$r"; one a 25101 "$r"; fi
done
python3 - "$OUT/rounds.txt" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
by = {(v, r): (float(cpu), float(rps)) for v, r, _, cpu, rps in rows}
rounds = sorted({r for _, r in by}, key=int)
cpu = [by[("b", r)][0] / by[("a", r)][0] for r in rounds if ("a", r) in by and ("b", r) in by]
rps = [by[("b", r)][1] / by[("a", r)][1] for r in rounds if ("a", r) in by and ("b", r) in by]
print(f"B/A CPU per request, median of {len(cpu)} rounds: {statistics.median(cpu):.3f} "
      f"(rounds: {', '.join(f'{x:.2f}' for x in cpu)}); req/s: {statistics.median(rps):.3f}")
PY
