#!/usr/bin/env bash
# Keeps the k6 scripts from rotting: runs every scenario for a few seconds at a low rate against
# one router (built and started once, always stopped), prints one line per run and exits
# non-zero when any run's checks or thresholds fail.
#
#   load_testing/ci-smoke.sh                       (SMOKE_RATE=20 req/s, SMOKE_DURATION=3s)
#   SKIP_BUILD=1 load_testing/ci-smoke.sh          (use the existing release binary)
#
# Runs: test_live.js with the classic --vus/--rps/--duration flags; every test_*.js with
# SCENARIO=open; and one run that must FAIL (test_vod.js against the management port, which
# answers no 302), so that checks and thresholds that stopped catching anything show up too.
# Results: load_testing/results/smoke-<timestamp>/. About 30 s plus the build.
set -uo pipefail

# shellcheck source=lib/router.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/router.sh"

SMOKE_RATE=${SMOKE_RATE:-20}
SMOKE_DURATION=${SMOKE_DURATION:-3s}

lt_init
lt_check_ports
lt_ensure_k6
lt_build_router
lt_make_config
dir="$LT_RESULTS/smoke-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$dir"
lt_start_router "$dir/router.log"

passed=0
failed=0

# run_one LABEL EXPECT(pass|fail) SCRIPT [env assignments ...] -- [k6 args ...]
run_one() {
  local label=$1 expect=$2 script=$3
  shift 3
  local envs=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do
    envs+=("$1")
    shift
  done
  [ "${1:-}" = -- ] && shift
  local out="$dir/$label"
  env "${envs[@]}" "$LT_K6" run -q --no-usage-report --summary-export "$out.json" "$@" "$LT_DIR/$script" >"$out.txt" 2>&1
  local rc=$?
  local verdict
  if { [ "$expect" = pass ] && [ "$rc" = 0 ]; } || { [ "$expect" = fail ] && [ "$rc" = 99 ]; }; then
    verdict=PASS
    passed=$((passed + 1))
  else
    verdict=FAIL
    failed=$((failed + 1))
  fi
  local note=""
  [ "$expect" = fail ] && note=" (must cross thresholds: k6 exit $rc)"
  [ "$expect" = pass ] && [ "$rc" != 0 ] && note=" (k6 exit $rc, see $out.txt)"
  printf '%-4s %-34s %s%s\n' "$verdict" "$label" "$(lt_summary_line "$out.json")" "$note"
}

open=(SCENARIO=open "RATE=$SMOKE_RATE" "DURATION=$SMOKE_DURATION")
run_one test_live-classic pass test_live.js SCENARIO= -- --vus 2 --rps "$SMOKE_RATE" --duration "$SMOKE_DURATION"
for script in test_live.js test_catchup.js test_vod.js test_static.js test_requests.js test_soak.js; do
  run_one "${script%.js}-open" pass "$script" "${open[@]}"
done
mgmt_port=${LT_MGMT_ADDR##*:}
run_one test_vod-not-a-router fail test_vod.js "${open[@]}" RATE=5 DURATION=1s "PORT=$mgmt_port" "HOST=${LT_MGMT_ADDR%:*}"

if ! kill -0 "$LT_ROUTER_PID" 2>/dev/null; then
  echo "FAIL the router died during the smoke run (log: $dir/router.log)"
  failed=$((failed + 1))
fi
echo "smoke: $passed passed, $failed failed"
[ "$failed" = 0 ]
