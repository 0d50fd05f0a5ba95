#!/usr/bin/env bash
# System calls and their cost per request, the router against nginx (issue 13: "where the
# kernel is the limit"; issue 14: the proxy path). Same servers and pinning as bench.sh: one
# worker each on SERVER_CPU, wrk (and the fake edge) on CLIENT_CPU, everything on 127.0.0.1.
#
#   load_testing/bench/syscalls.sh
#   LT_BIN=/path/to/cti-kaltura SKIP_BUILD=1 ROUNDS=3 DURATION=8 load_testing/bench/syscalls.sh
#
# For each mode in MODES (`keepalive`, `close` = redirects with `Connection: close`, `proxy-1k` =
# VOD in proxy mode, 1 KiB body, keep-alive: the router with `routes: {vod: {mode: proxy}}`
# against nginx proxy_pass with upstream keepalive, as bench.sh's proxy part), ROUNDS rounds of
# each server (order alternating per round), each round three runs of
#     taskset -c CLIENT_CPU wrk -t1 -c64 -dDURATIONs --latency -s urls.lua URL -- URLS
# 1. under `perf stat -x,` counting the `syscalls:sys_enter_NAME` tracepoints of ~55 system calls
#    a server may make, `raw_syscalls:sys_enter` (all of them: the rest shows as "other"), and
#    `sys_exit_*` of accept4 and the read and write calls filtered on `ret == -11` (EAGAIN), attached to the
#    server (router; nginx master and worker): system calls per request = count / wrk's requests;
# 2. under `perf record -e cpu-clock -F PERF_FREQ -g -p PIDS`: where the CPU went (shares of the
#    samples: user space, each system call's handler, interrupts/softirq, page faults, scheduler);
# 3. with nothing attached: the server's CPU µs per request (utime+stime from /proc/PID/stat
#    before and after), which the shares of run 2 divide up (perf's sampling inflates the CPU
#    time of run 2 itself; it is kept in the records as perf_cpu_us_per_req).
# Writes OUT/syscalls.jsonl (one line per server, mode and round), OUT/syscalls.md (medians:
# per mode one table, rows = system calls, columns router and nginx calls and µs per request),
# OUT/machine.txt, the wrk logs, perf stat outputs and perf.data files.
# Needs perf with the syscalls tracepoints and cpu-clock (hardware counters are not needed).
#
# Environment (defaults): ROUNDS (2), DURATION (8, seconds per run), WARMUP (2), CONNECTIONS
#   (64), WRK_THREADS (1), SERVER_CPU (0), CLIENT_CPU (1), EDGE_CPU (CLIENT_CPU), MODES
#   ("keepalive close proxy-1k"), PERF_FREQ (2999), PORT/MGMT_PORT (router, 24101/24102),
#   NGINX_PORT (24181), EDGE_PORT (24190), URLS (load_testing/bench/urls.txt), OUT
#   (load_testing/results/syscalls-TIMESTAMP), SKIP_BUILD, LT_BIN (see load_testing/lib/router.sh),
#   STRACE (1: after the rounds of a mode, each server once under `strace -f -tt -p PID` during
#   `wrk -t1 -c1 -d1s`: OUT/strace-MODE-SERVER.txt shows the calls of each request in order).
# Every process started here is stopped on exit (trap), and every wrk run is bounded by `timeout`.
set -euo pipefail

PORT=${PORT:-24101}
MGMT_PORT=${MGMT_PORT:-24102}
# shellcheck source=../lib/router.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/router.sh"
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-8}
WARMUP=${WARMUP:-2}
CONNECTIONS=${CONNECTIONS:-64}
WRK_THREADS=${WRK_THREADS:-1}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
EDGE_CPU=${EDGE_CPU:-$CLIENT_CPU}
MODES=${MODES-keepalive close proxy-1k}
PERF_FREQ=${PERF_FREQ:-2999}
STRACE=${STRACE:-1}
NGINX_PORT=${NGINX_PORT:-24181}
EDGE_PORT=${EDGE_PORT:-24190}
URLS=${URLS:-$BENCH_DIR/urls.txt}
OUT=${OUT:-$LT_RESULTS/syscalls-$(date +%Y%m%d-%H%M%S)}
ROUTING=$LT_REPO/conf/routing.yaml
REPORT="$BENCH_DIR/syscall_report.py"

lt_init
lt_on_exit bench_cleanup
mkdir -p "$OUT"
chmod 755 "$LT_TMP"
RECORDS=$OUT/syscalls.jsonl
: >"$RECORDS"

bench_ensure_tools
command -v perf >/dev/null || lt_die "perf is not installed (apt-get install linux-perf)"
perf stat -e 'syscalls:sys_enter_close' -- true >/dev/null 2>&1 ||
  lt_die "perf cannot count the syscalls tracepoints here (root, or kernel.perf_event_paranoid <= -1)"
perf record -e cpu-clock -F 999 -g -o "$LT_TMP/probe.data" -- true >/dev/null 2>&1 ||
  lt_die "perf record -e cpu-clock does not work here"
lt_build_router
for p in "$PORT" "$MGMT_PORT" "$NGINX_PORT" "$EDGE_PORT"; do bench_port_free "$p"; done

bench_machine_info "$OUT/machine.txt" "ROUNDS=$ROUNDS DURATION=$DURATION CONNECTIONS=$CONNECTIONS WRK_THREADS=$WRK_THREADS SERVER_CPU=$SERVER_CPU CLIENT_CPU=$CLIENT_CPU EDGE_CPU=$EDGE_CPU PERF_FREQ=$PERF_FREQ MODES=$MODES"

# Counted: the entries of the system calls a network server makes (those this kernel has
# tracepoints for), all entries together (raw_syscalls:sys_enter: what the list misses shows as
# "other"), and EAGAIN returns of the calls that read and write. Not `syscalls:sys_enter_*`:
# perf takes about 45 s to detach its ~360 events from a process.
TRACEFS=/sys/kernel/tracing/events/syscalls
[ -d "$TRACEFS" ] || TRACEFS=/sys/kernel/debug/tracing/events/syscalls
[ -d "$TRACEFS" ] || lt_die "no syscalls tracepoints under /sys/kernel/tracing (tracefs not mounted?)"
STAT_EVENTS=(-e raw_syscalls:sys_enter)
for call in accept accept4 read readv pread64 recvfrom recvmsg recvmmsg write writev pwrite64 sendto \
  sendmsg sendmmsg sendfile64 splice epoll_wait epoll_pwait epoll_pwait2 epoll_ctl poll ppoll select \
  pselect6 close shutdown setsockopt getsockopt getpeername getsockname connect socket ioctl fcntl \
  futex clock_nanosleep nanosleep clock_gettime gettimeofday sched_yield madvise mmap munmap mremap \
  mprotect brk openat statx newfstatat fstat getrandom rt_sigprocmask eventfd2 timerfd_settime \
  io_uring_enter; do
  [ -d "$TRACEFS/sys_enter_$call" ] && STAT_EVENTS+=(-e "syscalls:sys_enter_$call")
done
for call in accept4 read readv recvfrom recvmsg write writev sendto sendmsg; do
  STAT_EVENTS+=(-e "syscalls:sys_exit_$call" --filter 'ret == -11')
done

# stop_perf PID: SIGINT (forwarded by `timeout`) makes perf write its counts or samples and
# strace detach; waits for it and forgets it.
stop_perf() {
  kill -INT "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  local keep=() p
  for p in "${BENCH_PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  BENCH_PIDS=("${keep[@]}")
}

# measure SERVER MODE ROUND PORT URLS_FILE PID...: the two runs of one round (see the header).
measure() {
  local server=$1 mode=$2 round=$3 port=$4 urls=$5
  shift 5
  local pids wrk_mode=keepalive base="$OUT/$mode-$server-$round" perf_pid tb ta t0 t1
  pids=$(echo "$@" | tr ' ' ',')
  [ "$mode" = close ] && wrk_mode=close
  timeout -s INT $((DURATION + 60)) perf stat -x, -o "$base-stat.csv" "${STAT_EVENTS[@]}" -p "$pids" \
    >"$base-stat.log" 2>&1 &
  perf_pid=$!
  bench_track "$perf_pid"
  sleep 1
  bench_wrk "$DURATION" "$port" "$urls" "$wrk_mode" "$base-wrk-stat.txt"
  stop_perf "$perf_pid"

  timeout -s INT $((DURATION + 60)) perf record -e cpu-clock -F "$PERF_FREQ" -g -p "$pids" \
    -o "$base-perf.data" >"$base-perf.log" 2>&1 &
  perf_pid=$!
  bench_track "$perf_pid"
  sleep 1
  # shellcheck disable=SC2068
  tb=$(bench_cpu_ticks $@)
  bench_wrk "$DURATION" "$port" "$urls" "$wrk_mode" "$base-wrk-perf.txt"
  # shellcheck disable=SC2068
  ta=$(bench_cpu_ticks $@)
  stop_perf "$perf_pid"

  # 3. nothing attached: the CPU time per request that the shares of run 2 divide up.
  local pb pa
  # shellcheck disable=SC2068
  pb=$(bench_cpu_ticks $@)
  t0=$(date +%s.%N)
  bench_wrk "$DURATION" "$port" "$urls" "$wrk_mode" "$base-wrk-plain.txt"
  t1=$(date +%s.%N)
  # shellcheck disable=SC2068
  pa=$(bench_cpu_ticks $@)

  local rs rp rq
  rs=$(bench_wrk_requests "$base-wrk-stat.txt")
  rp=$(bench_wrk_requests "$base-wrk-perf.txt")
  rq=$(bench_wrk_requests "$base-wrk-plain.txt")
  if [ -z "$rs" ] || [ -z "$rp" ] || [ -z "$rq" ]; then
    lt_die "$mode $server round $round: no wrk result (see $base-wrk-*.txt)"
  fi
  python3 "$REPORT" record "$RECORDS" --server "$server" --mode "$mode" --round "$round" \
    --stat-csv "$base-stat.csv" --stat-requests "$rs" --perf-data "$base-perf.data" --perf-requests "$rp" \
    --perf-ticks "$tb" "$ta" --plain-requests "$rq" --plain-ticks "$pb" "$pa" \
    --plain-wall "$(python3 -c "print($t1 - $t0)")"
}

# trace SERVER MODE PORT URLS_FILE PID...: one second of one connection's requests under strace.
trace() {
  local server=$1 mode=$2 port=$3 urls=$4 wrk_mode=keepalive strace_pid
  shift 4
  [ "$mode" = close ] && wrk_mode=close
  local args=() p
  for p in "$@"; do args+=(-p "$p"); done
  strace -f -tt -o "$OUT/strace-$mode-$server.txt" "${args[@]}" 2>/dev/null &
  strace_pid=$!
  bench_track "$strace_pid"
  sleep 1
  CONNECTIONS=1 bench_wrk 1 "$port" "$urls" "$wrk_mode" "$OUT/strace-$mode-$server-wrk.txt"
  stop_perf "$strace_pid"
}

# rounds MODE URLS_FILE: ROUNDS rounds of both servers (nginx first in odd rounds).
rounds() {
  local mode=$1 urls=$2 round wrk_mode=keepalive nginx_pids
  [ "$mode" = close ] && wrk_mode=close
  nginx_pids=$(bench_family "$NGINX_PID")
  bench_wrk "$WARMUP" "$NGINX_PORT" "$urls" "$wrk_mode" /dev/null
  bench_wrk "$WARMUP" "$PORT" "$urls" "$wrk_mode" /dev/null
  for ((round = 1; round <= ROUNDS; round++)); do
    bench_log "$mode, round $round of $ROUNDS"
    if ((round % 2)); then
      # shellcheck disable=SC2086
      measure nginx "$mode" "$round" "$NGINX_PORT" "$urls" $nginx_pids
      measure router "$mode" "$round" "$PORT" "$urls" "$ROUTER_PID"
    else
      measure router "$mode" "$round" "$PORT" "$urls" "$ROUTER_PID"
      # shellcheck disable=SC2086
      measure nginx "$mode" "$round" "$NGINX_PORT" "$urls" $nginx_pids
    fi
  done
  if [ "$STRACE" = 1 ] && command -v strace >/dev/null; then
    # shellcheck disable=SC2086
    trace nginx "$mode" "$NGINX_PORT" "$urls" $nginx_pids
    trace router "$mode" "$PORT" "$urls" "$ROUTER_PID"
  fi
}

redirect_modes=() proxy_modes=()
for mode in $MODES; do
  case $mode in
    keepalive | close) redirect_modes+=("$mode") ;;
    proxy-1k) proxy_modes+=("$mode") ;;
    *) lt_die "unknown mode '$mode' in MODES (keepalive, close, proxy-1k)" ;;
  esac
done

if [ "${#redirect_modes[@]}" -gt 0 ]; then
  bench_log "redirects: router on 127.0.0.1:$PORT, nginx on 127.0.0.1:$NGINX_PORT, both on CPU $SERVER_CPU; wrk on CPU $CLIENT_CPU"
  bench_start_redirect_servers "$ROUTING"
  bench_check_urls 302 "$URLS" "$NGINX_PORT" "$PORT"
  for mode in "${redirect_modes[@]}"; do rounds "$mode" "$URLS"; done
  bench_cleanup
fi

if [ "${#proxy_modes[@]}" -gt 0 ]; then
  bench_log "proxy: fake edge on 127.0.0.1:$EDGE_PORT (CPU $EDGE_CPU)"
  [ -n "$LT_CONFIG" ] || lt_make_config "$ROUTING"
  bench_start_proxy_servers "$LT_TMP/edge"
  echo /vod/1k.bin >"$LT_TMP/urls-1k.txt"
  bench_check_urls 1024 "$LT_TMP/urls-1k.txt" "$NGINX_PORT" "$PORT"
  rounds proxy-1k "$LT_TMP/urls-1k.txt"
  bench_cleanup
fi

echo "loadavg at end: $(cat /proc/loadavg)" >>"$OUT/machine.txt"
python3 "$REPORT" report "$RECORDS" >"$OUT/syscalls.md"
cat "$OUT/machine.txt" "$OUT/syscalls.md" >&2
bench_log "results in $OUT"
