#!/usr/bin/env bash
# Hostile clients against the release router (issue 8, "Hostile clients"), for the router that
# reads every request head itself (src/server/fast_path.rs: header deadline, keep-alive idle
# timeout, per-client connection limit, hard cap on a head). Measures, and checks pass/fail:
#
#   a. IDLE_COUNT (5,000) silent connections (connect, send nothing), held while normal clients
#      are measured (k6 at a fixed rate and wrk flat out) against a baseline; the router's RSS
#      before / with / after them (kB per connection) and over more rounds (plateau, no leak).
#      This part runs with router.http.header_timeout_secs 60, so that the connections stay
#      open for the whole measurement (the default 10 s would cut them in the middle of it).
#   a2. KEEPALIVE_COUNT (10,000) keep-alive connections that each got one answer and then stay
#      idle, on a freshly started router with the default config: RSS before / with / after,
#      kB per connection, the cti_kaltura_client_connections gauge.
#   a3. the cut (config with header_timeout_secs CUT_SECS=2, keepalive_timeout_secs CUT_SECS+1):
#      50 silent + 10 partial-header connections are closed CUT_SECS after accept, 50 idle
#      keep-alive ones CUT_SECS+1 after their answer; nothing answered, no log line, counted
#      in cti_kaltura_client_connections_closed_total{reason="header_timeout"|"idle_timeout"}.
#   b. slow headers (config with header_timeout_secs CUT_SECS): clients sending their head 1
#      byte per 200 ms (1 client alone, then waves of 100 for as long as k6 measures normal
#      clients): each is cut at the header deadline (CUT_SECS to CUT_SECS + 1 s after
#      connecting), without an answer, counted header_timeout; normal clients served meanwhile.
#   c. log flooding: FLOOD_COUNT (100,000) requests with invalid paths (/scan/<random>,
#      /btv/live/bad%zz): at most LOG_LINES_MAX log lines, and cti_kaltura_requests_total{kind=
#      "invalid",outcome="bad_request"} equal to the 400s received; then 1,000 connections that
#      send half a header and close (500 FIN, 500 RST): no log line, nothing counted.
#   d. untrusted X-Real-IP: with trusted_proxies ["10.0.0.0/8"] (SIGHUP), X-Real-IP /
#      X-Forwarded-For / Forwarded from 127.0.0.1 change nothing; positive control with
#      loopback trusted.
#   e. oversized requests: the router's limits (414 / 431, connection kept) and its hard cap
#      on a head (25,856 bytes or 257 header lines with the defaults: 414 / 431 and close):
#      URIs up to 2 MiB, up to 300 headers, header blocks up to 4 MiB; status, connection reuse,
#      cti_kaltura_requests_total and the head_too_large close counter for each. Also heads
#      that are not HTTP/1 (bad request line, bad header line, TLS to the plain port): 400,
#      close, counted.
#   f. per-client limit: with trusted_proxies ["10.0.0.0/8"] and max_connections_per_client
#      LIMIT (100), LIMIT_CONNS (150) connections from 127.0.0.1: exactly LIMIT served, the rest
#      closed at accept and counted client_limit; 127.0.0.2 is still served meanwhile, and
#      127.0.0.1 again once its connections are closed.
#
#   load_testing/chaos/hostile.sh
#   SKIP_BUILD=1 ROUTER_BIN=/path/to/cti-kaltura load_testing/chaos/hostile.sh
#   QUICK=1 SKIP_BUILD=1 load_testing/chaos/hostile.sh   # about 1.5 min instead of 2.5
#
# Environment (besides lib/router.sh's SKIP_BUILD, READY_TIMEOUT_SECS, STOP_TIMEOUT_SECS):
#   PORT, MGMT_PORT      router ports (default 4101, 4102; everything on 127.0.0.0/8)
#   ROUTER_BIN           router binary (default target/release/cti-kaltura; copied to a temp
#                        dir first so a rebuild during the run changes nothing)
#   IDLE_COUNT           silent connections for (a) (default 5000)
#   KEEPALIVE_COUNT      keep-alive connections for (a2) (default 10000; needs ulimit -n above
#                        it: the script raises the soft limit to the hard one)
#   LOAD_RATE, LOAD_SECS k6 fixed rate and duration of each latency run (default 500, 10)
#   CUT_SECS             header_timeout_secs of the cut checks (a3, b; default 2)
#   FLOOD_COUNT          invalid requests for (c) (default 100000)
#   LOG_LINES_MAX        most router log lines the flood may add (default 5)
#   LIMIT, LIMIT_CONNS   max_connections_per_client and connections opened for (f) (100, 150)
#   QUICK=1              LOAD_SECS 5, FLOOD_COUNT 20000, no extra idle rounds (no leak check),
#                        two waves of slow clients; every other check as in the full run
# Results: load_testing/chaos/results/hostile-<timestamp>/ (summary.txt, router-a.log and
# router.log, the configs, one JSON/text file per step). Exit status: 0 when every check held,
# 1 otherwise. Measurements that are not pass/fail are printed as FINDING.
set -uo pipefail

PORT=${PORT:-4101}
MGMT_PORT=${MGMT_PORT:-4102}
# shellcheck source=../lib/router.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/router.sh"
CHAOS_DIR="$LT_DIR/chaos"
HOSTILE="python3 $CHAOS_DIR/hostile.py --host 127.0.0.1 --port $PORT"
QUICK=${QUICK:-0}
IDLE_COUNT=${IDLE_COUNT:-5000}
KEEPALIVE_COUNT=${KEEPALIVE_COUNT:-10000}
LOAD_RATE=${LOAD_RATE:-500}
CUT_SECS=${CUT_SECS:-2}
LOG_LINES_MAX=${LOG_LINES_MAX:-5}
LIMIT=${LIMIT:-100}
LIMIT_CONNS=${LIMIT_CONNS:-150}
if [ "$QUICK" = 1 ]; then
  LOAD_SECS=${LOAD_SECS:-5}
  FLOOD_COUNT=${FLOOD_COUNT:-20000}
  SLOW_WAVES_MAX=2
else
  LOAD_SECS=${LOAD_SECS:-10}
  FLOOD_COUNT=${FLOOD_COUNT:-100000}
  SLOW_WAVES_MAX=100
fi
[ "$HOST" = 127.0.0.1 ] || lt_die "hostile.sh runs on 127.0.0.1 only (HOST=$HOST)"
[ -z "${ROUTER_CONFIG:-}" ] || lt_die "hostile.sh writes its own config; unset ROUTER_CONFIG"
command -v wrk >/dev/null || lt_die "wrk is needed (Debian: apt-get install -y wrk)"
[ "$LIMIT_CONNS" -gt "$LIMIT" ] || lt_die "LIMIT_CONNS ($LIMIT_CONNS) must be over LIMIT ($LIMIT)"
# The router and each client process need a file descriptor per connection (plus some).
want_nofile=$((KEEPALIVE_COUNT > IDLE_COUNT ? KEEPALIVE_COUNT + 1000 : IDLE_COUNT + 1000))
if [ "$(ulimit -Sn)" != unlimited ] && [ "$(ulimit -Sn)" -lt "$want_nofile" ]; then
  ulimit -Sn "$(ulimit -Hn)" 2>/dev/null || true
  [ "$(ulimit -Sn)" = unlimited ] || [ "$(ulimit -Sn)" -ge "$want_nofile" ] ||
    lt_die "ulimit -n is $(ulimit -Sn) (hard $(ulimit -Hn)); $want_nofile needed for $KEEPALIVE_COUNT / $IDLE_COUNT connections"
fi

lt_init
lt_check_ports
lt_ensure_k6
if [ -n "${ROUTER_BIN:-}" ]; then LT_BIN=$ROUTER_BIN; fi
lt_build_router
mkdir -p "$LT_TMP/bin"
cp "$LT_BIN" "$LT_TMP/bin/cti-kaltura" || lt_die "cannot copy $LT_BIN"
LT_BIN="$LT_TMP/bin/cti-kaltura"

mkdir -p "$CHAOS_DIR/results"
out="$CHAOS_DIR/results/hostile-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
SUMMARY="$out/summary.txt"
FAILS=0
say() { printf '%s\n' "$*" | tee -a "$SUMMARY"; }
check() { # check NAME CONDITION-RESULT(0/1) DETAIL
  if [ "$2" = 0 ]; then say "  PASS  $1: $3"; else say "  FAIL  $1: $3"; FAILS=$((FAILS + 1)); fi
}
finding() { say "  FINDING  $*"; }
jget() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); v=eval(sys.argv[2], {"d": d}); print(v)' "$@"; }

say "hostile clients: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname), $(nproc) CPUs; uptime:$(uptime | sed 's/.*load average/ load average/')"
say "binary: $(sha256sum "$LT_BIN" | cut -c1-16) (copy of ${ROUTER_BIN:-target/release/cti-kaltura}); results: $out"

# The demo data plus one region (9001, subnet 198.51.100.0/24) whose only edge is
# xr-only.demo.cti-kaltura.test: an X-Real-IP of 198.51.100.7 that is believed shows up in the
# Location host (the 50 demo regions all hold all 9 demo edges, so their hosts cannot tell).
lt_python - "$LT_REPO/conf/routing.yaml" "$LT_TMP/routing.json" <<'EOF' || lt_die "cannot write the routing copy"
import json, sys
from ctk.snapshot import load_snapshot
doc = load_snapshot(sys.argv[1])
doc["version"] = "demo-1-hostile"
doc["regions"].append({"id": 9001, "name": "XrTest", "status": "ACTIVE", "server_group_ids": [9001]})
doc["subnets"].append({"id": 9001, "name": "xr", "cidr": "198.51.100.0/24", "region_id": 9001})
doc["server_groups"].append({"id": 9001, "name": "xr", "status": "ACTIVE", "server_ids": [9001]})
doc["servers"].append({"id": 9001, "type": "EDGE", "domain_name": "xr-only.demo.cti-kaltura.test",
                       "ip": "192.0.2.250", "port": 80, "status": "ACTIVE", "availability": True,
                       "weight": 10, "prefix": None, "healthcheck_enabled": False})
json.dump(doc, open(sys.argv[2], "w"))
EOF
lt_make_config "$LT_TMP/routing.json"
cp "$LT_CONFIG" "$out/cti-kaltura.yaml"

# cfg_variant OUT [--trusted CIDR,CIDR] [--access-log-json] [--http KEY=VALUE]...: the base
# config (the load-test copy of conf/cti-kaltura.yaml) with these changes (`python3 -m ctk
# config`, lib/ctk/config.py), checked with -t.
cfg_variant() {
  local dst=$1
  shift
  lt_ctk config "$out/cti-kaltura.yaml" "$dst" "$@" || lt_die "cannot write config variant $dst"
  "$LT_BIN" -c "$dst" -t >"$dst.test.log" 2>&1 || { cat "$dst.test.log" >&2; lt_die "config variant $dst does not validate"; }
}
CFG_BASE="$out/cti-kaltura.yaml"
CFG_IDLE="$out/a-idle.yaml"
CFG_CUT="$out/cut.yaml"
CFG_SLOW="$out/slow.yaml"
CFG_XR_TRUSTED="$out/xr-loopback-trusted.yaml"
CFG_XR_UNTRUSTED="$out/xr-untrusted.yaml"
CFG_LIMIT="$out/client-limit.yaml"
cfg_variant "$CFG_IDLE" --http header_timeout_secs=60
cfg_variant "$CFG_CUT" --http header_timeout_secs="$CUT_SECS" --http keepalive_timeout_secs=$((CUT_SECS + 1))
cfg_variant "$CFG_SLOW" --http header_timeout_secs="$CUT_SECS"
cfg_variant "$CFG_XR_TRUSTED" --access-log-json
cfg_variant "$CFG_XR_UNTRUSTED" --trusted 10.0.0.0/8 --access-log-json
cfg_variant "$CFG_LIMIT" --trusted 10.0.0.0/8 --http max_connections_per_client="$LIMIT"

METRICS="http://$LT_MGMT_ADDR/metrics"
BASE="http://127.0.0.1:$PORT"
PID=""
ROUTER_LOG=""
# start_router CONFIG LOG: (re)starts the router on a copy of CONFIG.
start_router() {
  lt_stop_router
  cp "$1" "$LT_CONFIG"
  ROUTER_LOG=$2
  lt_start_router "$ROUTER_LOG"
  PID=$LT_ROUTER_PID
  say "router pid $PID on $(basename "$1"), limits: $(grep 'Max open files' /proc/"$PID"/limits | awk '{print "nofile soft " $4 ", hard " $5}')"
}
# apply_config FILE: atomically replaces the config, SIGHUP, waits for "applied" and then for
# the reload's other log lines (the routing file is reloaded too), so that they are not counted
# as lines of the next step.
apply_config() {
  local before n
  before=$(grep -c 'SIGHUP: configuration .* applied' "$ROUTER_LOG")
  cp "$1" "$LT_CONFIG.tmp" && mv -f "$LT_CONFIG.tmp" "$LT_CONFIG"
  kill -HUP "$PID"
  for _ in $(seq 1 50); do
    if [ "$(grep -c 'SIGHUP: configuration .* applied' "$ROUTER_LOG")" -gt "$before" ]; then
      for _ in $(seq 1 20); do
        n=$(wc -l <"$ROUTER_LOG")
        sleep 0.3
        [ "$(wc -l <"$ROUTER_LOG")" = "$n" ] && return 0
      done
      return 0
    fi
    sleep 0.1
  done
  lt_log "warning: no 'configuration applied' line after SIGHUP"
  return 1
}

loglines() { wc -l <"$ROUTER_LOG"; }
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$PID/status"; }
fds() { ls "/proc/$PID/fd" | wc -l; }
metric() { $HOSTILE metric "$METRICS" "$@"; }
closes() { metric cti_kaltura_client_connections_closed_total "reason=\"$1\""; }
gauge() { metric cti_kaltura_client_connections; }
# wait_status FILE SECS: waits until a holder has written its status file.
wait_status() {
  local i
  for i in $(seq 1 $(($2 * 5))); do
    [ -f "$1" ] && return 0
    sleep 0.2
  done
  return 1
}
pyok() { python3 -c "import sys; print(0 if ($1) else 1)"; }

# run_wait OUT ERR CMD...: runs CMD (stdout to OUT, stderr to ERR) in the background and waits
# for it. A signal to this script is then handled at once (bash runs a trap only after a
# foreground command ends), and the exit trap stops CMD too.
CUR_PID=""
run_wait() {
  local stdout=$1 stderr=$2 rc
  shift 2
  if [ "$stdout" = "$stderr" ]; then
    "$@" >"$stdout" 2>&1 &
  else
    "$@" >"$stdout" 2>>"$stderr" &
  fi
  CUR_PID=$!
  wait "$CUR_PID"
  rc=$?
  CUR_PID=""
  return "$rc"
}
lt_on_exit '[ -z "$CUR_PID" ] || kill "$CUR_PID" 2>/dev/null'

# k6 at a fixed rate over the demo mix (load_testing/test_requests.js); writes
# "p50 p99 rate checks_ok checks_all failed" to $out/NAME-k6.res.
k6_fixed() {
  local name=$1 secs=${2:-$LOAD_SECS}
  run_wait "$out/$name-k6.txt" "$out/$name-k6.txt" env SCENARIO=open RATE="$LOAD_RATE" DURATION="${secs}s" P95_MS=1000 P99_MS=1000 \
    "$LT_K6" run --no-usage-report --quiet --summary-export "$out/$name-k6.json" "$LT_DIR/test_requests.js"
  lt_ctk k6-figures "$out/$name-k6.json" >"$out/$name-k6.res"
}

# wrk flat out, one live URL; writes "p50_ms p99_ms req_per_sec non3xx errors" to
# $out/NAME-wrk.res.
wrk_run() {
  local name=$1
  run_wait "$out/$name-wrk.txt" "$out/$name-wrk.txt" wrk -t2 -c16 -d"${LOAD_SECS}s" --latency "$BASE/btv/live/hls/epg_0"
  python3 - "$out/$name-wrk.txt" >"$out/$name-wrk.res" <<'EOF'
import re, sys
t = open(sys.argv[1]).read()
def ms(s):
    v, unit = re.match(r"([\d.]+)(us|ms|s)", s).groups()
    return float(v) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
p50 = ms(re.search(r"^\s+50%\s+(\S+)", t, re.M).group(1))
p99 = ms(re.search(r"^\s+99%\s+(\S+)", t, re.M).group(1))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
non = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
err = re.search(r"Socket errors: (.*)", t)
print(f"{p50:.3f} {p99:.3f} {rps:.0f} {non.group(1) if non else 0} {err.group(1).replace(' ', '') if err else 'none'}")
EOF
}

# --- a. silent connections --------------------------------------------------------------------
say ""
say "a. $IDLE_COUNT silent connections (connect, send nothing); router with header_timeout_secs 60 so they stay open through the measurement"
start_router "$CFG_IDLE" "$out/router-a.log"
rss_start=$(rss)
k6_fixed baseline
read -r b_p50 b_p99 b_rate b_ok b_all b_failed <"$out/baseline-k6.res"
wrk_run baseline
read -r bw_p50 bw_p99 bw_rps bw_non bw_err <"$out/baseline-wrk.res"
rss_base=$(rss); fds_base=$(fds)
say "  baseline   k6 ${LOAD_RATE}/s: p50 ${b_p50} ms, p99 ${b_p99} ms, ${b_rate} req/s, checks ${b_ok}/${b_all}, failed ${b_failed}; wrk: p50 ${bw_p50} ms, p99 ${bw_p99} ms, ${bw_rps} req/s, non-3xx ${bw_non}, socket errors ${bw_err}"

idle_status="$out/idle-$IDLE_COUNT.json"
t_idle0=$SECONDS
$HOSTILE idle --count "$IDLE_COUNT" --hold-max 55 --status "$idle_status" >"$out/idle-$IDLE_COUNT.out" 2>>"$out/hostile.log" &
idle_pid=$!
lt_on_exit "kill $idle_pid 2>/dev/null"
wait_status "$idle_status" 20 || lt_die "the idle-connection holder did not report within 20 s"
sleep 2
rss_idle=$(rss); fds_idle=$(fds); gauge_idle=$(gauge)
connected=$(jget "$idle_status" 'd["connected"]')
k6_fixed idle
read -r i_p50 i_p99 i_rate i_ok i_all i_failed <"$out/idle-k6.res"
wrk_run idle
read -r iw_p50 iw_p99 iw_rps iw_non iw_err <"$out/idle-wrk.res"
rss_idle_end=$(rss)
kill -TERM "$idle_pid" 2>/dev/null
wait "$idle_pid" 2>/dev/null
held_total=$((SECONDS - t_idle0))
sleep 3
rss_after=$(rss); fds_after=$(fds); gauge_after=$(gauge)
held_secs=$(jget "$idle_status" 'd["held_secs"]')
closed_early=$(jget "$idle_status" 'd["closed_by_router"]')
say "  with idle  k6 ${LOAD_RATE}/s: p50 ${i_p50} ms, p99 ${i_p99} ms, ${i_rate} req/s, checks ${i_ok}/${i_all}, failed ${i_failed}; wrk: p50 ${iw_p50} ms, p99 ${iw_p99} ms, ${iw_rps} req/s, non-3xx ${iw_non}, socket errors ${iw_err}"
say "  silent connections: $connected connected, held ${held_secs} s (${held_total} s from the first connect), $closed_early closed by the router meanwhile; router fds: ${fds_base} before, ${fds_idle} with them, ${fds_after} after; gauge cti_kaltura_client_connections ${gauge_idle} with them, ${gauge_after} after"
per_conn=$(python3 -c "print(f'{($rss_idle - $rss_base) / max(1, $connected):.2f}')")
say "  router RSS: ${rss_start} kB at start, ${rss_base} kB after the baseline, ${rss_idle} kB with $connected silent (${rss_idle_end} kB after the loads), ${rss_after} kB 3 s after closing them -> ${per_conn} kB per silent connection"
k6_fixed baseline-after
read -r a_p50 a_p99 a_rate a_ok a_all a_failed <"$out/baseline-after-k6.res"
wrk_run baseline-after
read -r aw_p50 aw_p99 aw_rps aw_non aw_err <"$out/baseline-after-wrk.res"
say "  after      k6 ${LOAD_RATE}/s: p50 ${a_p50} ms, p99 ${a_p99} ms, ${a_rate} req/s, checks ${a_ok}/${a_all}, failed ${a_failed}; wrk: p50 ${aw_p50} ms, p99 ${aw_p99} ms, ${aw_rps} req/s, non-3xx ${aw_non}, socket errors ${aw_err}"
worse_p99=$(python3 -c "print(max($b_p99, $a_p99))")
check "idle: all connected and held (none cut before the 60 s header timeout)" "$([ "$connected" = "$IDLE_COUNT" ] && [ "$closed_early" = 0 ] && echo 0 || echo 1)" "$connected/$IDLE_COUNT, $closed_early cut early"
check "idle: the connection gauge counts them" "$(pyok "$gauge_idle >= $IDLE_COUNT and $gauge_after < $IDLE_COUNT / 100 + 20")" "$gauge_idle with them, $gauge_after after"
check "idle: normal clients still served" "$([ "$i_ok" = "$i_all" ] && [ "$i_failed" = 0 ] && [ "$iw_non" = 0 ] && echo 0 || echo 1)" "k6 checks $i_ok/$i_all, failed $i_failed; wrk non-3xx $iw_non"
check "idle: p99 at ${LOAD_RATE}/s within 2x the worse baseline + 2 ms" "$(pyok "$i_p99 <= 2 * $worse_p99 + 2")" "p99 ${i_p99} ms with idle vs ${b_p99} ms before and ${a_p99} ms after"
if [ "$QUICK" != 1 ]; then
  # More rounds: is the memory of the first one reused (plateau), or does RSS grow each round?
  rss_rounds=""
  for round in 2 3 4; do
    $HOSTILE idle --count "$IDLE_COUNT" --hold-max 30 --status "$out/idle-round$round.json" >"$out/idle-round$round.out" 2>>"$out/hostile.log" &
    idle2_pid=$!
    lt_on_exit "kill $idle2_pid 2>/dev/null"
    wait_status "$out/idle-round$round.json" 20
    sleep 3
    rss_with=$(rss)
    kill -TERM "$idle2_pid" 2>/dev/null
    wait "$idle2_pid" 2>/dev/null
    sleep 2
    rss_rounds="$rss_rounds $rss_with $(rss)"
    say "  round $round of $IDLE_COUNT silent: RSS $rss_with kB with them, $(rss) kB after closing them"
  done
  read -r r2w _r2a r3w _r3a r4w r4a <<<"$rss_rounds"
  check "idle: no leak over rounds (round 4 peak within 10% of round 3's)" "$(pyok "$r4w <= 1.1 * $r3w")" "peaks ${rss_idle}, ${r2w}, ${r3w}, ${r4w} kB; ${r4a} kB after the last round"
  [ "$r4a" -gt $((2 * rss_base)) ] &&
    finding "silent-connection memory is not all given back: ${r4a} kB RSS after every connection closed (${rss_base} kB before any); peak per round ${rss_idle} / ${r2w} / ${r3w} / ${r4w} kB"
fi

# --- a2. keep-alive connections, idle after one answer ---------------------------------------
say ""
say "a2. $KEEPALIVE_COUNT keep-alive connections, each idle after one answer (fresh router, default config: keepalive_timeout_secs 60)"
start_router "$CFG_BASE" "$out/router.log"
wrk -t1 -c4 -d2s "$BASE/btv/live/hls/epg_0" >"$out/keepalive-warmup-wrk.txt" 2>&1
sleep 1
ka_rss_before=$(rss); ka_fds_before=$(fds)
ka_status="$out/keepalive-$KEEPALIVE_COUNT.json"
ka_lines0=$(loglines)
$HOSTILE keepalive --count "$KEEPALIVE_COUNT" --hold-max 45 --status "$ka_status" >"$out/keepalive-$KEEPALIVE_COUNT.out" 2>>"$out/hostile.log" &
ka_pid=$!
lt_on_exit "kill $ka_pid 2>/dev/null"
wait_status "$ka_status" 60 || lt_die "the keep-alive holder did not report within 60 s"
sleep 2
ka_rss_with=$(rss); ka_fds_with=$(fds); ka_gauge_with=$(gauge)
kill -TERM "$ka_pid" 2>/dev/null
wait "$ka_pid" 2>/dev/null
sleep 3
ka_rss_after=$(rss); ka_fds_after=$(fds); ka_gauge_after=$(gauge)
ka_answered=$(jget "$ka_status" 'd["connected_and_answered"]')
ka_per=$(python3 -c "print(f'{($ka_rss_with - $ka_rss_before) / max(1, $ka_answered):.2f}')")
say "  $ka_answered of $KEEPALIVE_COUNT connected and answered ($(jget "$ka_status" 'd["statuses"]'), $(jget "$ka_status" 'd["failed"]') failed) in $(jget "$ka_status" 'd["open_secs"]') s; held $(jget "$ka_status" 'd["held_secs"]') s more; $(jget "$ka_status" 'd["closed_by_router"]') closed by the router meanwhile"
say "  router RSS: ${ka_rss_before} kB before, ${ka_rss_with} kB with them, ${ka_rss_after} kB 3 s after closing them -> ${ka_per} kB per keep-alive connection; fds ${ka_fds_before} / ${ka_fds_with} / ${ka_fds_after}; gauge ${ka_gauge_with} with them, ${ka_gauge_after} after; log lines added $(( $(loglines) - ka_lines0 ))"
check "keep-alive: all answered and held" "$([ "$ka_answered" = "$KEEPALIVE_COUNT" ] && [ "$(jget "$ka_status" 'd["closed_by_router"]')" = 0 ] && echo 0 || echo 1)" "$ka_answered/$KEEPALIVE_COUNT answered, $(jget "$ka_status" 'd["closed_by_router"]') cut while held"
check "keep-alive: the connection gauge counts them" "$(pyok "$ka_gauge_with >= $KEEPALIVE_COUNT and $ka_gauge_after < 20")" "$ka_gauge_with with them, $ka_gauge_after after"

# --- a3. the cut ------------------------------------------------------------------------------
say ""
say "a3. the cut: header_timeout_secs $CUT_SECS, keepalive_timeout_secs $((CUT_SECS + 1)) (SIGHUP): 50 silent + 10 partial-header connections, 50 idle keep-alive ones"
apply_config "$CFG_CUT"
lines0=$(loglines)
ht0=$(closes header_timeout); it0=$(closes idle_timeout)
$HOSTILE idle --count 50 --partial 10 --hold-max $((CUT_SECS + 6)) --status "$out/cut-idle.json" >"$out/cut-idle.out" 2>>"$out/hostile.log" &
c1=$!
$HOSTILE keepalive --count 50 --batch 50 --hold-max $((CUT_SECS + 6)) --status "$out/cut-keepalive.json" >"$out/cut-keepalive.out" 2>>"$out/hostile.log" &
c2=$!
lt_on_exit "kill $c1 $c2 2>/dev/null"
wait "$c1" "$c2" 2>/dev/null
sleep 0.5
lines1=$(loglines)
ht1=$(closes header_timeout); it1=$(closes idle_timeout)
ci="$out/cut-idle.json"; ck="$out/cut-keepalive.json"
say "  silent connections cut after $(jget "$ci" 'd["closed_silent"]') s, partial-header ones after $(jget "$ci" 'd["closed_partial"]') s (from the connect); how: $(jget "$ci" 'd["close_kinds"]'); bytes received: $(jget "$ci" 'd["answers_received"]'); still open at the end: $(jget "$ci" 'd["still_open_at_end"]')"
say "  keep-alive connections ($(jget "$ck" 'd["statuses"]')) cut $(jget "$ck" 'd["closed_after_answer"]') s after their answer; how: $(jget "$ck" 'd["close_kinds"]'); still open: $(jget "$ck" 'd["still_open_at_end"]')"
say "  counters: header_timeout +$((ht1 - ht0)), idle_timeout +$((it1 - it0)); router log lines added: $((lines1 - lines0))"
check "cut: silent and partial-header connections closed ${CUT_SECS}-$((CUT_SECS + 1)) s after accept, no answer" "$(jget "$ci" "0 if d['still_open_at_end'] == 0 and d['closed_by_router'] == 60 and d['answers_received'] == 0 and all($CUT_SECS - 0.2 <= d[k]['min'] and d[k]['max'] <= $CUT_SECS + 1 for k in ('closed_silent', 'closed_partial')) else 1")" "silent $(jget "$ci" 'd["closed_silent"]'), partial $(jget "$ci" 'd["closed_partial"]')"
check "cut: idle keep-alive connections closed $((CUT_SECS + 1))-$((CUT_SECS + 2)) s after the answer" "$(jget "$ck" "0 if d['connected_and_answered'] == 50 and d['still_open_at_end'] == 0 and $CUT_SECS + 1 - 0.2 <= d['closed_after_answer']['min'] and d['closed_after_answer']['max'] <= $CUT_SECS + 2 and list(d['close_kinds']) == ['eof'] else 1")" "$(jget "$ck" 'd["closed_after_answer"]')"
check "cut: counted (header_timeout +60, idle_timeout +50), no log line" "$([ $((ht1 - ht0)) = 60 ] && [ $((it1 - it0)) = 50 ] && [ $((lines1 - lines0)) = 0 ] && echo 0 || echo 1)" "header_timeout +$((ht1 - ht0)), idle_timeout +$((it1 - it0)), $((lines1 - lines0)) lines"

# --- b. slow headers ----------------------------------------------------------------------------
say ""
say "b. slow headers, 1 byte per 200 ms (header_timeout_secs $CUT_SECS, keep-alive 60 s; SIGHUP): 1 client alone, then waves of 100 while k6 measures normal clients"
apply_config "$CFG_SLOW"
ht0=$(closes header_timeout)
lines0=$(loglines)
run_wait "$out/slow-1.json" "$out/hostile.log" $HOSTILE slow --clients 1 --interval 0.2 --bytes 40 --linger 2
s1="$out/slow-1.json"
say "  1 client: sent $(jget "$s1" 'd["bytes_sent"]["max"]') of $(jget "$s1" 'd["request_bytes"]') bytes, cut at $(jget "$s1" 'd["close_times"]') s after connecting, how $(jget "$s1" 'd["close_kinds"]'), answers $(jget "$s1" 'd["answers_before_close"]') before / $(jget "$s1" 'd["answers_after_completing"]') after"
: >"$out/slow-waves.jsonl"
(
  n=0
  while [ ! -f "$out/slow-k6-done" ] && [ "$n" -lt "$SLOW_WAVES_MAX" ]; do
    $HOSTILE slow --clients 100 --interval 0.2 --bytes 40 --linger 2 >>"$out/slow-waves.jsonl" 2>>"$out/hostile.log"
    n=$((n + 1))
  done
) &
waves_pid=$!
lt_on_exit "kill $waves_pid 2>/dev/null"
sleep 1
k6_fixed slow
read -r s_p50 s_p99 s_rate s_ok s_all s_failed <"$out/slow-k6.res"
touch "$out/slow-k6-done"
wait "$waves_pid" 2>/dev/null
sleep 0.5
ht1=$(closes header_timeout)
lines1=$(loglines)
read -r w_n w_clients w_cut w_min w_max w_answers w_open w_kinds <<<"$(python3 - "$out/slow-waves.jsonl" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
kinds = {}
for r in rows:
    for k, v in r["close_kinds"].items():
        kinds[k] = kinds.get(k, 0) + v
print(len(rows), sum(r["connected"] for r in rows), sum(r["closed_by_router_during_trickle"] for r in rows),
      min((r["close_times"].get("min", 99) for r in rows), default=99),
      max((r["close_times"].get("max", 99) for r in rows), default=99),
      sum(r["answers_before_close"] for r in rows) + sum(sum(v for k, v in r["answers_after_completing"].items() if k.isdigit()) for r in rows),
      sum(r["open_after_trickle"] for r in rows), json.dumps(kinds, separators=(",", ":")))
EOF
)"
say "  $w_n waves of 100: $w_clients connected, $w_cut cut by the router, at ${w_min}-${w_max} s after connecting, how $w_kinds; answers $w_answers; still open after the trickle $w_open"
say "  normal clients meanwhile, k6 ${LOAD_RATE}/s ${LOAD_SECS} s: p50 ${s_p50} ms, p99 ${s_p99} ms, ${s_rate} req/s, checks ${s_ok}/${s_all}, failed ${s_failed} (baseline p50 ${b_p50}, p99 ${b_p99})"
say "  counter header_timeout +$((ht1 - ht0)) (slow clients: $((w_clients + 1))); router log lines added: $((lines1 - lines0))"
check "slow: the single client is cut at the deadline (${CUT_SECS}-$((CUT_SECS + 1)) s), unanswered" "$(jget "$s1" "0 if d['closed_by_router_during_trickle'] == 1 and $CUT_SECS - 0.2 <= d['close_times']['min'] <= $CUT_SECS + 1 and d['answers_before_close'] == 0 and not d['answers_after_completing'] else 1")" "cut at $(jget "$s1" 'd["close_times"]["min"]') s"
check "slow: every wave client cut at the deadline, unanswered" "$(pyok "$w_n > 0 and $w_cut == $w_clients and $w_open == 0 and $w_answers == 0 and $CUT_SECS - 0.2 <= $w_min and $w_max <= $CUT_SECS + 1")" "$w_cut/$w_clients cut at ${w_min}-${w_max} s, $w_answers answers"
check "slow: counted as header_timeout, no log line" "$([ $((ht1 - ht0)) = $((w_clients + 1)) ] && [ $((lines1 - lines0)) = 0 ] && echo 0 || echo 1)" "+$((ht1 - ht0)) for $((w_clients + 1)) slow clients, $((lines1 - lines0)) lines"
check "slow: normal clients served" "$([ "$s_ok" = "$s_all" ] && [ "$s_failed" = 0 ] && echo 0 || echo 1)" "checks $s_ok/$s_all, failed $s_failed"
apply_config "$CFG_BASE"

# --- c. log flooding ----------------------------------------------------------------------------
say ""
say "c. log flooding: $FLOOD_COUNT invalid paths (/scan/<random>, /btv/live/bad%zz), 4 pipelined keep-alive connections"
c_before=$(metric cti_kaltura_requests_total 'kind="invalid"' 'outcome="bad_request"')
all_before=$(metric cti_kaltura_requests_total)
lines0=$(loglines)
run_wait "$out/flood.json" "$out/hostile.log" $HOSTILE flood --count "$FLOOD_COUNT" --conns 4 --window 64
sleep 1
lines1=$(loglines)
c_after=$(metric cti_kaltura_requests_total 'kind="invalid"' 'outcome="bad_request"')
all_after=$(metric cti_kaltura_requests_total)
fl="$out/flood.json"
answered=$(jget "$fl" 'd["answered"]')
answered400=$(jget "$fl" 'd["statuses"].get("400", 0)')
say "  client: sent $(jget "$fl" 'd["sent"]'), answered $answered ($(jget "$fl" 'd["statuses"]')), unanswered $(jget "$fl" 'd["unanswered"]'), reconnects $(jget "$fl" 'd["reconnects"]'), $(jget "$fl" 'd["secs"]') s, $(jget "$fl" 'd["req_per_sec"]') req/s"
say "  counter kind=invalid,outcome=bad_request: $c_before -> $c_after (+$((c_after - c_before))); all requests_total +$((all_after - all_before)); router log lines added: $((lines1 - lines0))"
check "flood: counter equals the 400 answers received" "$([ $((c_after - c_before)) = "$answered400" ] && [ "$answered400" = "$FLOOD_COUNT" ] && echo 0 || echo 1)" "+$((c_after - c_before)) counted, $answered400 answered 400 of $FLOOD_COUNT"
check "flood: bounded log lines (<= $LOG_LINES_MAX)" "$([ $((lines1 - lines0)) -le "$LOG_LINES_MAX" ] && echo 0 || echo 1)" "$((lines1 - lines0)) lines"

say "c2. 1000 connections that send half a request header and close (500 FIN, 500 RST)"
lines0=$(loglines)
all_before=$(metric cti_kaltura_requests_total)
cl_before=$(metric cti_kaltura_client_connections_closed_total)
run_wait "$out/partial.json" "$out/hostile.log" $HOSTILE partial --count 1000 --mode mixed
sleep 1
lines1=$(loglines)
all_after=$(metric cti_kaltura_requests_total)
cl_after=$(metric cti_kaltura_client_connections_closed_total)
say "  $(cat "$out/partial.json"); router log lines added: $((lines1 - lines0)); requests_total +$((all_after - all_before)); client_connections_closed_total +$((cl_after - cl_before))"
sed -n "$((lines0 + 1)),$((lines0 + 2))p" "$ROUTER_LOG" | sed 's/^/    /' | tee -a "$SUMMARY"
check "half headers: no log line, nothing counted as a request" "$([ $((lines1 - lines0)) = 0 ] && [ $((all_after - all_before)) = 0 ] && echo 0 || echo 1)" "$((lines1 - lines0)) lines, requests_total +$((all_after - all_before))"

# --- e. oversized requests ----------------------------------------------------------------------
say ""
say "e. oversized and malformed requests (limits: max_uri_bytes 8192, max_header_count 64, max_header_bytes 16384; hard cap on a head 8192 + 16384 + 4*64 + 1024 = 25,856 bytes or 257 header lines)"
lines0=$(loglines)
run_wait "$out/oversize.json" "$out/hostile.log" $HOSTILE oversize --metrics "$METRICS"
lines1=$(loglines)
python3 - "$out/oversize.json" <<'EOF' | tee -a "$SUMMARY"
import json, sys
for c in json.load(open(sys.argv[1]))["cases"]:
    reuse = c["followup_status"]
    print(f'  {c["case"]:<52} -> {c["status"]} {c["body"]!r:<28} counted {c["counted_in_requests_total"]}, closes {c["closes_counted"] or {}}, '
          f'connection {"kept (next request " + str(reuse) + ")" if isinstance(reuse, int) else "closed"}'
          + (f', client saw {c["error"]}' if c["error"] else ""))
EOF
say "  router log lines added: $((lines1 - lines0))"
oversize_check() { # oversize_check PYTHON-DICT-OF-CASES: case -> (status, connection kept?, head_too_large count[, bad_request count])
  python3 - "$out/oversize.json" "$1" <<'EOF'
import ast, json, sys
want = ast.literal_eval(sys.argv[2])
got = {c["case"]: c for c in json.load(open(sys.argv[1]))["cases"]}
bad = []
for name, (status, kept, too_large, *rest) in want.items():
    refused = rest[0] if rest else 0
    c = got.get(name)
    if c is None:
        bad.append(f"{name}: missing")
        continue
    c_kept = isinstance(c["followup_status"], int)
    closes = c["closes_counted"] or {}
    c_too_large = closes.get("head_too_large", 0)
    c_refused = closes.get("bad_request", 0)
    others = {k: v for k, v in closes.items() if k not in ("head_too_large", "bad_request")}
    if (c["status"], c_kept, c["counted_in_requests_total"], c_too_large, c_refused) != (status, kept, 1, too_large, refused) or others:
        bad.append(f'{name}: {c["status"]} kept={c_kept} counted={c["counted_in_requests_total"]} closes={c["closes_counted"]}')
print(1 if bad else 0, "; ".join(bad) or "as expected")
EOF
}
read -r ok1 why1 <<<"$(oversize_check '{
  "uri 8192 bytes (router limit: allowed)": (302, True, 0), "uri 8193 bytes": (414, True, 0),
  "uri 10 kB (10240 bytes)": (414, True, 0), "64 headers (router limit: allowed)": (302, True, 0),
  "65 headers": (431, True, 0), "100 headers": (431, True, 0), "256 headers": (431, True, 0),
  "257 headers": (431, True, 0),
  "header bytes 16 kB (one 16000-byte value: allowed)": (302, True, 0),
  "header bytes 20 kB (one 20000-byte value)": (431, True, 0)}')"
check "oversize: router limits answer 302 / 414 / 431, counted, connection kept" "$ok1" "$why1"
read -r ok2 why2 <<<"$(oversize_check '{
  "uri 65534 bytes": (414, False, 1), "uri 65535 bytes": (414, False, 1),
  "uri 70000 bytes": (414, False, 1), "uri 2 MiB": (414, False, 1),
  "header block 1000 kB (50 values of 20 kB)": (431, False, 1),
  "header block 1.1 MiB (55 values of 20 kB)": (431, False, 1),
  "header block 2 MiB (128 values of 16 kB)": (431, False, 1),
  "header block 4 MiB (one 4 MiB value)": (431, False, 1)}')"
check "oversize: heads over the hard cap (bytes) answer 414 / 431 and close, counted as a request and as head_too_large" "$ok2" "$why2"
read -r ok3 why3 <<<"$(oversize_check '{"300 headers": (431, False, 1)}')"
check "oversize: a head of 300 header lines answers 431 and closes, counted as a request and as head_too_large" "$ok3" "$why3"
read -r ok4 why4 <<<"$(oversize_check '{
  "malformed: control byte in the method": (400, False, 0, 1),
  "malformed: header line without a colon": (400, False, 0, 1),
  "malformed: TLS ClientHello to the plain port": (400, False, 0, 1)}')"
check "malformed heads (not HTTP/1): 400, connection closed, counted as a request and as bad_request" "$ok4" "$why4"
check "oversize / malformed: no log line" "$([ $((lines1 - lines0)) = 0 ] && echo 0 || echo 1)" "$((lines1 - lines0)) lines"

# --- d. untrusted X-Real-IP ---------------------------------------------------------------------
say ""
say "d. X-Real-IP / X-Forwarded-For from 127.0.0.1 (path /vod/xr/<case>; access log on for the region)"
for ip in 127.0.0.1 198.51.100.7 87.22.156.10 203.0.113.5; do
  snap_bin="$(dirname "${ROUTER_BIN:-$LT_REPO/target/release/cti-kaltura}")/cti-kaltura-snapshot"
  [ -x "$snap_bin" ] || snap_bin="$LT_REPO/target/release/cti-kaltura-snapshot"
  [ -x "$snap_bin" ] && "$snap_bin" route "$LT_TMP/routing.json" "$ip" /vod/a/b/c 2>/dev/null | $HOSTILE routesum | tee -a "$SUMMARY"
done
XR_CASES=(
  "none="
  "xri-own-region-198.51.100.7=X-Real-IP:198.51.100.7"
  "xri-region7-87.22.156.10=X-Real-IP:87.22.156.10"
  "xri-no-subnet-203.0.113.5=X-Real-IP:203.0.113.5"
  "xri-malformed=X-Real-IP:1.2.3.4, 5.6.7.8"
  "xff-198.51.100.7=X-Forwarded-For:198.51.100.7"
  "forwarded-198.51.100.7=Forwarded:for=198.51.100.7"
)
xr_run() { # xr_run LABEL
  local label=$1 c name
  : >"$out/xr-$label.jsonl"
  for c in "${XR_CASES[@]}"; do
    name=${c%%=*}
    $HOSTILE xrealip --path "/vod/xr/$name" --case "$c" >>"$out/xr-$label.jsonl" 2>>"$out/hostile.log"
  done
  sleep 0.3
  python3 - "$out/xr-$label.jsonl" "$ROUTER_LOG" "$label" <<'EOF' | tee -a "$SUMMARY"
import json, sys
from urllib.parse import urlsplit
rows = [json.loads(l) for l in open(sys.argv[1])]
access = {}
for line in open(sys.argv[2], errors="replace"):
    if " access] " in line:
        rec = json.loads(line.split(" access] ", 1)[1])
        access[rec["path"]] = rec
for row in rows:
    r = row["results"][0]
    rec = access.get(row["path"], {})
    host = urlsplit(r["location"]).netloc if r["location"] else "-"
    print(f'  [{sys.argv[3]}] {r["case"]:<30} {r["status"]} Location host {host:<32} client {rec.get("client")} region {rec.get("region_id")} reason {rec.get("reason")}')
EOF
}
apply_config "$CFG_XR_TRUSTED"
xr_run loopback-trusted
apply_config "$CFG_XR_UNTRUSTED"
xr_run untrusted
apply_config "$CFG_BASE"
check "untrusted X-Real-IP / X-Forwarded-For / Forwarded change nothing" "$(python3 - "$out/xr-untrusted.jsonl" "$ROUTER_LOG" <<'EOF'
import json, sys
rows = [json.loads(l)["results"][0] for l in open(sys.argv[1])]
access = {}
for line in open(sys.argv[2], errors="replace"):
    if " access] " in line:
        rec = json.loads(line.split(" access] ", 1)[1])
        access.setdefault(rec["path"], []).append(rec)
bad = [r["case"] for r in rows if r["status"] != 302 or "xr-only" in (r["location"] or "")
       or access.get("/vod/xr/" + r["case"], [{}])[-1].get("client") != "127.0.0.1"]
print(1 if bad else 0)
EOF
)" "every case 302 from 127.0.0.1's region, never the xr-only edge"
check "positive control: trusted X-Real-IP is used" "$(python3 - "$out/xr-loopback-trusted.jsonl" <<'EOF'
import json, sys
rows = {json.loads(l)["results"][0]["case"]: json.loads(l)["results"][0] for l in open(sys.argv[1])}
ok = ("xr-only" in (rows["xri-own-region-198.51.100.7"]["location"] or "")
      and rows["xri-no-subnet-203.0.113.5"]["status"] == 404 and rows["xri-malformed"]["status"] == 400
      and "xr-only" not in (rows["xff-198.51.100.7"]["location"] or ""))
print(0 if ok else 1)
EOF
)" "198.51.100.7 -> xr-only edge, 203.0.113.5 -> 404, malformed -> 400, X-Forwarded-For ignored"

# --- f. per-client connection limit -------------------------------------------------------------
say ""
say "f. per-client limit: trusted_proxies [\"10.0.0.0/8\"], max_connections_per_client $LIMIT (SIGHUP); $LIMIT_CONNS connections from 127.0.0.1, one from 127.0.0.2"
apply_config "$CFG_LIMIT"
cl0=$(closes client_limit)
lines0=$(loglines)
run_wait "$out/client-limit.json" "$out/hostile.log" $HOSTILE limit --count "$LIMIT_CONNS" --source 127.0.0.1 --other-source 127.0.0.2
sleep 0.3
cl1=$(closes client_limit)
lines1=$(loglines)
li="$out/client-limit.json"
say "  $(jget "$li" 'd["connected"]') connected from 127.0.0.1 in $(jget "$li" 'd["open_secs"]') s: $(jget "$li" 'd["closed_at_accept"]') closed by the router before any request ($(jget "$li" 'd["closed_at_accept_kinds"]')), $(jget "$li" 'd["served"]') served ($(jget "$li" 'd["served_statuses"]'))"
say "  meanwhile one more from 127.0.0.1: $(jget "$li" 'd["one_more_from_source"]'); one from 127.0.0.2: $(jget "$li" 'd["from_other_source"]'); from 127.0.0.1 after closing them all: $(jget "$li" 'd["from_source_after_closing_all"]')"
say "  counter client_limit +$((cl1 - cl0)); router log lines added: $((lines1 - lines0))"
over=$((LIMIT_CONNS - LIMIT))
check "client limit: exactly $LIMIT served, $over closed at accept" "$(jget "$li" "0 if d['connected'] == $LIMIT_CONNS and d['served'] == $LIMIT and d['closed_at_accept'] == $over and d['served_statuses'] == {'302': $LIMIT} else 1")" "$(jget "$li" 'd["served"]') served, $(jget "$li" 'd["closed_at_accept"]') closed at accept"
check "client limit: counted ($over + the extra one = $((over + 1)))" "$([ $((cl1 - cl0)) = $((over + 1)) ] && echo 0 || echo 1)" "client_limit +$((cl1 - cl0))"
check "client limit: another address served meanwhile, 127.0.0.1 again once closed, one more refused" "$(jget "$li" "0 if d['from_other_source'] == 302 and d['from_source_after_closing_all'] == 302 and not isinstance(d['one_more_from_source'], int) else 1")" "127.0.0.2: $(jget "$li" 'd["from_other_source"]'), 127.0.0.1 after: $(jget "$li" 'd["from_source_after_closing_all"]'), extra: $(jget "$li" 'd["one_more_from_source"]')"
apply_config "$CFG_BASE"

# --- end ----------------------------------------------------------------------------------------
say ""
say "router RSS at the end: $(rss) kB; close counters: header_timeout $(closes header_timeout), idle_timeout $(closes idle_timeout), client_limit $(closes client_limit), head_too_large $(closes head_too_large); router log: $(loglines) lines ($ROUTER_LOG)"
say "hostile: $([ "$FAILS" = 0 ] && echo PASS || echo "FAIL ($FAILS check(s))")"
[ "$FAILS" = 0 ]
