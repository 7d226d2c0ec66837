#!/usr/bin/env bash
# fuzz/run.sh: runs every fuzz target (or those named) until each has had CPU_SECONDS of CPU time (default
# 600, the hardening issue's 10 CPU-minutes), in slices of SLICE seconds, growing fuzz/corpus/<target>/.
# CPU time, not wall time, is what counts: on a shared 2-core machine a slice may get less than its wall
# time. Stops at the first crash (libFuzzer leaves the input in fuzz/artifacts/<target>/) and prints a
# summary line per target: CPU seconds, executions, corpus size, crashes.
#
#   fuzz/run.sh                  # every target, 600 CPU-seconds each
#   CPU_SECONDS=60 fuzz/run.sh percent journal
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). Replay without either:
# `cargo test fuzz_corpora`.
set -euo pipefail
cd "$(dirname "$0")"
CPU_SECONDS="${CPU_SECONDS:-600}"
SLICE="${SLICE:-120}"
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
    mapfile -t TARGETS < <(cargo +nightly fuzz list)
fi
cargo +nightly fuzz build 2>&1 | grep -v "^ *\(Compiling\|Finished\)" || true
mkdir -p logs
for target in "${TARGETS[@]}"; do
    spent=0
    execs=0
    mkdir -p "artifacts/$target"
    while [ "$spent" -lt "$CPU_SECONDS" ]; do
        left=$((CPU_SECONDS - spent))
        slice=$((left < SLICE ? left : SLICE))
        log="logs/$target.log"
        # -timeout: one input taking 10 s is a hang, reported as a crash.
        if ! /usr/bin/time -f "%U %S" -o "logs/$target.time" \
            "target/x86_64-unknown-linux-gnu/release/$target" "corpus/$target" \
            -max_total_time="$slice" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
            -artifact_prefix="artifacts/$target/" >"$log" 2>&1; then
            echo "$target: CRASH after $spent CPU-seconds; see fuzz/$log and fuzz/artifacts/$target/" >&2
            tail -40 "$log" >&2
            exit 1
        fi
        used=$(awk '{printf "%d", $1 + $2}' "logs/$target.time")
        spent=$((spent + used))
        n=$(awk '/stat::number_of_executed_units/ {print $2}' "$log")
        execs=$((execs + ${n:-0}))
    done
    corpus=$(find "corpus/$target" -type f | wc -l)
    echo "$target: ${spent} CPU-seconds, ${execs} executions, corpus ${corpus} inputs, 0 crashes"
done
