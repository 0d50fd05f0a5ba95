#!/usr/bin/env bash
# Soak under routing-data reloads: test_soak.js sends a steady rate (RATE, default 300 req/s, for
# DURATION, default 60s) while a driver in the background, every RELOAD_EVERY_SECS (default 3),
# atomically replaces the routing snapshot file the router watches with the other of two valid
# variants of the demo data and sends the router SIGHUP. Fails when any valid request gets
# anything but its 302 (k6 checks and thresholds), when a variant was not in service by the next
# swap, or when the router counted a failed load.
#
#   load_testing/soak.sh [k6 args]
#   DURATION=20s RATE=100 RELOAD_EVERY_SECS=2 load_testing/soak.sh
#
# The two variants (made from conf/routing.yaml in a temp copy of conf/):
#   a: the demo data, version "demo-1-soak-a"
#   b: version "demo-1-soak-b", edge1 (server 5) availability false (every server group keeps
#      4 of its 5 edges, so every request still routes), one more subnet 203.0.113.0/24
# Edges going down and up through health checks are out of scope for now: the router runs with
# health checks off (lib/router.sh), so only the routing data changes.
# Results: load_testing/results/soak-<timestamp>{.json,.txt,-router.log,-driver.log}.
set -uo pipefail

# shellcheck source=lib/router.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/router.sh"

RELOAD_EVERY_SECS=${RELOAD_EVERY_SECS:-3}
[ -z "${ROUTER_CONFIG:-}" ] || lt_die "soak.sh writes its own config around a temp routing file; unset ROUTER_CONFIG"

lt_init
lt_check_ports
lt_ensure_k6
lt_build_router

out="$LT_RESULTS/soak-$(date +%Y%m%d-%H%M%S)"
work="$LT_TMP/soak"
mkdir -p "$work"
cp -R "$LT_REPO/conf" "$work/conf"
routing="$work/conf/routing.yaml"

# The generator writes one entity per line, so plain text edits are enough (no PyYAML).
lt_python - "$LT_REPO/conf/routing.yaml" "$work" <<'EOF' || lt_die "cannot make the routing variants"
import re, sys
from ctk.config import EditError, edit_once
src, work = sys.argv[1:]
text = open(src).read()

def edit(text, pattern, replacement):
    try:
        return edit_once(text, pattern, replacement, src, re.M)
    except EditError as e:
        sys.exit(str(e))

a = edit(text, r'^version: .*$', 'version: "demo-1-soak-a"')
b = edit(text, r'^version: .*$', 'version: "demo-1-soak-b"')
b = edit(b, r'^(  - \{"id": 5, "type": "EDGE", .*"availability": )true', r'\1false')
b = edit(b, r'^subnets:\n', 'subnets:\n  - {"id": 100001, "name": "soak", "cidr": "203.0.113.0/24", "region_id": 50}\n')
open(f"{work}/variant-a.yaml", "w").write(a)
open(f"{work}/variant-b.yaml", "w").write(b)
EOF
# Both variants must load (lt_make_config runs `cti-kaltura -t`); the router starts on a.
lt_make_config "$work/variant-b.yaml"
cp "$work/variant-a.yaml" "$routing"
lt_make_config "$routing"
lt_start_router "$out-router.log"

served_version() {
  curl --noproxy '*' -s --max-time 2 "http://$LT_MGMT_ADDR/debug/snapshot" |
    python3 -c 'import json, sys; print(json.load(sys.stdin).get("version"))' 2>/dev/null
}

# Swaps the variants until killed; logs every swap and any variant not in service by the next.
driver() {
  local current=a next n=0 sleeper=""
  trap '[ -n "$sleeper" ] && kill "$sleeper" 2>/dev/null; exit 0' TERM
  while :; do
    sleep "$RELOAD_EVERY_SECS" &
    sleeper=$!
    wait "$sleeper"
    sleeper=""
    local served
    served=$(served_version)
    [ "$served" = "demo-1-soak-$current" ] || echo "$(date +%T.%N) MISMATCH: serving $served, expected demo-1-soak-$current"
    if [ "$current" = a ]; then next=b; else next=a; fi
    cp "$work/variant-$next.yaml" "$routing.tmp" && mv -f "$routing.tmp" "$routing"
    kill -HUP "$LT_ROUTER_PID"
    n=$((n + 1))
    echo "$(date +%T.%N) swap $n: wrote variant $next, sent SIGHUP"
    echo "$next" >"$work/last-written"
    current=$next
  done
}
echo a >"$work/last-written"
driver >"$out-driver.log" 2>&1 &
driver_pid=$!
lt_on_exit "kill $driver_pid 2>/dev/null; wait $driver_pid 2>/dev/null"
lt_log "driver (pid $driver_pid) swaps the routing file every ${RELOAD_EVERY_SECS}s (log: $out-driver.log)"

"$LT_K6" run --no-usage-report --summary-export "$out.json" "$@" "$LT_DIR/test_soak.js" | tee "$out.txt"
rc=${PIPESTATUS[0]}
kill "$driver_pid" 2>/dev/null
wait "$driver_pid" 2>/dev/null

# The last swap must be in service too.
sleep 1
last="demo-1-soak-$(cat "$work/last-written")"
served=$(served_version)
[ "$served" = "$last" ] || echo "$(date +%T.%N) MISMATCH at the end: serving $served, expected $last" >>"$out-driver.log"

swaps=$(grep -c 'swap' "$out-driver.log")
mismatches=$(grep -c 'MISMATCH' "$out-driver.log")
metrics=$(curl --noproxy '*' -s --max-time 2 "http://$LT_MGMT_ADDR/metrics")
loads_ok=$(sed -n 's/^cti_kaltura_snapshot_fetch_total{result="ok"} //p' <<<"$metrics")
loads_error=$(sed -n 's/^cti_kaltura_snapshot_fetch_total{result="error"} //p' <<<"$metrics")
lt_log "reloads: $swaps swaps written, router loaded ${loads_ok:-?} snapshots, ${loads_error:-0} failed loads, $mismatches version mismatches"
lt_log "k6: $(lt_summary_line "$out.json")"
if [ "$rc" = 0 ]; then
  if [ "$swaps" -lt 1 ]; then
    lt_log "FAIL: no swap happened (DURATION shorter than RELOAD_EVERY_SECS?)"
    rc=1
  elif [ "$mismatches" != 0 ] || [ "${loads_error:-0}" != 0 ]; then
    lt_log "FAIL: a swap did not take effect or a load failed (see $out-driver.log and $out-router.log)"
    rc=1
  fi
fi
lt_log "soak: $([ "$rc" = 0 ] && echo PASS || echo "FAIL (exit $rc)")"
exit "$rc"
