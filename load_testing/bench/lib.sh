# shellcheck shell=bash
# Shared by bench.sh, syscalls.sh and check_equivalence.sh (source it after
# load_testing/lib/router.sh and lt_init): installs nginx and wrk, derives router configs, starts
# and stops nginx, the fake edge and the router pinned to a CPU, runs wrk, reads process CPU
# time. Every process started here is registered and stopped by the exit trap of router.sh
# (lt_init).

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_PIDS=()
CLK_TCK=$(getconf CLK_TCK)

bench_log() { printf '[bench] %s\n' "$*" >&2; }

# apt-get install PACKAGES (as root, or through sudo).
bench_apt_install() {
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || lt_die "need root or sudo to install: $*"
    sudo="sudo"
  fi
  bench_log "installing $* (apt-get)"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null ||
    { $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null; } ||
    lt_die "apt-get install $* failed"
}

# nginx (Debian's nginx-light, or nginx) and wrk, from Debian packages when missing. The
# packaged nginx service is never used: every nginx here runs with its own prefix.
bench_ensure_tools() {
  local want=()
  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || want+=(nginx-light)
  command -v wrk >/dev/null || want+=(wrk)
  if [ "${#want[@]}" -gt 0 ]; then
    bench_apt_install "${want[@]}" || true
    if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then bench_apt_install nginx; fi
  fi
  NGINX_BIN=$(command -v nginx || echo /usr/sbin/nginx)
  [ -x "$NGINX_BIN" ] || lt_die "nginx is not installed"
  command -v wrk >/dev/null || lt_die "wrk is not installed"
  command -v taskset >/dev/null || bench_apt_install util-linux
}

# Registers a PID to be stopped at exit.
bench_track() { BENCH_PIDS+=("$1"); }

# SIGTERM (or $2), up to 10 s, then SIGKILL; only this PID.
bench_stop_pid() {
  local pid=$1 sig=${2:-TERM}
  [ -n "$pid" ] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill "-$sig" "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 10))
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null || true
}

bench_cleanup() {
  local i
  for ((i = ${#BENCH_PIDS[@]} - 1; i >= 0; i--)); do
    bench_stop_pid "${BENCH_PIDS[i]}" "${BENCH_STOP_SIGNAL:-TERM}"
  done
  BENCH_PIDS=()
}

# Waits until HOST:PORT accepts connections (up to $3 s, default 20).
bench_wait_port() {
  local host=$1 port=$2 limit=${3:-20} start=$SECONDS
  until lt_listening "$host" "$port"; do
    [ $((SECONDS - start)) -ge "$limit" ] && return 1
    sleep 0.1
  done
}

# Refuses a port that is already taken (the load would go to someone else's server).
bench_port_free() {
  if lt_listening 127.0.0.1 "$1"; then
    lt_die "127.0.0.1:$1 is already in use; choose other ports (see the variables in $0)"
  fi
}

# bench_start_nginx DIR PORT LOG [CPU]: runs nginx in the foreground of a background job
# (master + 1 worker), optionally pinned to CPU; sets NGINX_PID (the master).
bench_start_nginx() {
  local dir=$1 port=$2 log=$3 cpu=${4:-}
  bench_port_free "$port"
  "$NGINX_BIN" -t -q -p "$dir" -c nginx.conf -g 'daemon off;' >"$log" 2>&1 ||
    { cat "$log" >&2; lt_die "nginx -t failed for $dir/nginx.conf"; }
  if [ -n "$cpu" ]; then
    taskset -c "$cpu" "$NGINX_BIN" -p "$dir" -c nginx.conf -g 'daemon off;' >>"$log" 2>&1 &
  else
    "$NGINX_BIN" -p "$dir" -c nginx.conf -g 'daemon off;' >>"$log" 2>&1 &
  fi
  NGINX_PID=$!
  bench_track "$NGINX_PID"
  bench_wait_port 127.0.0.1 "$port" 20 || { cat "$log" >&2; lt_die "nginx ($dir) did not listen on $port"; }
}

# bench_router_config SRC DST ROUTING_FILE [proxy]: a copy of the load-test config SRC (from
# lt_make_config) with one worker thread, no work stealing, access log off and the given
# routing file; with `proxy`, VOD in proxy mode.
bench_router_config() {
  local proxy=()
  [ "${4:-}" = proxy ] && proxy=(--vod-proxy)
  lt_ctk config "$1" "$2" --routing "$3" --bench "${proxy[@]}" || lt_die "cannot derive a benchmark config from $1"
  "$LT_BIN" -c "$2" -t >"$2.test.log" 2>&1 || { cat "$2.test.log" >&2; lt_die "$2 does not validate"; }
}

# bench_start_router CONFIG LOG CPU MGMT_ADDR: starts the router pinned to CPU, waits for
# /readyz; sets ROUTER_PID.
bench_start_router() {
  local config=$1 log=$2 cpu=$3 mgmt=$4
  (cd "$LT_REPO" && exec taskset -c "$cpu" "$LT_BIN" -c "$config") >"$log" 2>&1 &
  ROUTER_PID=$!
  bench_track "$ROUTER_PID"
  local start=$SECONDS code
  while :; do
    kill -0 "$ROUTER_PID" 2>/dev/null || { tail -n 20 "$log" >&2; lt_die "the router exited during startup"; }
    code=$(curl --noproxy '*' -s -o /dev/null -w '%{http_code}' --max-time 1 "http://$mgmt/readyz" 2>/dev/null) || true
    [ "$code" = 200 ] && break
    [ $((SECONDS - start)) -ge 30 ] && { tail -n 20 "$log" >&2; lt_die "router not ready after 30 s"; }
    sleep 0.2
  done
}

# utime+stime (clock ticks) of a process, or of an nginx master and its workers.
bench_cpu_ticks() {
  local total=0 pid stat f
  for pid in "$@"; do
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    # After "pid (comm) " comes field 3 (state): utime and stime (fields 14, 15) are f[11], f[12].
    read -r -a f <<<"${stat##*) }"
    total=$((total + f[11] + f[12]))
  done
  echo "$total"
}

# The PIDs whose CPU time counts for a server: the process and its direct children.
bench_family() {
  local pid=$1
  echo "$pid" $(pgrep -P "$pid" 2>/dev/null)
}

# bench_start_edge DIR PORT LOG [CPU]: the fake edge of the proxy benchmarks, nginx serving
# static files from DIR/www on 127.0.0.1:PORT (vod/1k.bin, vod/1m.bin of random bytes and
# vod/hls2000.m3u8); sets EDGE_PID (and NGINX_PID) to its master.
bench_start_edge() {
  local dir=$1 port=$2 log=$3 cpu=${4:-}
  mkdir -p "$dir/www/vod" "$dir/logs" "$dir/tmp"
  head -c 1024 /dev/urandom >"$dir/www/vod/1k.bin"
  head -c 1048576 /dev/urandom >"$dir/www/vod/1m.bin"
  # PROXY_SIZES entry `m3u8`: a 2,000-segment HLS media playlist. Its references are
  # absolute paths under /vod/, which the router's rewrite leaves byte-identical: both servers
  # answer the same bytes, the router after parsing and rewriting it.
  {
    printf '#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:1000\n'
    for i in $(seq 1000 2999); do printf '#EXTINF:2.000,\n/vod/seg/%d.ts\n' "$i"; done
    printf '#EXT-X-ENDLIST\n'
  } >"$dir/www/vod/hls2000.m3u8"
  chmod -R a+rX "$dir"
  local user_line=""
  [ "$(id -u)" = 0 ] && user_line="user nobody nogroup;"
  cat >"$dir/nginx.conf" <<EOF
# Fake edge for the proxy benchmark: static files, no logs.
$user_line
worker_processes 1;
pid nginx.pid;
error_log logs/error.log warn;
events { worker_connections 16384; }
http {
    access_log off;
    server_tokens off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    client_body_temp_path tmp/body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    server {
        listen 127.0.0.1:$port backlog=4096;
        root $dir/www;
    }
}
EOF
  bench_start_nginx "$dir" "$port" "$log" "$cpu"
  # shellcheck disable=SC2034  # for the caller
  EDGE_PID=$NGINX_PID
}

# bench_check_urls EXPECT URLS_FILE PORT...: every path of URLS_FILE must answer 302
# (EXPECT=302) or 200 with EXPECT bytes on 127.0.0.1:PORT of each PORT.
bench_check_urls() {
  local expect=$1 urls=$2 port path code
  shift 2
  for port in "$@"; do
    while IFS= read -r path; do
      case $path in '' | '#'*) continue ;; esac
      code=$(curl --noproxy '*' -s -o /dev/null -w '%{http_code} %{size_download}' --max-time 5 "http://127.0.0.1:$port$path") || true
      case $expect in
        302) [ "${code%% *}" = 302 ] || lt_die "127.0.0.1:$port$path answered $code, not 302" ;;
        *) [ "$code" = "200 $expect" ] || lt_die "127.0.0.1:$port$path answered '$code', not '200 $expect'" ;;
      esac
    done <"$urls"
  done
}

# bench_wrk SECONDS PORT URLS_FILE MODE LOG: one load run, wrk pinned to CLIENT_CPU with
# WRK_THREADS threads and CONNECTIONS connections, bounded by `timeout`; MODE `close` sends
# `Connection: close`. wrk's output (with urls.lua's BENCH_RESULT line) goes to LOG.
bench_wrk() {
  local secs=$1 port=$2 urls=$3 mode=$4 log=$5 hdr=()
  [ "$mode" = close ] && hdr=(-H 'Connection: close')
  taskset -c "$CLIENT_CPU" timeout $((secs + 30)) wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${secs}s" \
    --latency "${hdr[@]}" -s "$BENCH_DIR/urls.lua" "http://127.0.0.1:$port" -- "$urls" >"$log" 2>&1 || true
}

# The requests of a wrk run, from urls.lua's BENCH_RESULT line in its LOG (empty if none).
bench_wrk_requests() { sed -n 's/^BENCH_RESULT requests=\([0-9]*\).*/\1/p' "$1"; }

# bench_machine_info FILE SETTINGS: the machine, the tools, the router's commit and SETTINGS in
# FILE (and on stderr).
bench_machine_info() {
  {
    echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "host: nproc $(nproc); $(lscpu | sed -n 's/^Model name: *//p' | head -n 1); kernel $(uname -r)"
    echo "nginx: $("$NGINX_BIN" -v 2>&1)"
    echo "wrk: $(wrk --version 2>&1 | head -n 1)"
    echo "router: $LT_BIN; checkout $(cd "$LT_REPO" && git rev-parse --short HEAD 2>/dev/null)$(cd "$LT_REPO" && git diff --quiet 2>/dev/null || echo ' (working tree modified)')"
    echo "settings: $2"
    echo "loadavg at start: $(cat /proc/loadavg)"
  } >"$1"
  cat "$1" >&2
}

# bench_start_redirect_servers ROUTING_FILE: the router (lt_make_config, then the benchmark
# config OUT/router-redirect.yaml) on PORT and nginx from gen_nginx.py on NGINX_PORT, both on the
# routing file, both pinned to SERVER_CPU; sets ROUTER_PID and NGINX_PID.
bench_start_redirect_servers() {
  local routing=$1
  lt_make_config "$routing"
  bench_router_config "$LT_CONFIG" "$OUT/router-redirect.yaml" "$routing"
  python3 "$BENCH_DIR/gen_nginx.py" "$routing" "$LT_TMP/nginx-redirect" --port "$NGINX_PORT" >&2
  if [ "${DEFER_ACCEPT:-0}" = 1 ]; then
    # Deferred accept on both (router.http.defer_accept_secs, nginx `listen ... deferred`).
    sed -i 's/^\(    keepalive_timeout_secs: .*\)$/\1\n    defer_accept_secs: 1/' "$OUT/router-redirect.yaml"
    grep -q 'defer_accept_secs: 1' "$OUT/router-redirect.yaml" || lt_die "cannot set defer_accept_secs"
    "$LT_BIN" -c "$OUT/router-redirect.yaml" -t >/dev/null 2>&1 || lt_die "defer_accept_secs does not validate"
    sed -i 's/ backlog=4096;/ backlog=4096 deferred;/' "$LT_TMP/nginx-redirect/nginx.conf"
  fi
  cp "$LT_TMP/nginx-redirect/nginx.conf" "$OUT/nginx-redirect.conf"
  bench_start_router "$OUT/router-redirect.yaml" "$OUT/router-redirect.log" "$SERVER_CPU" "127.0.0.1:$MGMT_PORT"
  bench_start_nginx "$LT_TMP/nginx-redirect" "$NGINX_PORT" "$OUT/nginx-redirect.log" "$SERVER_CPU"
}

# bench_start_proxy_servers EDGE_DIR: the fake edge (bench_start_edge, on EDGE_CPU) and, on a
# snapshot whose every edge is 127.0.0.1:EDGE_PORT, the router with VOD in proxy mode
# (OUT/router-proxy.yaml; needs LT_CONFIG from lt_make_config) and nginx with proxy_pass for VOD,
# both pinned to SERVER_CPU; sets EDGE_PID, ROUTER_PID and NGINX_PID.
bench_start_proxy_servers() {
  bench_start_edge "$1" "$EDGE_PORT" "$OUT/edge.log" "$EDGE_CPU"
  python3 "$BENCH_DIR/snapshots.py" proxy "$LT_TMP/routing-proxy.json" --port "$EDGE_PORT" >&2
  bench_router_config "$LT_CONFIG" "$OUT/router-proxy.yaml" "$LT_TMP/routing-proxy.json" proxy
  python3 "$BENCH_DIR/gen_nginx.py" "$LT_TMP/routing-proxy.json" "$LT_TMP/nginx-proxy" --port "$NGINX_PORT" \
    --proxy vod >&2
  cp "$LT_TMP/nginx-proxy/nginx.conf" "$OUT/nginx-proxy.conf"
  bench_start_router "$OUT/router-proxy.yaml" "$OUT/router-proxy.log" "$SERVER_CPU" "127.0.0.1:$MGMT_PORT"
  bench_start_nginx "$LT_TMP/nginx-proxy" "$NGINX_PORT" "$OUT/nginx-proxy.log" "$SERVER_CPU"
}
