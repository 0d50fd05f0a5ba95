#!/usr/bin/env bash
# TLS side by side: the router's TLS listener against nginx (`ssl http2`) with the same
# certificate and the same routing (gen_nginx.py), one worker each pinned to SERVER_CPU, the
# load generator pinned to CLIENT_CPU.
#
#   load_testing/bench/tls_bench.sh
#   ROUNDS=5 DURATION=10 KEYS="ecdsa rsa" MODES="newconn keepalive h2" load_testing/bench/tls_bench.sh
#
# Per key type (KEYS: `ecdsa` = P-256, `rsa` = RSA-2048; a self-signed certificate made with
# openssl, used by both servers) and per mode, ROUNDS alternating rounds of each server:
#   full       PARALLEL x `openssl s_time -new -www PATH`: a new TLS connection with a full
#              handshake (no session offered) and one redirect (HTTP/1.0) per connection
#   newconn    wrk -H 'Connection: close' https://...  a new TLS connection and one redirect
#              per connection; wrk offers its last session, so these handshakes are resumed
#              (TLS 1.3 PSK with ECDHE: no certificate, no signature)
#   keepalive  wrk https://...                         redirects on kept TLS connections
#   h2         h2load -c CONNECTIONS -m 10 -D DURATION  redirects over HTTP/2 (ALPN h2)
# Each round records req/s and the server's CPU time per request (utime+stime of the router,
# or of the nginx master and worker); in `full` and `newconn` that is the CPU per handshake
# plus one redirect.
# Both servers offer TLS 1.3 and 1.2 with ECDHE AEAD suites only and session tickets; the
# suite each one negotiates with the load generator is written to OUT/machine.txt.
# Writes OUT/rounds.txt (one line per round) and OUT/report.md (medians, ratios).
#
# Environment (defaults): ROUNDS (5), DURATION (10), WARMUP (2), CONNECTIONS (64),
#   SERVER_CPU (0), CLIENT_CPU (1), KEYS ("ecdsa rsa"), MODES ("full newconn keepalive h2"),
#   PARALLEL (16, s_time processes in `full`),
#   PORT/MGMT_PORT/TLS_PORT (24101/24102/24143), NGINX_PORT/NGINX_TLS_PORT (24181/24183),
#   URLS (load_testing/bench/urls.txt), OUT (load_testing/results/tls-bench-TIMESTAMP), SKIP_BUILD.
# Loopback only; every process started here is stopped on exit.
set -euo pipefail

PORT=${PORT:-24101}
MGMT_PORT=${MGMT_PORT:-24102}
# shellcheck source=../lib/router.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/router.sh"
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNECTIONS=${CONNECTIONS:-64}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
KEYS=${KEYS:-ecdsa rsa}
MODES=${MODES:-full newconn keepalive h2}
PARALLEL=${PARALLEL:-16}
TLS_PORT=${TLS_PORT:-24143}
NGINX_PORT=${NGINX_PORT:-24181}
NGINX_TLS_PORT=${NGINX_TLS_PORT:-24183}
URLS=${URLS:-$BENCH_DIR/urls.txt}
OUT=${OUT:-$LT_RESULTS/tls-bench-$(date +%Y%m%d-%H%M%S)}
ROUTING=$LT_REPO/conf/routing.yaml

lt_init
lt_on_exit bench_cleanup
mkdir -p "$OUT"
chmod 755 "$LT_TMP"
ROUNDS_FILE=$OUT/rounds.txt
: >"$ROUNDS_FILE"

bench_ensure_tools
command -v h2load >/dev/null || bench_apt_install nghttp2-client
command -v openssl >/dev/null || bench_apt_install openssl
lt_build_router
for p in "$PORT" "$MGMT_PORT" "$TLS_PORT" "$NGINX_PORT" "$NGINX_TLS_PORT"; do bench_port_free "$p"; done

{
  echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "host: nproc $(nproc); $(lscpu | sed -n 's/^Model name: *//p' | head -n 1); kernel $(uname -r)"
  echo "nginx: $("$NGINX_BIN" -v 2>&1); $(openssl version)"
  echo "wrk: $(wrk --version 2>&1 | head -n 1); h2load: $(h2load --version | head -n 1)"
  echo "router: $(cd "$LT_REPO" && git rev-parse --short HEAD 2>/dev/null)$(cd "$LT_REPO" && git diff --quiet 2>/dev/null || echo ' (working tree modified)')"
  echo "settings: ROUNDS=$ROUNDS DURATION=$DURATION CONNECTIONS=$CONNECTIONS SERVER_CPU=$SERVER_CPU CLIENT_CPU=$CLIENT_CPU"
  echo "loadavg at start: $(cat /proc/loadavg)"
} >"$OUT/machine.txt"

# make_cert KIND: self-signed certificate and key for bench.test in $LT_TMP/KIND.{pem,key}.
make_cert() {
  local kind=$1 newkey
  case $kind in
    ecdsa) newkey=(-newkey ec -pkeyopt ec_paramgen_curve:P-256) ;;
    rsa) newkey=(-newkey rsa:2048) ;;
    *) lt_die "unknown key kind $kind" ;;
  esac
  openssl req -x509 "${newkey[@]}" -nodes -keyout "$LT_TMP/$kind.key" -out "$LT_TMP/$kind.pem" \
    -days 2 -subj /CN=bench.test -addext subjectAltName=DNS:bench.test >/dev/null 2>&1 ||
    lt_die "openssl could not make the $kind certificate"
}

# router_config KIND: the benchmark config plus a TLS listener with KIND's certificate.
router_config() {
  local kind=$1 out=$OUT/router-$1.yaml
  bench_router_config "$LT_CONFIG" "$out" "$ROUTING"
  python3 - "$out" "$TLS_PORT" "$LT_TMP/$kind.pem" "$LT_TMP/$kind.key" <<'EOF'
import sys, yaml
path, port, cert, key = sys.argv[1:]
doc = yaml.safe_load(open(path))
doc["router"]["tls"] = {
    "listen": [f"127.0.0.1:{port}"],
    "certificates": [{"cert_file": cert, "key_file": key}],
    "watch_interval_secs": 0,
}
yaml.safe_dump(doc, open(path, "w"), sort_keys=False)
EOF
  "$LT_BIN" -c "$out" -t >"$out.test.log" 2>&1 || { cat "$out.test.log" >&2; lt_die "$out does not validate"; }
}

# nginx_config KIND: gen_nginx.py's redirect config plus `listen ... ssl http2` with KIND's
# certificate, TLS 1.2/1.3, ECDHE AEAD suites, session cache and tickets.
nginx_config() {
  local kind=$1 dir=$LT_TMP/nginx-$1
  python3 "$BENCH_DIR/gen_nginx.py" "$ROUTING" "$dir" --port "$NGINX_PORT" >&2
  python3 - "$dir/nginx.conf" "$NGINX_PORT" "$NGINX_TLS_PORT" "$LT_TMP/$kind.pem" "$LT_TMP/$kind.key" <<'EOF'
import sys
path, port, tls_port, cert, key = sys.argv[1:]
text = open(path).read()
plain = f"        listen 127.0.0.1:{port} backlog=4096;\n"
assert plain in text, "gen_nginx.py's listen line not found"
suites = ":".join(f"ECDHE-{a}-{c}" for a in ("ECDSA", "RSA")
                  for c in ("AES128-GCM-SHA256", "AES256-GCM-SHA384", "CHACHA20-POLY1305"))
tls = (plain + f"        listen 127.0.0.1:{tls_port} ssl http2 backlog=4096;\n"
       f"        ssl_certificate {cert};\n        ssl_certificate_key {key};\n"
       "        ssl_protocols TLSv1.2 TLSv1.3;\n"
       f"        ssl_ciphers {suites};\n"
       "        ssl_session_cache shared:SSL:10m;\n        ssl_session_tickets on;\n")
open(path, "w").write(text.replace(plain, tls, 1))
EOF
  cp "$dir/nginx.conf" "$OUT/nginx-$kind.conf"
}

# One path of URLS per line → full https URIs for h2load.
uris() {
  local port=$1
  grep -v -e '^#' -e '^$' "$URLS" | sed "s|^|https://127.0.0.1:$port|"
}

# run_round KIND MODE SERVER ROUND PORT PID: one round; appends a line to ROUNDS_FILE.
run_round() {
  local kind=$1 mode=$2 server=$3 round=$4 port=$5 pid=$6
  local log="$OUT/$kind-$mode-$server-$round.txt" family tb ta requests rate
  family=$(bench_family "$pid")
  # shellcheck disable=SC2086
  tb=$(bench_cpu_ticks $family)
  case $mode in
    newconn | keepalive)
      local hdr=()
      [ "$mode" = newconn ] && hdr=(-H 'Connection: close')
      taskset -c "$CLIENT_CPU" timeout $((DURATION + 30)) wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" \
        "${hdr[@]}" -s "$BENCH_DIR/urls.lua" "https://127.0.0.1:$port" -- "$URLS" >"$log" 2>&1 || true
      requests=$(sed -n 's/^ *\([0-9]*\) requests in .*/\1/p' "$log")
      rate=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$log")
      ;;
    full)
      local path i clients=()
      path=$(grep -v -e '^#' -e '^$' "$URLS" | head -n 1)
      for ((i = 0; i < PARALLEL; i++)); do
        taskset -c "$CLIENT_CPU" timeout $((DURATION + 30)) openssl s_time -connect "127.0.0.1:$port" \
          -new -www "$path" -time "$DURATION" >"$log.$i" 2>&1 &
        clients+=($!)
      done
      wait "${clients[@]}" || true
      requests=$(cat "$log".* | sed -n 's/^\([0-9]*\) connections in [0-9]* real seconds.*/\1/p' |
        python3 -c 'import sys; print(sum(int(l) for l in sys.stdin))')
      rate=$(python3 -c "print($requests / $DURATION)")
      cat "$log".* >"$log" && rm -f "$log".*
      ;;
    h2)
      uris "$port" >"$LT_TMP/uris-$port.txt"
      taskset -c "$CLIENT_CPU" timeout $((DURATION + 30)) h2load -c"$CONNECTIONS" -m10 -t1 \
        -D "$DURATION" -i "$LT_TMP/uris-$port.txt" >"$log" 2>&1 || true
      requests=$(sed -n 's/^requests: .* \([0-9]*\) succeeded.*/\1/p' "$log")
      rate=$(sed -n 's/^finished in [^,]*, \([0-9.]*\) req\/s.*/\1/p' "$log")
      grep -q '^status codes: 0 2xx, [1-9][0-9]* 3xx, 0 4xx, 0 5xx' "$log" ||
        bench_log "warning: $log: not every answer a 3xx: $(grep '^status codes' "$log")"
      ;;
  esac
  # shellcheck disable=SC2086
  ta=$(bench_cpu_ticks $family)
  [ -n "$requests" ] && [ "$requests" -gt 0 ] || { cat "$log" >&2; lt_die "no requests in $log"; }
  local hz
  hz=$(getconf CLK_TCK)
  python3 -c "print('$kind $mode $server $round', '%.0f' % float('$rate'), $requests, '%.2f' % (($ta - $tb) * 1e6 / $hz / $requests))" >>"$ROUNDS_FILE"
  tail -n 1 "$ROUNDS_FILE" >&2
}

warmup() {
  local port=$1
  taskset -c "$CLIENT_CPU" timeout $((WARMUP + 30)) wrk -t1 -c"$CONNECTIONS" -d"${WARMUP}s" \
    -s "$BENCH_DIR/urls.lua" "https://127.0.0.1:$port" -- "$URLS" >/dev/null 2>&1 || true
}

check_https() {
  local port=$1 path code
  path=$(grep -v -e '^#' -e '^$' "$URLS" | head -n 1)
  for proto in --http1.1 --http2; do
    code=$(curl -sk "$proto" -o /dev/null -w '%{http_code} %{http_version}' --max-time 5 "https://127.0.0.1:$port$path") || true
    case $code in 302\ *) ;; *) lt_die "https://127.0.0.1:$port$path ($proto) answered '$code'" ;; esac
  done
  echo "127.0.0.1:$port: $(echo | openssl s_client -connect "127.0.0.1:$port" 2>/dev/null | grep -m1 -E '^New, ')" >>"$OUT/machine.txt"
}

lt_make_config "$ROUTING"
for kind in $KEYS; do
  bench_log "$kind: router TLS on 127.0.0.1:$TLS_PORT, nginx TLS on 127.0.0.1:$NGINX_TLS_PORT, both on CPU $SERVER_CPU"
  make_cert "$kind"
  router_config "$kind"
  nginx_config "$kind"
  bench_start_router "$OUT/router-$kind.yaml" "$OUT/router-$kind.log" "$SERVER_CPU" "127.0.0.1:$MGMT_PORT"
  bench_wait_port 127.0.0.1 "$TLS_PORT" 20 || lt_die "the router's TLS listener did not open"
  bench_start_nginx "$LT_TMP/nginx-$kind" "$NGINX_PORT" "$OUT/nginx-$kind.log" "$SERVER_CPU"
  bench_wait_port 127.0.0.1 "$NGINX_TLS_PORT" 20 || lt_die "nginx's TLS listener did not open"
  check_https "$TLS_PORT"
  check_https "$NGINX_TLS_PORT"
  warmup "$NGINX_TLS_PORT"
  warmup "$TLS_PORT"
  for mode in $MODES; do
    for ((round = 1; round <= ROUNDS; round++)); do
      if ((round % 2)); then
        run_round "$kind" "$mode" nginx "$round" "$NGINX_TLS_PORT" "$NGINX_PID"
        run_round "$kind" "$mode" router "$round" "$TLS_PORT" "$ROUTER_PID"
      else
        run_round "$kind" "$mode" router "$round" "$TLS_PORT" "$ROUTER_PID"
        run_round "$kind" "$mode" nginx "$round" "$NGINX_TLS_PORT" "$NGINX_PID"
      fi
    done
  done
  bench_cleanup
  ROUTER_PID="" NGINX_PID=""
  BENCH_PIDS=()
done

python3 - "$ROUNDS_FILE" >"$OUT/report.md" <<'EOF'
import collections, statistics, sys
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    kind, mode, server, rnd, rate, reqs, cpu = line.split()
    rows[(kind, mode, int(rnd))].append((server, float(rate), float(cpu)))
table = collections.defaultdict(lambda: collections.defaultdict(list))
for (kind, mode, rnd), entries in rows.items():
    d = {s: (r, c) for s, r, c in entries}
    if "router" in d and "nginx" in d:
        t = table[(kind, mode)]
        t["nginx_rate"].append(d["nginx"][0]); t["router_rate"].append(d["router"][0])
        t["nginx_cpu"].append(d["nginx"][1]); t["router_cpu"].append(d["router"][1])
        t["rate_ratio"].append(d["router"][0] / d["nginx"][0])
        t["cpu_ratio"].append(d["router"][1] / d["nginx"][1])
print("| key | mode | nginx req/s | router req/s | router/nginx req/s (per round) | nginx CPU µs/req | router CPU µs/req | router/nginx CPU (per round) |")
print("|---|---|---:|---:|---|---:|---:|---|")
med = statistics.median
for (kind, mode), t in table.items():
    print(f"| {kind} | {mode} | {med(t['nginx_rate']):,.0f} | {med(t['router_rate']):,.0f} | "
          f"**{med(t['rate_ratio']):.2f}** ({min(t['rate_ratio']):.2f}–{max(t['rate_ratio']):.2f}) | "
          f"{med(t['nginx_cpu']):.1f} | {med(t['router_cpu']):.1f} | "
          f"**{med(t['cpu_ratio']):.2f}** ({min(t['cpu_ratio']):.2f}–{max(t['cpu_ratio']):.2f}) |")
EOF
cat "$OUT/machine.txt" >&2
cat "$OUT/report.md" >&2
bench_log "results in $OUT"
