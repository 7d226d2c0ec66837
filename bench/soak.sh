#!/usr/bin/env bash
# bench/soak.sh: a long mixed-traffic soak of one tokenroute process, with its memory and descriptors watched.
#
# What it does:
#   1. builds `tokenroute` in release (unless --no-build) and starts three stand-in CQ-Web-like nodes
#      (`tokenroute sim-nodes`) and tokenroute in front of them: memory store with snapshot and journal,
#      access log on (to a file), admin API on; every credential's TTL is 3 minutes, so that the learned table
#      reaches its steady size during the warm-up (with the default TTLs of days it would grow all run long, and
#      its growth would read as a leak);
#   2. for --duration seconds, all at once:
#        flows     `tokenroute loadtest`: signed OAuth 1.0a friendship flows (key registration, approval with
#                  the refresh fan-out, request token, authorize, access token, resource), --flow-concurrency
#                  at a time, so the table keeps learning, expiring and compacting;
#        noise     bench/soak_traffic.py: keep-alive plain requests, and requests with bogus credentials
#                  (OAuth header, Bearer, query token, session cookie never issued), --rate per second;
#        reloads   every --reload-every seconds a config edit (a node's weight toggles), applied in turn by
#                  SIGHUP and by POST /reload;
#   3. samples the proxy's RSS and open descriptors every 10 s (CSV in the results directory);
#   4. stops the traffic, waits for idle upstream connections to expire, and prints the verdict:
#        RSS drift   median RSS of the last 5 minutes against the median of the 5 minutes after --warmup
#                    (medians, so that a sample taken during a snapshot's transient buffers does not decide it)
#                                                                                         target <= 5%
#        fds         open descriptors at the end vs before any traffic                 target: back to it
#        panics      "panicked" lines in the proxy's log, and the proxy still running     target: 0, yes
#        flows       failed signed flows                                                  reported
#
# Options: --duration S (default 1800), --warmup S (default 300), --rate N (default 200),
#          --flow-concurrency N (default 4), --reload-every S (default 30), --no-build, --out DIR
#          (default bench-results).
# Everything binds 127.0.0.1 on free ports; every process started here is stopped by PID on exit.

set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=1800
WARMUP=300
RATE=200
FLOW_CONCURRENCY=4
RELOAD_EVERY=30
BUILD=1
OUT=bench-results

while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION="$2"; shift 2 ;;
        --warmup) WARMUP="$2"; shift 2 ;;
        --rate) RATE="$2"; shift 2 ;;
        --flow-concurrency) FLOW_CONCURRENCY="$2"; shift 2 ;;
        --reload-every) RELOAD_EVERY="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --out) OUT="$2"; shift 2 ;;
        -h|--help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
done
if [ "$WARMUP" -ge "$DURATION" ]; then
    echo "--warmup ($WARMUP) must be shorter than --duration ($DURATION)" >&2
    exit 2
fi

if [ "$BUILD" = 1 ]; then
    cargo build --release --quiet
fi
BIN="$PWD/target/release/tokenroute"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RUN="$OUT/soak-$STAMP"
mkdir -p "$RUN"
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# The nodes print `name url clone-id=...` once listening.
"$BIN" sim-nodes --nodes 3 >"$WORK/nodes.txt" 2>"$RUN/nodes.log" &
PIDS+=($!)
for _ in $(seq 100); do
    [ "$(wc -l <"$WORK/nodes.txt")" -ge 3 ] && break
    sleep 0.1
done
[ "$(wc -l <"$WORK/nodes.txt")" -ge 3 ] || { echo "the stand-in nodes did not start" >&2; exit 1; }

PORT=$(free_port)
ADMIN_PORT=$(free_port)
export TOKENROUTE_ADMIN_TOKEN
TOKENROUTE_ADMIN_TOKEN=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
CONFIG="$WORK/config.toml"
write_config() { # $1: weight of the first node
    {
        printf '[[listener]]\naddress = "127.0.0.1:%s"\n\n' "$PORT"
        printf '[admin]\nenabled = true\naddress = "127.0.0.1:%s"\n\n' "$ADMIN_PORT"
        printf '[upstream]\npool_idle_timeout = "5s"\n\n'
        printf '[health]\npath = "/cqweb/health"\ninterval = "1s"\n\n'
        # The stand-in user's login is the refresh (the technote's "log in on each server").
        printf '[refresh]\n[[refresh.exchange]]\npath = "/cqweb/login"\n'
        printf 'headers = { "content-type" = "application/x-www-form-urlencoded" }\n'
        printf 'body = "username=${SOAK_USER}&password=${SOAK_PASSWORD}"\n\n'
        first=1
        while read -r name url _; do
            printf '[[upstream.node]]\nname = "%s"\nurl = "%s"\n' "$name" "$url"
            if [ "$first" = 1 ]; then printf 'weight = %s\n' "$1"; first=0; fi
            printf '\n'
        done <"$WORK/nodes.txt"
        printf '[routing.ttl]\nconsumer_key = "3m"\nrequest_token = "3m"\nverifier = "3m"\n'
        printf 'access_token = "3m"\nsession_cookie = "3m"\n\n'
        printf '[affinity]\nsnapshot_path = "%s/affinity.snapshot"\nsnapshot_interval = "60s"\n\n' "$WORK"
        printf '[log]\naccess = true\n'
    } >"$CONFIG.tmp"
    mv "$CONFIG.tmp" "$CONFIG"
}
export SOAK_USER=alice SOAK_PASSWORD=alice-pass
write_config 1
"$BIN" --config "$CONFIG" run >"$RUN/proxy.log" 2>&1 &
PROXY=$!
PIDS+=($PROXY)
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$ADMIN_PORT/ready" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -sf "http://127.0.0.1:$ADMIN_PORT/ready" >/dev/null || { echo "tokenroute did not become ready" >&2; tail "$RUN/proxy.log" >&2; exit 1; }
sleep 5

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$PROXY/status"; }
fds() { find "/proc/$PROXY/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
BASE_FDS=$(fds)
BASE_RSS=$(rss_kb)
echo "soak: tokenroute pid $PROXY on 127.0.0.1:$PORT, $DURATION s ($WARMUP s warm-up), results in $RUN"
echo "soak: before traffic: RSS $BASE_RSS kB, $BASE_FDS descriptors"

START=$(date +%s)
"$BIN" loadtest --target "http://127.0.0.1:$PORT" --duration "${DURATION}s" \
    --concurrency "$FLOW_CONCURRENCY" --svg "$RUN/flows.svg" >"$RUN/flows.txt" 2>&1 &
FLOWS=$!
PIDS+=($FLOWS)
python3 bench/soak_traffic.py --port "$PORT" --rate "$RATE" --duration "$DURATION" >"$RUN/noise.txt" 2>&1 &
NOISE=$!
PIDS+=($NOISE)

echo "seconds,rss_kb,fds" >"$RUN/samples.csv"
RELOADS=0
WEIGHT=1
NEXT_RELOAD=$((START + RELOAD_EVERY))
WARM_RSS=""
while :; do
    now=$(date +%s)
    elapsed=$((now - START))
    [ "$elapsed" -ge "$DURATION" ] && break
    kill -0 "$PROXY" 2>/dev/null || { echo "soak: tokenroute exited during the run" >&2; break; }
    echo "$elapsed,$(rss_kb),$(fds)" >>"$RUN/samples.csv"
    if [ -z "$WARM_RSS" ] && [ "$elapsed" -ge "$WARMUP" ]; then
        WARM_RSS=$(rss_kb)
        echo "soak: after warm-up ($elapsed s): RSS $WARM_RSS kB"
    fi
    if [ "$now" -ge "$NEXT_RELOAD" ]; then
        WEIGHT=$((WEIGHT == 1 ? 2 : 1))
        write_config "$WEIGHT"
        if [ $((RELOADS % 2)) = 0 ]; then
            kill -HUP "$PROXY"
        else
            curl -sf -X POST -H "Authorization: Bearer $TOKENROUTE_ADMIN_TOKEN" \
                "http://127.0.0.1:$ADMIN_PORT/reload" >/dev/null || echo "soak: POST /reload failed" >&2
        fi
        RELOADS=$((RELOADS + 1))
        NEXT_RELOAD=$((NEXT_RELOAD + RELOAD_EVERY))
    fi
    sleep 10
done
END_RSS=$(rss_kb || echo 0)
ENTRIES=$(curl -sf -H "Authorization: Bearer $TOKENROUTE_ADMIN_TOKEN" "http://127.0.0.1:$ADMIN_PORT/status" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["table"]["entries"])' 2>/dev/null || echo "?")
wait "$FLOWS" || true
wait "$NOISE" || true
# Idle upstream connections close after pool_idle_timeout (5 s); client connections are gone.
sleep 12
END_FDS=$(fds)
ALIVE=no
kill -0 "$PROXY" 2>/dev/null && ALIVE=yes
PANICS=$(grep -c "panicked" "$RUN/proxy.log" || true)
APPLIED=$(grep -c "configuration reloaded\|reload applied\|config reloaded" "$RUN/proxy.log" || true)
read -r EARLY_RSS LATE_RSS DRIFT < <(python3 - "$RUN/samples.csv" "$WARMUP" "$DURATION" <<'PY'
import csv, statistics, sys
rows = [(int(r["seconds"]), int(r["rss_kb"])) for r in csv.DictReader(open(sys.argv[1]))]
warm, end = int(sys.argv[2]), int(sys.argv[3])
early = [v for t, v in rows if warm <= t < warm + 300] or [rows[-1][1]]
late = [v for t, v in rows if t >= end - 300] or [rows[-1][1]]
a, b = statistics.median(early), statistics.median(late)
print(int(a), int(b), f"{(b - a) / a * 100:+.2f}")
PY
)
FLOW_LINE=$(grep -m1 "passed," "$RUN/flows.txt" || echo "no flow summary (see $RUN/flows.txt)")
NOISE_LINE=$(tail -1 "$RUN/noise.txt")

verdict() { if [ "$1" = 1 ]; then echo PASS; else echo MISS; fi; }
{
    echo "== soak $STAMP, commit $(git rev-parse --short HEAD), $DURATION s, warm-up $WARMUP s"
    echo "RSS: before traffic $BASE_RSS kB, at the end of warm-up ${WARM_RSS:-?} kB, last sample $END_RSS kB"
    echo "RSS drift: median $EARLY_RSS kB in the 5 minutes after warm-up, $LATE_RSS kB in the last 5: $DRIFT% (target <= 5%): $(verdict "$(python3 -c "print(int(abs($DRIFT) <= 5))")")"
    echo "learned table at the end: $ENTRIES entries"
    echo "descriptors: before traffic $BASE_FDS, after $END_FDS: $(verdict "$((END_FDS <= BASE_FDS))")"
    echo "panics: $PANICS, still running: $ALIVE: $(verdict "$(( PANICS == 0 ))")"
    echo "reloads: $RELOADS sent, $APPLIED logged as applied"
    echo "signed flows: $FLOW_LINE"
    echo "plain and bogus requests: $NOISE_LINE"
} | tee "$RUN/summary.txt"
