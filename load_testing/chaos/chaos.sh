#!/usr/bin/env bash
# Chaos soak (issue 8): k6 sends a steady rate (chaos.js: RATE req/s of the demo mix,
# constant arrival rate) for DURATION while chaos_driver.py, with the router on the admin API
# source against a fake admin and nine fake edges (all on 127.0.0.0/8):
#   - makes the admin API flap every ADMIN_EVERY s: down (connection refused), garbage (cut
#     JSON, binary, wrong shape), over max_body_bytes (with Content-Length and streamed), 500,
#     slower than the router's timeout, valid variants (one edge's availability toggled), and
#     `{}` (the blast-radius guard must refuse it);
#   - takes two edges down every EDGE_EVERY s (health check 503 / port closed / wrong body /
#     too slow; health every 500 ms, fall 2, rise 2, panic mode on) and all of them once for 4 s;
#   - reloads the config with SIGHUP every HUP_EVERY s (keepalive 60 / 75 / access log on),
#     and POSTs /admin/refresh every PUSH_EVERY s;
#   - upgrades the binary twice (once in QUICK mode): `cti-kaltura -u -c same.yaml`, then
#     SIGQUIT to the old process;
#   - samples VmRSS of the router processes every 5 s, the router's view of edges, versions and
#     panic every second, checks routing against it every 2 s, and runs two probe clients
#     without automatic retry (keep-alive and new connection per request) across the upgrades.
#
#   load_testing/chaos/chaos.sh                       # 5 minutes at 300 req/s
#   QUICK=1 load_testing/chaos/chaos.sh               # about 60 s
#   DURATION=600 RATE=500 load_testing/chaos/chaos.sh
#   SKIP_BUILD=1 ROUTER_BIN=/path/to/cti-kaltura load_testing/chaos/chaos.sh
#
# Pass (exit 0): every valid request got a correct redirect (k6 checks 100 %, http_req_failed
# 0, Location host one of the fake edges), no request lost across the upgrades (probes: no
# failure after one retry), upgrades completed, RSS of each router process flat after its
# warm-up (growth <= RSS_MAX_GROWTH_KB, default 16384), the guard refused `{}`, every edge
# taken down was seen down, no Location to an edge the router saw down (outside panic mode and
# the first UPGRADE_GRACE s after a SIGQUIT) or marked unavailable, every SIGHUP applied.
# Exit 1: a criterion failed; 2: the run could not be made.
#
# Environment: DURATION (seconds, default 300; QUICK=1: 60), RATE (300), PORT (4201),
# MGMT_PORT (4202), ADMIN_PORT (4203), EDGE_PORT (4210, on 127.0.0.11-19), ADMIN_EVERY (6;
# QUICK 4), EDGE_EVERY (10; QUICK 6), HUP_EVERY (20; QUICK 10), PUSH_EVERY (15; QUICK 8),
# RSS_WARMUP (30; QUICK 10 s of each process not judged), RSS_MAX_GROWTH_KB, UPGRADE_GRACE (3),
# ROUTER_BIN, SKIP_BUILD (lib/router.sh).
# Results: load_testing/chaos/results/chaos-<timestamp>-{summary.txt,summary.json,k6.json,k6.txt,
# router-N.log,driver.log}.
set -uo pipefail

PORT=${PORT:-4201}
MGMT_PORT=${MGMT_PORT:-4202}
# shellcheck source=../lib/router.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/router.sh"
CHAOS_DIR="$LT_DIR/chaos"
[ "$HOST" = 127.0.0.1 ] || lt_die "chaos.sh runs on 127.0.0.1 only (HOST=$HOST)"
[ -z "${ROUTER_CONFIG:-}" ] || lt_die "chaos.sh writes its own config; unset ROUTER_CONFIG"

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
  DURATION=${DURATION:-60}
  ADMIN_EVERY=${ADMIN_EVERY:-4}
  EDGE_EVERY=${EDGE_EVERY:-6}
  HUP_EVERY=${HUP_EVERY:-10}
  PUSH_EVERY=${PUSH_EVERY:-8}
  UPGRADE_AT=${UPGRADE_AT:-0.5}
  PANIC_AT=${PANIC_AT:-0.25}
  RSS_WARMUP=${RSS_WARMUP:-10}
else
  DURATION=${DURATION:-300}
  ADMIN_EVERY=${ADMIN_EVERY:-6}
  EDGE_EVERY=${EDGE_EVERY:-10}
  HUP_EVERY=${HUP_EVERY:-20}
  PUSH_EVERY=${PUSH_EVERY:-15}
  UPGRADE_AT=${UPGRADE_AT:-0.4 0.75}
  PANIC_AT=${PANIC_AT:-0.3}
  RSS_WARMUP=${RSS_WARMUP:-30}
fi
DURATION=${DURATION%s}
RATE=${RATE:-300}
ADMIN_PORT=${ADMIN_PORT:-4203}
EDGE_PORT=${EDGE_PORT:-4210}
case "$DURATION" in '' | *[!0-9]*) lt_die "DURATION=$DURATION: whole seconds expected" ;; esac
[ "$DURATION" -ge 30 ] || lt_die "DURATION must be at least 30 s"

lt_init
lt_check_ports
for p in "$ADMIN_PORT"; do
  lt_listening 127.0.0.1 "$p" && lt_die "something already listens on 127.0.0.1:$p (ADMIN_PORT)"
done
for i in $(seq 11 19); do
  lt_listening "127.0.0.$i" "$EDGE_PORT" && lt_die "something already listens on 127.0.0.$i:$EDGE_PORT (EDGE_PORT)"
done
lt_ensure_k6
if [ -n "${ROUTER_BIN:-}" ]; then LT_BIN=$ROUTER_BIN; fi
lt_build_router
# A private copy: the upgrade starts "the new binary" from it, whatever cargo does meanwhile.
mkdir -p "$LT_TMP/bin" "$LT_TMP/work"
cp "$LT_BIN" "$LT_TMP/bin/cti-kaltura" || lt_die "cannot copy $LT_BIN"

mkdir -p "$CHAOS_DIR/results"
out="$CHAOS_DIR/results/chaos-$(date +%Y%m%d-%H%M%S)"
{
  echo "chaos soak: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname), $(nproc) CPUs, $(free -g | awk '/^Mem:/ {print $2 " GiB"}') RAM"
  echo "uptime at start:$(uptime | sed 's/.*load average/ load average/')"
  echo "binary: $(sha256sum "$LT_TMP/bin/cti-kaltura" | cut -c1-16) (copy of $LT_BIN); k6: $("$LT_K6" version | head -n 1)"
  echo "settings: DURATION=$DURATION RATE=$RATE ADMIN_EVERY=$ADMIN_EVERY EDGE_EVERY=$EDGE_EVERY HUP_EVERY=$HUP_EVERY PUSH_EVERY=$PUSH_EVERY UPGRADE_AT='$UPGRADE_AT' PANIC_AT=$PANIC_AT"
} | tee "$out-header.txt" >&2

# Stops the driver (which stops k6, the routers and the fake servers), then anything it
# started that is still there (by PID, checking the command line).
stop_driver() {
  if [ -n "${driver_pid:-}" ] && kill -0 "$driver_pid" 2>/dev/null; then
    kill -TERM "$driver_pid" 2>/dev/null
    for _ in $(seq 1 150); do
      kill -0 "$driver_pid" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL "$driver_pid" 2>/dev/null || true
  fi
  local pid
  if [ -f "$LT_TMP/work/pids" ]; then
    while read -r pid; do
      [ -n "$pid" ] || continue
      if grep -qa -e cti-kaltura -e k6 "/proc/$pid/cmdline" 2>/dev/null; then
        lt_log "stopping leftover pid $pid"
        kill -TERM "$pid" 2>/dev/null
        sleep 2
        kill -KILL "$pid" 2>/dev/null || true
      fi
    done <"$LT_TMP/work/pids"
  fi
}
lt_on_exit stop_driver

# shellcheck disable=SC2086 # UPGRADE_AT is a list
python3 "$CHAOS_DIR/chaos_driver.py" \
  --repo "$LT_REPO" --bin "$LT_TMP/bin/cti-kaltura" --k6 "$LT_K6" --k6-script "$CHAOS_DIR/chaos.js" \
  --work "$LT_TMP/work" --out "$out" --port "$PORT" --mgmt-port "$MGMT_PORT" \
  --admin-port "$ADMIN_PORT" --edge-port "$EDGE_PORT" --duration "$DURATION" --rate "$RATE" \
  --admin-every "$ADMIN_EVERY" --edge-every "$EDGE_EVERY" --hup-every "$HUP_EVERY" \
  --push-every "$PUSH_EVERY" --upgrade-at $UPGRADE_AT --panic-at "$PANIC_AT" \
  --rss-warmup "$RSS_WARMUP" --rss-max-growth-kb "${RSS_MAX_GROWTH_KB:-16384}" --upgrade-grace "${UPGRADE_GRACE:-3}" \
  2> >(tee "$out-driver.log" >&2) &
driver_pid=$!
wait "$driver_pid"
rc=$?
driver_pid=""
echo "uptime at the end:$(uptime | sed 's/.*load average/ load average/')" | tee -a "$out-header.txt" >&2
lt_log "k6 output: $out-k6.txt; summary: $out-summary.txt"
lt_log "chaos: $([ "$rc" = 0 ] && echo PASS || echo "FAIL (exit $rc)")"
exit "$rc"
