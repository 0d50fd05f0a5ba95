#!/usr/bin/env bash
# Hostile clients against the release router (issue 8, "Hostile clients"): measures and prints
#
#   a. 5,000 idle connections (connect, send nothing): routing latency and req/s of normal
#      clients with them open vs a baseline (k6 at a fixed rate and wrk flat out), the router's
#      RSS before / with / after them (memory per idle connection), and when the router cuts
#      idle connections (50 silent + 10 with a partial header; Pingora's 60 s per-read timeout)
#   b. slow headers: clients that send a request header one byte per second (20 bytes), and
#      one byte per 14 s across the 60 s mark; whether the router cuts them, and normal
#      clients meanwhile
#   c. log flooding: 100,000 requests with invalid paths (/scan/<random>, /btv/live/bad%zz):
#      router log lines added, and cti_kaltura_requests_total{kind="invalid",outcome=
#      "bad_request"} against the answers the client got; also 1,000 connections that send
#      half a header and close (FIN or RST)
#   d. untrusted X-Real-IP: with trusted_proxies ["10.0.0.0/8"] (SIGHUP), X-Real-IP /
#      X-Forwarded-For from 127.0.0.1 change nothing; positive control with loopback trusted
#   e. oversized requests: the router's limits (414 / 431) and Pingora's own (URI over
#      65,534 bytes, over 256 headers, header block over 1 MiB): status, connection reuse, and
#      whether each is counted in cti_kaltura_requests_total
#
#   load_testing/chaos/hostile.sh
#   SKIP_BUILD=1 ROUTER_BIN=/path/to/cti-kaltura load_testing/chaos/hostile.sh
#   QUICK=1 load_testing/chaos/hostile.sh          # skips the 75 s idle-timeout wait
#
# Environment (besides lib/router.sh's SKIP_BUILD, READY_TIMEOUT_SECS, STOP_TIMEOUT_SECS):
#   PORT, MGMT_PORT      router ports (default 4101, 4102; everything on 127.0.0.1)
#   ROUTER_BIN           router binary (default target/release/cti-kaltura; copied to a temp
#                        dir first so a rebuild during the run changes nothing)
#   IDLE_COUNT           idle connections for (a) (default 5000)
#   LOAD_RATE, LOAD_SECS k6 fixed rate and duration of each latency run (default 500, 10)
#   FLOOD_COUNT          invalid requests for (c) (default 100000)
#   LOG_LINES_MAX        most router log lines the flood may add (default 5)
#   QUICK=1              skip the idle-timeout / slow-across-60-s part (about 75 s)
# Results: load_testing/chaos/results/hostile-<timestamp>/ (summary.txt, router.log, one JSON/text
# file per step). Exit status: 0 when every check held, 1 otherwise. Findings that are
# measurements rather than pass/fail (no total header deadline, per-connection error lines)
# are printed as FINDING.
set -uo pipefail

PORT=${PORT:-4101}
MGMT_PORT=${MGMT_PORT:-4102}
# shellcheck source=../lib/router.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/router.sh"
CHAOS_DIR="$LT_DIR/chaos"
HOSTILE="python3 $CHAOS_DIR/hostile.py --host 127.0.0.1 --port $PORT"
IDLE_COUNT=${IDLE_COUNT:-5000}
LOAD_RATE=${LOAD_RATE:-500}
LOAD_SECS=${LOAD_SECS:-10}
FLOOD_COUNT=${FLOOD_COUNT:-100000}
LOG_LINES_MAX=${LOG_LINES_MAX:-5}
QUICK=${QUICK:-0}
[ "$HOST" = 127.0.0.1 ] || lt_die "hostile.sh runs on 127.0.0.1 only (HOST=$HOST)"
[ -z "${ROUTER_CONFIG:-}" ] || lt_die "hostile.sh writes its own config; unset ROUTER_CONFIG"
command -v wrk >/dev/null || lt_die "wrk is needed (Debian: apt-get install -y wrk)"

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
jget() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); v=eval(sys.argv[2], {}, {"d": d}); print(v)' "$@"; }

say "hostile clients: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname), $(nproc) CPUs; uptime:$(uptime | sed 's/.*load average/ load average/')"
say "binary: $(sha256sum "$LT_BIN" | cut -c1-16) (copy of ${ROUTER_BIN:-target/release/cti-kaltura}); results: $out"

# The demo data plus one region (9001, subnet 198.51.100.0/24) whose only edge is
# xr-only.demo.cti-kaltura.test: an X-Real-IP of 198.51.100.7 that is believed shows up in the
# Location host (the 50 demo regions all hold all 9 demo edges, so their hosts cannot tell).
python3 - "$LT_REPO/conf/routing.yaml" "$LT_TMP/routing.json" <<'EOF' || lt_die "cannot write the routing copy"
import json, sys
sys.path.insert(0, sys.argv[1].rsplit("/", 1)[0])
from gen_routing import load
doc, _ = load(sys.argv[1])
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
ROUTER_LOG="$out/router.log"
lt_start_router "$ROUTER_LOG"
PID=$LT_ROUTER_PID
METRICS="http://$LT_MGMT_ADDR/metrics"
BASE="http://127.0.0.1:$PORT"
say "router pid $PID, limits: $(grep 'Max open files' /proc/"$PID"/limits | awk '{print "nofile soft " $4 ", hard " $5}')"

loglines() { wc -l <"$ROUTER_LOG"; }
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$PID/status"; }
fds() { ls "/proc/$PID/fd" | wc -l; }
metric() { $HOSTILE metric "$METRICS" "$@"; }

# k6 at a fixed rate over the demo mix (load_testing/test_requests.js); prints
# "p50 p99 rate checks_ok checks_all failed".
k6_fixed() {
  local name=$1 secs=${2:-$LOAD_SECS}
  SCENARIO=open RATE=$LOAD_RATE DURATION=${secs}s P95_MS=1000 P99_MS=1000 \
    "$LT_K6" run --no-usage-report --quiet --summary-export "$out/$name-k6.json" \
    "$LT_DIR/test_requests.js" >"$out/$name-k6.txt" 2>&1
  python3 - "$out/$name-k6.json" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))["metrics"]
d, c = m["http_req_duration"], m["checks"]
print(f'{d["med"]:.3f} {d["p(99)"]:.3f} {m["http_reqs"]["rate"]:.1f} {c["passes"]} {c["passes"] + c["fails"]} {m["http_req_failed"]["passes"]}')
EOF
}

# wrk flat out, one live URL; prints "p50_ms p99_ms req_per_sec non3xx errors".
wrk_run() {
  local name=$1
  wrk -t2 -c16 -d"${LOAD_SECS}s" --latency "$BASE/btv/live/hls/epg_0" >"$out/$name-wrk.txt" 2>&1
  python3 - "$out/$name-wrk.txt" <<'EOF'
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

# --- a. idle connections --------------------------------------------------------------------
say ""
say "a. idle connections ($IDLE_COUNT, sending nothing)"
rss_start=$(rss)
read -r b_p50 b_p99 b_rate b_ok b_all b_failed <<<"$(k6_fixed baseline)"
read -r bw_p50 bw_p99 bw_rps bw_non bw_err <<<"$(wrk_run baseline)"
rss_base=$(rss); fds_base=$(fds)
say "  baseline   k6 ${LOAD_RATE}/s: p50 ${b_p50} ms, p99 ${b_p99} ms, ${b_rate} req/s, checks ${b_ok}/${b_all}, failed ${b_failed}; wrk: p50 ${bw_p50} ms, p99 ${bw_p99} ms, ${bw_rps} req/s, non-3xx ${bw_non}, socket errors ${bw_err}"

idle_status="$out/idle-$IDLE_COUNT.json"
$HOSTILE idle --count "$IDLE_COUNT" --hold-max 55 --status "$idle_status" >"$out/idle-$IDLE_COUNT.out" 2>>"$out/hostile.log" &
idle_pid=$!
lt_on_exit "kill $idle_pid 2>/dev/null"
for _ in $(seq 1 100); do
  [ -f "$idle_status" ] && break
  sleep 0.2
done
[ -f "$idle_status" ] || lt_die "the idle-connection holder did not report within 20 s"
sleep 2
rss_idle=$(rss); fds_idle=$(fds)
connected=$(jget "$idle_status" 'd["connected"]')
read -r i_p50 i_p99 i_rate i_ok i_all i_failed <<<"$(k6_fixed idle)"
read -r iw_p50 iw_p99 iw_rps iw_non iw_err <<<"$(wrk_run idle)"
rss_idle_end=$(rss)
kill -TERM "$idle_pid" 2>/dev/null
wait "$idle_pid" 2>/dev/null
sleep 3
rss_after=$(rss); fds_after=$(fds)
held_secs=$(jget "$idle_status" 'd["held_secs"]')
closed_early=$(jget "$idle_status" 'd["closed_by_router"]')
say "  with idle  k6 ${LOAD_RATE}/s: p50 ${i_p50} ms, p99 ${i_p99} ms, ${i_rate} req/s, checks ${i_ok}/${i_all}, failed ${i_failed}; wrk: p50 ${iw_p50} ms, p99 ${iw_p99} ms, ${iw_rps} req/s, non-3xx ${iw_non}, socket errors ${iw_err}"
say "  idle connections: $connected connected, held ${held_secs} s, $closed_early closed by the router meanwhile; router fds: ${fds_base} before, ${fds_idle} with them, ${fds_after} after"
per_conn=$(python3 -c "print(f'{($rss_idle - $rss_base) * 1024 / max(1, $connected):.0f}')")
say "  router RSS: ${rss_start} kB at start, ${rss_base} kB after the baseline, ${rss_idle} kB with $connected idle (${rss_idle_end} kB after the loads), ${rss_after} kB 3 s after closing them -> ${per_conn} bytes per idle connection"
read -r a_p50 a_p99 a_rate a_ok a_all a_failed <<<"$(k6_fixed baseline-after)"
read -r aw_p50 aw_p99 aw_rps aw_non aw_err <<<"$(wrk_run baseline-after)"
say "  after      k6 ${LOAD_RATE}/s: p50 ${a_p50} ms, p99 ${a_p99} ms, ${a_rate} req/s, checks ${a_ok}/${a_all}, failed ${a_failed}; wrk: p50 ${aw_p50} ms, p99 ${aw_p99} ms, ${aw_rps} req/s, non-3xx ${aw_non}, socket errors ${aw_err}"
# More rounds: is the memory of the first one reused (plateau), or does RSS grow each round (leak)?
rss_rounds="$rss_after"
for round in 2 3 4; do
  $HOSTILE idle --count "$IDLE_COUNT" --hold-max 30 --status "$out/idle-round$round.json" >"$out/idle-round$round.out" 2>>"$out/hostile.log" &
  idle2_pid=$!
  lt_on_exit "kill $idle2_pid 2>/dev/null"
  for _ in $(seq 1 100); do
    [ -f "$out/idle-round$round.json" ] && break
    sleep 0.2
  done
  sleep 3
  rss_with=$(rss)
  kill -TERM "$idle2_pid" 2>/dev/null
  wait "$idle2_pid" 2>/dev/null
  sleep 2
  rss_rounds="$rss_rounds $rss_with $(rss)"
  say "  round $round of $IDLE_COUNT idle: RSS $rss_with kB with them, $(rss) kB after closing them"
done
read -r _r1 r2w _r2a r3w _r3a r4w r4a <<<"$rss_rounds"
worse_p99=$(python3 -c "print(max($b_p99, $a_p99))")
check "idle: all connected and held" "$([ "$connected" = "$IDLE_COUNT" ] && [ "$closed_early" = 0 ] && echo 0 || echo 1)" "$connected/$IDLE_COUNT, $closed_early cut early"
check "idle: normal clients still served" "$([ "$i_ok" = "$i_all" ] && [ "$i_failed" = 0 ] && [ "$iw_non" = 0 ] && echo 0 || echo 1)" "k6 checks $i_ok/$i_all, failed $i_failed; wrk non-3xx $iw_non"
check "idle: p99 at ${LOAD_RATE}/s within 2x the worse baseline + 2 ms" "$(python3 -c "print(0 if $i_p99 <= 2 * $worse_p99 + 2 else 1)")" "p99 ${i_p99} ms with idle vs ${b_p99} ms before and ${a_p99} ms after"
check "idle: no leak over rounds (round 4 peak within 10% of round 3's)" "$(python3 -c "print(0 if $r4w <= 1.1 * $r3w else 1)")" "peaks ${rss_idle}, ${r2w}, ${r3w}, ${r4w} kB; ${r4a} kB after the last round"
[ "$r4a" -gt $((2 * rss_base)) ] &&
  finding "idle-connection memory is not given back: ${r4a} kB RSS after every idle connection closed (${rss_base} kB before any); peak per round ${rss_idle} / ${r2w} / ${r3w} / ${r4w} kB (glibc malloc high-water mark, the router sets no allocator)"

if [ "$QUICK" != 1 ]; then
  say ""
  say "a2. idle timeout (50 silent + 10 partial-header connections) and b2. slow header across 60 s (10 clients, 1 byte / 14 s)"
  lines0=$(loglines)
  $HOSTILE idle --count 50 --partial 10 --hold-max 75 --status "$out/idle-timeout.json" >"$out/idle-timeout.out" 2>>"$out/hostile.log" &
  t_pid=$!
  lt_on_exit "kill $t_pid 2>/dev/null"
  $HOSTILE slow --clients 10 --interval 14 --bytes 6 >"$out/slow-14s.json" 2>>"$out/hostile.log" &
  s_pid=$!
  lt_on_exit "kill $s_pid 2>/dev/null"
  wait "$t_pid" "$s_pid" 2>/dev/null
  lines1=$(loglines)
  it="$out/idle-timeout.json"
  say "  silent connections cut after: $(jget "$it" 'd["closed_silent"]') s; partial-header ones: $(jget "$it" 'd["closed_partial"]') s; how: $(jget "$it" 'd["close_kinds"]'); answers sent before closing: $(jget "$it" 'd["answers_received"]'); still open at 75 s: $(jget "$it" 'd["still_open_at_end"]')"
  say "  router log lines added by the 60 idle timeouts: $((lines1 - lines0))"
  check "idle timeout: every idle connection cut at 55-70 s" "$(jget "$it" '0 if d["still_open_at_end"] == 0 and 55 <= d["closed_silent"]["min"] and d["closed_silent"]["max"] <= 70 else 1')" "silent $(jget "$it" 'd["closed_silent"]')"
  sl="$out/slow-14s.json"
  say "  slow 1 byte / 14 s: $(jget "$sl" 'd["bytes_trickled"]') bytes over $(jget "$sl" 'd["trickle_secs"]') s, cut by the router: $(jget "$sl" 'd["closed_by_router_during_trickle"]') of $(jget "$sl" 'd["connected"]'); answers after completing the header: $(jget "$sl" 'd["answers_after_completing"]')"
  [ "$(jget "$sl" 'd["closed_by_router_during_trickle"]')" = 0 ] &&
    finding "no total header deadline: a header trickled over $(jget "$sl" 'd["trickle_secs"]') s (past the 60 s read timeout) was still answered; only a single silence of 60 s cuts a client"
fi

# --- b. slow headers ----------------------------------------------------------------------------
say ""
say "b. slow headers: 1 client (detail) + 100 clients, 1 byte per second for 20 bytes; k6 meanwhile"
$HOSTILE slow --clients 1 --interval 1 --bytes 20 >"$out/slow-1.json" 2>>"$out/hostile.log" &
s1=$!
$HOSTILE slow --clients 100 --interval 1 --bytes 20 >"$out/slow-100.json" 2>>"$out/hostile.log" &
s100=$!
lt_on_exit "kill $s1 $s100 2>/dev/null"
sleep 2
read -r s_p50 s_p99 s_rate s_ok s_all s_failed <<<"$(k6_fixed slow 15)"
wait "$s1" "$s100" 2>/dev/null
for f in slow-1 slow-100; do
  say "  $f: $(jget "$out/$f.json" 'd["connected"]') connected, $(jget "$out/$f.json" 'd["bytes_trickled"]') of $(jget "$out/$f.json" 'd["request_bytes"]') bytes over $(jget "$out/$f.json" 'd["trickle_secs"]') s, cut by the router: $(jget "$out/$f.json" 'd["closed_by_router_during_trickle"]'), answers after completing: $(jget "$out/$f.json" 'd["answers_after_completing"]')"
done
say "  normal clients meanwhile, k6 ${LOAD_RATE}/s 15 s: p50 ${s_p50} ms, p99 ${s_p99} ms, ${s_rate} req/s, checks ${s_ok}/${s_all}, failed ${s_failed} (baseline p50 ${b_p50}, p99 ${b_p99})"
check "slow headers: normal clients served" "$([ "$s_ok" = "$s_all" ] && [ "$s_failed" = 0 ] && echo 0 || echo 1)" "checks $s_ok/$s_all"
[ "$(jget "$out/slow-1.json" 'd["closed_by_router_during_trickle"]')" = 0 ] &&
  finding "slow header: the router does not cut a client trickling 1 byte/s (Pingora 0.9.1 has only a per-read 60 s timeout before the first request, no header deadline)"

# --- c. log flooding ----------------------------------------------------------------------------
say ""
say "c. log flooding: $FLOOD_COUNT invalid paths (/scan/<random>, /btv/live/bad%zz), 4 pipelined keep-alive connections"
c_before=$(metric cti_kaltura_requests_total 'kind="invalid"' 'outcome="bad_request"')
all_before=$(metric cti_kaltura_requests_total)
lines0=$(loglines)
$HOSTILE flood --count "$FLOOD_COUNT" --conns 4 --window 64 >"$out/flood.json" 2>>"$out/hostile.log"
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
$HOSTILE partial --count 1000 --mode mixed >"$out/partial.json" 2>>"$out/hostile.log"
sleep 1
lines1=$(loglines)
all_after=$(metric cti_kaltura_requests_total)
say "  $(cat "$out/partial.json"); router log lines added: $((lines1 - lines0)); requests_total +$((all_after - all_before))"
sed -n "$((lines0 + 1)),$((lines0 + 2))p" "$ROUTER_LOG" | sed 's/^/    /' | tee -a "$SUMMARY"
filter_line=$(grep -n 'default_filter_or' "$LT_REPO/src/main.rs" | head -n 1 | cut -d: -f1)
[ $((lines1 - lines0)) -gt "$LOG_LINES_MAX" ] &&
  finding "one ERROR line per client that closes or resets mid-header ($((lines1 - lines0)) lines for 1000 connections): pingora-proxy 0.9.1 src/lib.rs:363 error!(\"Fail to proxy: ...\") before any router callback; the router's default filter (src/main.rs:${filter_line:-?}, \"info\") lets it through"

# --- e. oversized requests ----------------------------------------------------------------------
say ""
say "e. oversized requests (router limits: max_uri_bytes 8192, max_header_count 64, max_header_bytes 16384)"
lines0=$(loglines)
$HOSTILE oversize --metrics "$METRICS" >"$out/oversize.json" 2>>"$out/hostile.log"
lines1=$(loglines)
python3 - "$out/oversize.json" <<'EOF' | tee -a "$SUMMARY"
import json, sys
for c in json.load(open(sys.argv[1]))["cases"]:
    reuse = c["followup_status"]
    print(f'  {c["case"]:<52} -> {c["status"]} {c["body"]!r:<28} counted {c["counted_in_requests_total"]}, '
          f'connection {"kept (next request " + str(reuse) + ")" if isinstance(reuse, int) else "closed"}'
          + (f', client saw {c["error"]}' if c["error"] else ""))
EOF
say "  router log lines added: $((lines1 - lines0))"
check "oversize: router limits answer 414/431 and are counted; Pingora's answer 400 uncounted" "$(python3 - "$out/oversize.json" <<'EOF'
import json, sys
want = {"uri 8193 bytes": (414, 1), "uri 10 kB (10240 bytes)": (414, 1), "100 headers": (431, 1),
        "65 headers": (431, 1), "header bytes 20 kB (one 20000-byte value)": (431, 1),
        "uri 8192 bytes (router limit: allowed)": (302, 1), "64 headers (router limit: allowed)": (302, 1)}
bad = [c["case"] for c in json.load(open(sys.argv[1]))["cases"]
       if c["case"] in want and (c["status"], c["counted_in_requests_total"]) != want[c["case"]]]
print(1 if bad else 0)
EOF
)" "10 kB URI -> $(jget "$out/oversize.json" '[c["status"] for c in d["cases"] if c["case"].startswith("uri 10 kB")][0]'), 100 headers -> $(jget "$out/oversize.json" '[c["status"] for c in d["cases"] if c["case"] == "100 headers"][0]')"

# --- d. untrusted X-Real-IP ---------------------------------------------------------------------
say ""
say "d. X-Real-IP / X-Forwarded-For from 127.0.0.1 (path /vod/xr/<case>; access log on for the region)"
for ip in 127.0.0.1 198.51.100.7 87.22.156.10 203.0.113.5; do
  snap_bin="$(dirname "${ROUTER_BIN:-$LT_REPO/target/release/cti-kaltura}")/cti-kaltura-snapshot"
  [ -x "$snap_bin" ] || snap_bin="$LT_REPO/target/release/cti-kaltura-snapshot"
  [ -x "$snap_bin" ] && "$snap_bin" route "$LT_TMP/routing.json" "$ip" /vod/a/b/c 2>/dev/null | $HOSTILE routesum | tee -a "$SUMMARY"
done
cfg_variant() { # cfg_variant OUT TRUSTED(yaml list or "")
  python3 - "$out/cti-kaltura.yaml" "$1" "$2" <<'EOF'
import re, sys
src, dst, trusted = sys.argv[1:]
t = open(src).read()
if trusted:
    t, n = re.subn(r"(?ms)^(    trusted_proxies:\n)(      - .*?\n)+", lambda m: m.group(1) + "".join(f'      - "{c}"\n' for c in trusted.split(",")), t)
    assert n == 1, "trusted_proxies not found"
t = t.rstrip("\n") + "\n  access_log:\n    enabled: true\n    format: json\n"
open(dst, "w").write(t)
EOF
}
apply_config() { # apply_config FILE: atomically replace the config, SIGHUP, wait for "applied"
  local before
  before=$(grep -c 'SIGHUP: configuration .* applied' "$ROUTER_LOG")
  cp "$1" "$LT_CONFIG.tmp" && mv -f "$LT_CONFIG.tmp" "$LT_CONFIG"
  kill -HUP "$PID"
  for _ in $(seq 1 50); do
    [ "$(grep -c 'SIGHUP: configuration .* applied' "$ROUTER_LOG")" -gt "$before" ] && return 0
    sleep 0.1
  done
  lt_log "warning: no 'configuration applied' line after SIGHUP"
  return 1
}
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
cfg_variant "$out/xr-loopback-trusted.yaml" ""
cfg_variant "$out/xr-untrusted.yaml" "10.0.0.0/8"
apply_config "$out/xr-loopback-trusted.yaml"
xr_run loopback-trusted
apply_config "$out/xr-untrusted.yaml"
xr_run untrusted
apply_config "$out/cti-kaltura.yaml"
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

# --- end ----------------------------------------------------------------------------------------
say ""
say "router RSS at the end: $(rss) kB; router log: $(loglines) lines ($ROUTER_LOG)"
say "hostile: $([ "$FAILS" = 0 ] && echo PASS || echo "FAIL ($FAILS check(s))")"
[ "$FAILS" = 0 ]
