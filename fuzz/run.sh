#!/usr/bin/env bash
# Runs every fuzz target for a bounded time on the stable toolchain (see README.md).
#
#   fuzz/run.sh [SECONDS_PER_TARGET]      default 60
#
# Environment:
#   FUZZ_TARGETS     targets to run (default: all seven, in the order below)
#   FUZZ_SANITIZER   cargo-fuzz sanitizer: address (default) or none
#   FUZZ_ARGS        extra libFuzzer arguments for every run (e.g. "-max_len=8192")
#   FUZZ_KEEP_FILES  inputs kept per target besides the seeds (default 60)
#   FUZZ_KEEP_BYTES  ... and at most this many bytes of them (default 60000)
#
# Keeps each corpus (new inputs land in fuzz/corpus/<target>/), saves crashes in
# fuzz/artifacts/<target>/, prints one summary line per target and exits non-zero if any
# target crashed, hung, ran out of memory or failed to build.
set -uo pipefail

seconds="${1:-60}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
    echo "usage: $0 [SECONDS_PER_TARGET]" >&2
    exit 2
fi
cd "$(dirname "$0")"
fuzz_dir="$PWD"

# cargo-fuzz passes -Zsanitizer=... and other nightly flags; the stable compiler accepts them
# with RUSTC_BOOTSTRAP=1 (no nightly toolchain here).
export RUSTC_BOOTSTRAP=1
sanitizer="${FUZZ_SANITIZER:-address}"
targets="${FUZZ_TARGETS:-request_path client_ip http_head http_framing snapshot_json snapshot_yaml config}"
keep_files="${FUZZ_KEEP_FILES:-60}"
keep_bytes="${FUZZ_KEEP_BYTES:-60000}"

# Each sanitizer setting has its own target directory: switching would rebuild everything.
target_dir=()
case "$sanitizer" in
    address) ;;
    none) target_dir=(--target-dir "$fuzz_dir/target/nosan") ;;
    *) target_dir=(--target-dir "$fuzz_dir/target/san-$sanitizer") ;;
esac

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz (a few minutes of compiling)"
    cargo install cargo-fuzz --locked || exit 2
fi

echo "== building fuzz targets (sanitizer: $sanitizer)"
if ! cargo fuzz build -s "$sanitizer" "${target_dir[@]}"; then
    echo "fuzz build failed" >&2
    exit 2
fi

logs="$fuzz_dir/target/fuzz-logs"
mkdir -p "$logs"

corpus_files() { find "$1" -type f | wc -l; }
corpus_bytes() { find "$1" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}'; }

# Like `cargo fuzz cmin`, but the hand-written seeds (seed-*) are always kept under their
# names and the rest is cut to a budget: a set-cover merge over edge coverage
# (-set_cover_merge=1 -use_counters=0) records every input's features, then trim_corpus.py
# keeps the inputs that add the most coverage until FUZZ_KEEP_FILES / FUZZ_KEEP_BYTES.
# (cmin alone keeps several hundred files per snapshot target after one minute.)
non_seed_files() { find "$1" -type f ! -name 'seed-*' | wc -l; }
non_seed_bytes() { find "$1" -type f ! -name 'seed-*' -printf '%s\n' | awk '{s += $1} END {print s + 0}'; }
minimise() {
    local target="$1" corpus="$fuzz_dir/corpus/$1" work="$fuzz_dir/target/cmin/$1"
    rm -rf "$work"
    mkdir -p "$work/seeds" "$work/kept"
    find "$corpus" -maxdepth 1 -type f -name 'seed-*' -exec cp {} "$work/seeds/" \;
    if cargo fuzz run -s "$sanitizer" "${target_dir[@]}" "$target" "$work/seeds" "$corpus" -- \
        -set_cover_merge=1 -use_counters=0 -merge_control_file="$work/control" \
        >"$logs/$target.cmin.log" 2>&1 \
        && python3 "$fuzz_dir/trim_corpus.py" "$work/control" "$work/kept" \
            "$keep_files" "$keep_bytes" >>"$logs/$target.cmin.log"; then
        echo "   $target corpus: $(tail -1 "$logs/$target.cmin.log")"
        rm -rf "$corpus"
        mv "$work/kept" "$corpus"
    else
        echo "   ($target: minimisation failed, corpus left as is; see $logs/$target.cmin.log)"
    fi
}

failed=0
summary=()
for target in $targets; do
    corpus="$fuzz_dir/corpus/$target"
    mkdir -p "$corpus"
    log="$logs/$target.log"
    args=("-max_total_time=$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048)
    if [ -f "$fuzz_dir/dict/$target.dict" ]; then
        args+=("-dict=$fuzz_dir/dict/$target.dict")
    fi
    # shellcheck disable=SC2206 # split on purpose: several arguments
    args+=(${FUZZ_ARGS:-})
    echo "== $target: ${seconds}s (log: $log)"
    cargo fuzz run -s "$sanitizer" "${target_dir[@]}" "$target" "$corpus" -- "${args[@]}" >"$log" 2>&1
    rc=$?

    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    added=$(sed -n 's/^stat::new_units_added: *//p' "$log" | tail -1)
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)

    if [ "$rc" -eq 0 ]; then
        status=ok
        if [ "$(non_seed_files "$corpus")" -gt "$keep_files" ] \
            || [ "$(non_seed_bytes "$corpus")" -gt "$keep_bytes" ]; then
            minimise "$target"
        fi
    else
        status="FAILED(rc=$rc)"
        failed=1
        grep -E 'panicked at|ERROR: libFuzzer|SUMMARY|Test unit written' "$log" \
            | head -5 | sed 's/^/   /'
    fi
    line=$(printf '%-14s %-14s execs=%-10s exec/s=%-8s cov=%-6s ft=%-6s new=%-5s rss=%sMB corpus=%s files/%s bytes' \
        "$target" "$status" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${added:-?}" \
        "${rss:-?}" "$(corpus_files "$corpus")" "$(corpus_bytes "$corpus")")
    summary+=("$line")
done

echo "== summary (${seconds}s per target, sanitizer $sanitizer)"
printf '%s\n' "${summary[@]}"
exit "$failed"
