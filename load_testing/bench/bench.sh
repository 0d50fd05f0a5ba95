#!/usr/bin/env bash
# Side-by-side benchmark: the router against nginx configured from the same snapshot
# (gen_nginx.py), one worker each, pinned to one core, wrk pinned to the other.
#
#   load_testing/bench/bench.sh
#   ROUNDS=7 DURATION=10 MODES="keepalive close" PROXY=1 PROFILE=1 load_testing/bench/bench.sh
#
# 1. Installs nginx (nginx-light) and wrk from Debian packages if missing; builds the router
#    (cargo build --release; SKIP_BUILD=1 skips it).
# 2. Redirects: the router on a copy of conf/cti-kaltura.yaml with `threads: 1`,
#    `work_stealing: false`, health checks and access log off, on the demo snapshot; nginx
#    from gen_nginx.py on the same snapshot (`worker_processes 1`). Both pinned to SERVER_CPU,
#    both checked on every URL of urls.txt (must answer 302). Then, per mode (`keepalive`,
#    `close` = wrk -H 'Connection: close'), ROUNDS rounds of each server, alternating (odd
#    rounds nginx first, even rounds the router first):
#        taskset -c CLIENT_CPU wrk -t1 -c64 -dDURATIONs --latency -s urls.lua URL -- urls.txt
#    Per round: req/s, p50/p99, server CPU time per request (utime+stime from /proc/PID/stat
#    of the router, or of the nginx master and worker, before and after), core usage.
# 3. Proxy (PROXY=1): a fake edge (nginx serving 1 KiB and 1 MiB files, pinned to EDGE_CPU)
#    and, on a snapshot variant where every EDGE is 127.0.0.1:EDGE_PORT, the router with
#    `routes: {vod: {mode: proxy}}` against nginx with proxy_pass to the same edge (chosen the
#    same way), keep-alive, for each size in PROXY_SIZES.
# 4. Profile (PROFILE=1): one extra keep-alive redirect round per server under
#    `perf record -e cpu-clock -g`; top symbols by self time (not counted in the results).
#    Instruction counts (CALLGRIND=1, needs valgrind): each server alone under
#    `valgrind --tool=callgrind`, counters zeroed after a warm-up, CG_DURATION seconds of
#    wrk -c8: user-space instructions per redirect and the top functions; unlike times, these
#    counts do not move with the other jobs on the machine.
# 5. Writes OUT/rounds.jsonl (one line per round), OUT/report.md (medians, ratios
#    router/nginx), OUT/machine.txt, wrk logs, configs and profiles.
#
# Environment (defaults): ROUNDS (5), PROXY_ROUNDS (ROUNDS), DURATION (10, seconds per round),
#   WARMUP (2), CONNECTIONS (64), WRK_THREADS (1), SERVER_CPU (0), CLIENT_CPU (1),
#   EDGE_CPU (CLIENT_CPU), MODES ("keepalive close"; "" skips the redirect rounds), PROXY (1),
#   PROXY_SIZES ("1k 1m"; `m3u8` adds a 2,000-segment playlist the router parses and rewrites),
#   DEFER_ACCEPT (0; 1: redirect servers with deferred accept, router.http.defer_accept_secs: 1
#   and nginx `listen ... deferred`),
#   PROFILE (1), CALLGRIND (1), CG_DURATION (10), CG_MODES ("keepalive"; "keepalive close"), PORT/MGMT_PORT (router, 24101/24102), NGINX_PORT (24181), EDGE_PORT (24190),
#   URLS (load_testing/bench/urls.txt), OUT (load_testing/results/bench-TIMESTAMP), SKIP_BUILD.
# Everything listens on and talks to 127.0.0.1 only; every process started here is stopped on
# exit (trap), and every wrk run is bounded by `timeout`.
set -euo pipefail

PORT=${PORT:-24101}
MGMT_PORT=${MGMT_PORT:-24102}
# shellcheck source=../lib/router.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/router.sh"
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS=${ROUNDS:-5}
PROXY_ROUNDS=${PROXY_ROUNDS:-$ROUNDS}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNECTIONS=${CONNECTIONS:-64}
WRK_THREADS=${WRK_THREADS:-1}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
EDGE_CPU=${EDGE_CPU:-$CLIENT_CPU}
MODES=${MODES-keepalive close}
PROXY=${PROXY:-1}
PROXY_SIZES=${PROXY_SIZES-1k 1m}
PROFILE=${PROFILE:-1}
CALLGRIND=${CALLGRIND:-1}
CG_DURATION=${CG_DURATION:-10}
CG_MODES=${CG_MODES:-keepalive}
NGINX_PORT=${NGINX_PORT:-24181}
EDGE_PORT=${EDGE_PORT:-24190}
URLS=${URLS:-$BENCH_DIR/urls.txt}
OUT=${OUT:-$LT_RESULTS/bench-$(date +%Y%m%d-%H%M%S)}
ROUTING=$LT_REPO/conf/routing.yaml

lt_init
lt_on_exit bench_cleanup
mkdir -p "$OUT"
chmod 755 "$LT_TMP"
ROUNDS_FILE=$OUT/rounds.jsonl
: >"$ROUNDS_FILE"

bench_ensure_tools
lt_build_router
for p in "$PORT" "$MGMT_PORT" "$NGINX_PORT" "$EDGE_PORT"; do bench_port_free "$p"; done

bench_machine_info "$OUT/machine.txt" "ROUNDS=$ROUNDS PROXY_ROUNDS=$PROXY_ROUNDS DURATION=$DURATION CONNECTIONS=$CONNECTIONS WRK_THREADS=$WRK_THREADS SERVER_CPU=$SERVER_CPU CLIENT_CPU=$CLIENT_CPU EDGE_CPU=$EDGE_CPU"

# run_round SECTION MODE SERVER ROUND PORT URLS_FILE PID [EDGE_PID]
run_round() {
  local section=$1 mode=$2 server=$3 round=$4 port=$5 urls=$6 pid=$7 edge_pid=${8:-}
  local log="$OUT/wrk-$section-$mode-$server-$round.txt"
  local family edge_family="" tb ta eb="" ea="" t0 t1
  family=$(bench_family "$pid")
  [ -n "$edge_pid" ] && edge_family=$(bench_family "$edge_pid")
  cat /proc/stat >"$LT_TMP/stat-before"
  # shellcheck disable=SC2086
  tb=$(bench_cpu_ticks $family)
  # shellcheck disable=SC2086
  [ -n "$edge_pid" ] && eb=$(bench_cpu_ticks $edge_family)
  t0=$(date +%s.%N)
  bench_wrk "$DURATION" "$port" "$urls" "$mode" "$log"
  t1=$(date +%s.%N)
  # shellcheck disable=SC2086
  ta=$(bench_cpu_ticks $family)
  # shellcheck disable=SC2086
  [ -n "$edge_pid" ] && ea=$(bench_cpu_ticks $edge_family)
  cat /proc/stat >"$LT_TMP/stat-after"
  local edge_args=()
  [ -n "$edge_pid" ] && edge_args=(--edge-ticks-before "$eb" --edge-ticks-after "$ea")
  python3 "$BENCH_DIR/bench_report.py" record "$ROUNDS_FILE" --section "$section" --mode "$mode" \
    --server "$server" --round "$round" --wrk-log "$log" --ticks-before "$tb" --ticks-after "$ta" \
    "${edge_args[@]}" --stat-before "$LT_TMP/stat-before" --stat-after "$LT_TMP/stat-after" \
    --wall "$(python3 -c "print($t1 - $t0)")" \
    --server-cpu "$SERVER_CPU" --client-cpu "$CLIENT_CPU"
}

warmup() { bench_wrk "$WARMUP" "$1" "$2" "${3:-keepalive}" /dev/null; }

# alternate SECTION MODE URLS_FILE NROUNDS [EDGE_PID]: rounds of both servers, alternating.
alternate() {
  local section=$1 mode=$2 urls=$3 n=$4 edge_pid=${5:-} round
  warmup "$NGINX_PORT" "$urls" "$mode"
  warmup "$PORT" "$urls" "$mode"
  for ((round = 1; round <= n; round++)); do
    if ((round % 2)); then
      run_round "$section" "$mode" nginx "$round" "$NGINX_PORT" "$urls" "$NGINX_PID" "$edge_pid"
      run_round "$section" "$mode" router "$round" "$PORT" "$urls" "$ROUTER_PID" "$edge_pid"
    else
      run_round "$section" "$mode" router "$round" "$PORT" "$urls" "$ROUTER_PID" "$edge_pid"
      run_round "$section" "$mode" nginx "$round" "$NGINX_PORT" "$urls" "$NGINX_PID" "$edge_pid"
    fi
  done
}

# Every URL must answer 302 (redirect section) or 200 with SIZE bytes (proxy) from both.
check_urls() { bench_check_urls "$1" "$2" "$NGINX_PORT" "$PORT"; }

# profile NAME PID PORT URLS: perf record of PID during one keep-alive round (not recorded).
profile() {
  local name=$1 pid=$2 port=$3 urls=$4
  local data="$OUT/perf-$name.data"
  if ! perf record -e cpu-clock -F 999 -g -o "$LT_TMP/perf-probe.data" -- true >/dev/null 2>&1; then
    bench_log "perf record does not work here: no profile"
    return 0
  fi
  bench_log "profiling $name (pid $pid) for ${DURATION}s"
  perf record -e cpu-clock -F 2999 -g -p "$pid" -o "$data" -- sleep "$((DURATION + 1))" >"$OUT/perf-$name.log" 2>&1 &
  local perf_pid=$!
  bench_track "$perf_pid"
  sleep 0.5
  bench_wrk "$DURATION" "$port" "$urls" keepalive "$OUT/wrk-profile-$name.txt"
  wait "$perf_pid" 2>/dev/null || true
  python3 "$BENCH_DIR/bench_report.py" perf "$data" 15 >"$OUT/profile-$name.md" 2>/dev/null || true
  perf report -i "$data" --no-children --sort dso --stdio -g none \
    >"$OUT/profile-$name-dso.txt" 2>/dev/null || true
}

# callgrind_run NAME PORT READY_URL READY_CODE CMD...: runs CMD under callgrind (pinned to
# SERVER_CPU), zeroes the counters after a warm-up, counts the instructions of CG_DURATION
# seconds of load (wrk -c8) and writes OUT/callgrind-NAME.md (instructions per request, top
# functions). Instruction counts do not depend on the other jobs on the machine.
callgrind_run() {
  local name=$1 port=$2 url=$3 want=$4
  shift 4
  local -a close_args=()
  case "$name" in *-close) close_args=(-H 'Connection: close') ;; esac
  local out="$OUT/callgrind-$name.out" code start=$SECONDS
  taskset -c "$SERVER_CPU" valgrind --tool=callgrind --callgrind-out-file="$out" --dump-instr=no "$@" \
    >"$OUT/callgrind-$name.log" 2>&1 &
  local pid=$!
  bench_track "$pid"
  while :; do
    kill -0 "$pid" 2>/dev/null || { tail -n 20 "$OUT/callgrind-$name.log" >&2; lt_die "$name exited under valgrind"; }
    code=$(curl --noproxy '*' -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" 2>/dev/null) || true
    [ "$code" = "$want" ] && break
    [ $((SECONDS - start)) -ge 180 ] && lt_die "$name not ready under valgrind after 180 s"
    sleep 0.5
  done
  taskset -c "$CLIENT_CPU" timeout 60 wrk -t1 -c8 -d2s -s "$BENCH_DIR/urls.lua" "http://127.0.0.1:$port" -- "$URLS" \
    >/dev/null 2>&1 || true
  callgrind_control --zero "$pid" >/dev/null
  taskset -c "$CLIENT_CPU" timeout $((CG_DURATION + 60)) wrk -t1 -c8 -d"${CG_DURATION}s" "${close_args[@]}" \
    -s "$BENCH_DIR/urls.lua" "http://127.0.0.1:$port" -- "$URLS" >"$OUT/wrk-callgrind-$name.txt" 2>&1 || true
  callgrind_control --dump=load "$pid" >/dev/null
  local requests
  requests=$(bench_wrk_requests "$OUT/wrk-callgrind-$name.txt")
  [ -n "$requests" ] && [ -s "$out.1" ] || lt_die "callgrind $name: no requests or no dump"
  python3 "$BENCH_DIR/bench_report.py" callgrind "$out.1" "$requests" 15 --callers memcpy >"$OUT/callgrind-$name.md"
  bench_stop_pid "$pid"
}

# --- redirects ------------------------------------------------------------------------------
bench_log "redirects: router on 127.0.0.1:$PORT, nginx on 127.0.0.1:$NGINX_PORT, both on CPU $SERVER_CPU; wrk on CPU $CLIENT_CPU"
bench_start_redirect_servers "$ROUTING"
check_urls 302 "$URLS"
for mode in $MODES; do
  bench_log "redirects, $mode: $ROUNDS rounds of ${DURATION}s per server"
  alternate redirect "$mode" "$URLS" "$ROUNDS"
done
if [ "$PROFILE" = 1 ]; then
  profile router "$ROUTER_PID" "$PORT" "$URLS"
  profile nginx "$(pgrep -P "$NGINX_PID" | head -n 1)" "$NGINX_PORT" "$URLS"
fi
bench_cleanup
ROUTER_PID="" NGINX_PID=""

# --- instruction counts (callgrind) ---------------------------------------------------------
if [ "$CALLGRIND" = 1 ] && command -v valgrind >/dev/null && command -v callgrind_control >/dev/null; then
  for cg_mode in $CG_MODES; do
    suffix=""
    [ "$cg_mode" = close ] && suffix="-close"
    bench_log "callgrind ($cg_mode): instructions per redirect, router then nginx (${CG_DURATION}s of wrk -c8 each)"
    callgrind_run "router$suffix" "$PORT" "http://127.0.0.1:$MGMT_PORT/readyz" 200 \
      "$LT_BIN" -c "$OUT/router-redirect.yaml"
    callgrind_run "nginx$suffix" "$NGINX_PORT" "http://127.0.0.1:$NGINX_PORT/static/probe.png" 302 \
      "$NGINX_BIN" -p "$LT_TMP/nginx-redirect" -c nginx.conf -g 'daemon off; master_process off;'
  done
elif [ "$CALLGRIND" = 1 ]; then
  bench_log "valgrind is not installed: no instruction counts (apt-get install valgrind)"
fi

# --- proxy ----------------------------------------------------------------------------------
if [ "$PROXY" = 1 ]; then
  bench_log "proxy: fake edge on 127.0.0.1:$EDGE_PORT (CPU $EDGE_CPU)"
  edge=$LT_TMP/edge
  bench_start_proxy_servers "$edge"
  for size in $PROXY_SIZES; do
    urls=$LT_TMP/urls-$size.txt
    case $size in
      m3u8) file=vod/hls2000.m3u8 ;;
      *) file=vod/$size.bin ;;
    esac
    echo "/$file" >"$urls"
    bytes=$(stat -c %s "$edge/www/$file")
    check_urls "$bytes" "$urls"
    bench_log "proxy, $size: $PROXY_ROUNDS rounds of ${DURATION}s per server"
    alternate proxy "$size" "$urls" "$PROXY_ROUNDS" "$EDGE_PID"
  done
  bench_cleanup
fi

echo "loadavg at end: $(cat /proc/loadavg)" >>"$OUT/machine.txt"
python3 "$BENCH_DIR/bench_report.py" report "$ROUNDS_FILE" >"$OUT/report.md"
{
  cat "$OUT/machine.txt"
  echo
  cat "$OUT/report.md"
  for name in router nginx; do
    if [ -s "$OUT/profile-$name.md" ]; then
      echo "### perf, $name (cpu-clock samples of one keep-alive round)"
      cat "$OUT/profile-$name.md"
      echo
    fi
  done
  for name in router nginx router-close nginx-close; do
    if [ -s "$OUT/callgrind-$name.md" ]; then
      echo "### callgrind, $name"
      cat "$OUT/callgrind-$name.md"
      echo
    fi
  done
} >&2
bench_log "results in $OUT"
