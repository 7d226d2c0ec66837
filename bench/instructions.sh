#!/usr/bin/env bash
# bench/instructions.sh: instructions per proxied request, counted by callgrind; deterministic, so it can
# judge a change on a machine too busy for wall-clock figures.
#
# Starts 3 bench_origin origins and tokenroute (`worker_threads = 1`, no health checks) under
# `valgrind --tool=callgrind`, sends WARM requests (connections opened, pools filled, caches warm), zeroes the
# counters, sends exactly COUNT keep-alive requests over CONNECTIONS connections with `bench_origin load`, and
# dumps. Prints the proxy's instructions per request (all threads; callgrind's Ir) and leaves the profile in
# OUT (callgrind_annotate it).
#
# Case aware-redis is aware with `[affinity] store = "redis"` against a redis-server this script starts: the
# learned credentials are then cached locally and in Redis, so the ratio to aware is what sharing costs a request
# whose credentials are already cached (issue 11).
#
# Usage: bench/instructions.sh [--case plain|hdr|aware|aware-redis] [--count N] [--connections N] [--warm N]
#                              [--known-only] [--bin PATH] [--origin PATH] [--out FILE]
# Binaries default to target/profiling (`cargo build --profile profiling --bin tokenroute --example
# bench_origin`, line tables for the annotation). Everything binds 127.0.0.1; every process started here is
# stopped by PID on exit.

set -euo pipefail
CASE=plain
COUNT=4000
CONNECTIONS=32
WARM=1000
TOKENS=2000
KNOWN_ONLY=0
cd "$(dirname "$0")/.."
BIN=target/profiling/tokenroute
ORIGIN=target/profiling/examples/bench_origin
OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --case) CASE="$2"; shift 2 ;;
        --count) COUNT="$2"; shift 2 ;;
        --connections) CONNECTIONS="$2"; shift 2 ;;
        --warm) WARM="$2"; shift 2 ;;
        --bin) BIN="$2"; shift 2 ;;
        --origin) ORIGIN="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        --known-only) KNOWN_ONLY=1; shift ;;
        -h|--help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
done
[ -x "$BIN" ] && [ -x "$ORIGIN" ] || { echo "missing $BIN or $ORIGIN" >&2; exit 1; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/instructions.XXXXXX")
OUT=${OUT:-$WORK/callgrind.out}
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

PORTS=()
for i in 1 2 3; do
    "$ORIGIN" serve "origin$i" >"$WORK/origin$i.port" 2>/dev/null &
    PIDS+=($!)
    for _ in $(seq 100); do [ -s "$WORK/origin$i.port" ] && break; sleep 0.05; done
    PORTS+=("$(head -n1 "$WORK/origin$i.port")")
done
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
AWARE=false
case "$CASE" in aware|aware-redis) AWARE=true ;; esac
STORE=""
if [ "$CASE" = aware-redis ]; then
    REDIS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK" \
        >"$WORK/redis.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT") 2>/dev/null && break; sleep 0.05; done
    STORE=$(printf '\n[affinity]\nstore = "redis"\nfingerprint_key_file = "%s/fingerprint.key"\n\n[affinity.redis]\nurl = "redis://127.0.0.1:%s/0"\n' "$WORK" "$REDIS_PORT")
fi
{
    printf '[log]\naccess = false\n\n[runtime]\nworker_threads = 1\n\n[[listener]]\nname = "bench"\naddress = "127.0.0.1:%s"\n\n' "$PORT"
    printf '[upstream]\npolicy = "round_robin"\n\n'
    for i in 0 1 2; do
        printf '[[upstream.node]]\nname = "origin%d"\nurl = "http://127.0.0.1:%s"\n\n' "$((i + 1))" "${PORTS[$i]}"
    done
    printf '[health]\nenabled = false\n\n[routing]\ntoken_aware = %s\npresets = ["oslc"]\n' "$AWARE"
    printf '%s\n' "$STORE"
} >"$WORK/proxy.toml"
RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$OUT" "$BIN" --config "$WORK/proxy.toml" \
    >"$WORK/proxy.log" 2>&1 &
VG=$!
PIDS+=("$VG")
for _ in $(seq 600); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
URL="http://127.0.0.1:$PORT"
LOAD_ARGS=()
# 80% of the requests carry a learned token, 20% an unknown one; --known-only: every one a learned token.
POOL=$((TOKENS * 5 / 4))
[ "$KNOWN_ONLY" = 1 ] && POOL=$TOKENS
[ "$CASE" = plain ] || LOAD_ARGS=(oauth "$TOKENS" "$POOL")
[ "$AWARE" = true ] && "$ORIGIN" warm "$URL" "$TOKENS" >/dev/null
"$ORIGIN" load "$URL" "$CONNECTIONS" "$WARM" "${LOAD_ARGS[@]}" >/dev/null
callgrind_control -z "$VG" >/dev/null
"$ORIGIN" load "$URL" "$CONNECTIONS" "$COUNT" "${LOAD_ARGS[@]}" >/dev/null
callgrind_control -d "$VG" >/dev/null
sleep 1
# The dump after zeroing is the last file written: OUT.N (one per thread part when separated).
LAST=$(ls -t "$OUT"* | head -n1)
IR=$(grep -m1 '^summary:\|^totals:' "$LAST" | awk '{print $2}')
printf 'case=%s count=%s connections=%s Ir=%s Ir/request=%s profile=%s\n' "$CASE" "$COUNT" "$CONNECTIONS" "$IR" \
    "$((IR / COUNT))" "$LAST"
