#!/usr/bin/env bash
# Runs one k6 scenario against a freshly built router on the demo data, then stops the router.
#
#   load_testing/run.sh SCRIPT [k6 args]
#   load_testing/run.sh test_live.js --vus 300 --rps 200 --duration 300s
#   SCENARIO=open RATE=500 DURATION=60s load_testing/run.sh test_requests.js
#
# Installs k6 into load_testing/.venv if missing, builds the router (cargo build --release),
# starts it with logs in load_testing/results/, waits for /readyz, runs k6 with the summary in
# load_testing/results/<script>-<timestamp>.{json,txt}, always stops the router, and exits with
# k6's exit code (99 = a threshold failed). Environment: see lib/router.sh (HOST, PORT,
# MGMT_PORT, ROUTER_CONFIG, ROUTER_HEALTH, SKIP_BUILD) and lib/common.js (SCENARIO, RATE,
# DURATION, QUERY_FRACTION, P95_MS, P99_MS).
set -uo pipefail

# shellcheck source=lib/router.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/router.sh"

if [ $# -lt 1 ] || [ "$1" = -h ] || [ "$1" = --help ]; then
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
  exit 2
fi
script=$1
shift
if [ ! -f "$script" ] && [ -f "$LT_DIR/$script" ]; then
  script="$LT_DIR/$script"
fi
[ -f "$script" ] || lt_die "no such scenario script: $script"
name=$(basename "$script" .js)
stamp=$(date +%Y%m%d-%H%M%S)
out="$LT_RESULTS/$name-$stamp"

lt_init
lt_check_ports
lt_ensure_k6
lt_build_router
lt_make_config
lt_start_router "$out-router.log"

lt_log "k6 run ${*:+$* }$script (summary: $out.json, $out.txt)"
"$LT_K6" run --no-usage-report --summary-export "$out.json" "$@" "$script" | tee "$out.txt"
rc=${PIPESTATUS[0]}
lt_log "$name: $( [ "$rc" = 0 ] && echo PASS || echo "FAIL (k6 exit $rc)" ): $(lt_summary_line "$out.json")"
exit "$rc"
