#!/usr/bin/env bash
# Proves that the nginx configuration gen_nginx.py generates answers like the router: starts
# the router on the demo config (its ports, 4001/[::1]:4001 and management 4002, health checks
# off as in load_testing) and nginx on another port (127.0.0.1 and [::1]), sends the same
# requests to both and compares status, Location and body (equivalence.py). Two passes:
#
#   demo   conf/routing.yaml as shipped; regions have several edges, so the edge in a Location
#          is compared by membership in the region's eligible edges (as the router explains
#          them), the rest of the Location exactly;
#   exact  a variant (snapshots.py exact) where each region has at most one eligible edge and
#          every corner of the routing rules occurs (fallback to less specific subnets,
#          encryption fallback, odd ports, ...): Locations compared byte for byte.
#
# Usage: load_testing/bench/check_equivalence.sh
# Environment: PORT, MGMT_PORT (router, default 4001, 4002), NGINX_PORT (default 8081),
#   REQUESTS (random requests per pass, default 320; the fixed probes come on top), SEED,
#   SKIP_BUILD=1 (use target/release as it is).
# Exit status 0 only when both passes report 0 mismatches.
set -euo pipefail

# shellcheck source=../lib/router.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/router.sh"
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NGINX_PORT=${NGINX_PORT:-8081}
REQUESTS=${REQUESTS:-320}
SEED=${SEED:-7}

lt_init
lt_on_exit bench_cleanup
bench_ensure_tools
lt_build_router
[ -x "$LT_REPO/target/release/cti-kaltura-snapshot" ] || lt_die "target/release/cti-kaltura-snapshot is missing (cargo build --release)"
chmod 755 "$LT_TMP"

python3 "$BENCH_DIR/snapshots.py" exact "$LT_TMP/routing-exact.json" >&2
failed=0
for pass in demo exact; do
  case $pass in
    demo) routing=$LT_REPO/conf/routing.yaml mode=eligible ;;
    exact) routing=$LT_TMP/routing-exact.json mode=exact ;;
  esac
  bench_log "pass $pass: $routing"
  LT_CONFIG=""
  lt_make_config "$routing"
  lt_start_router "$LT_TMP/router-$pass.log"
  python3 "$BENCH_DIR/gen_nginx.py" "$routing" "$LT_TMP/nginx-$pass" --port "$NGINX_PORT" \
    --listen 127.0.0.1 --listen '[::1]' >&2
  bench_start_nginx "$LT_TMP/nginx-$pass" "$NGINX_PORT" "$LT_TMP/nginx-$pass.log"
  python3 "$BENCH_DIR/equivalence.py" --router "$PORT" --nginx "$NGINX_PORT" --snapshot "$routing" \
    --mode "$mode" --requests "$REQUESTS" --seed "$SEED" || failed=1
  bench_cleanup
  lt_stop_router
done
if [ "$failed" = 0 ]; then
  bench_log "equivalence: 0 mismatches in both passes"
else
  bench_log "equivalence: MISMATCHES (see above)"
fi
exit "$failed"
