#!/usr/bin/env bash
# bench/proxy-load.sh: the proxy load bench, in one run on one machine.
#
# What it does, in order:
#   1. installs haproxy, nginx (nginx-light) and wrk with apt-get if any is missing (needs root or sudo);
#   2. builds `tokenroute` and `examples/bench_origin` with `cargo build --release`;
#   3. starts a pool of fast origins (bench_origin: one thread each, fixed 13-byte body);
#   4. runs the same keep-alive HTTP/1.1 load with wrk (fixed connections, fixed duration) against:
#        direct             one origin, no proxy (the ceiling of the load side)
#        haproxy            HAProxy, `nbthread 1`, round robin over the origins (the baseline of every ratio)
#        haproxy-hdr        the same, but every request carries the `Authorization: OAuth ..` header below
#        nginx              nginx, `worker_processes 1`, upstream keepalive
#        tokenroute         tokenroute, `worker_threads = 1`, `[routing] token_aware = false`
#        tokenroute-hdr     the same, but every request carries an `Authorization: OAuth ..` header
#        tokenroute-aware   `token_aware = true`, the same OAuth requests; 80% carry a token the proxy has
#                           learned (the table is warmed first through the proxy, from the origins' own
#                           request-token answers), 20% an unknown one;
#        tokenroute-aware-redis the same with `[affinity] store = "redis"` against a redis-server started here
#                           (on core 1): the learned tokens are cached locally and in Redis, so the ratio
#                           to tokenroute-aware is what sharing the table costs a request (issue 11; the
#                           proxy's CPU only, not Redis's);
#   5. prints a table and writes bench-results/proxy-load-<time>.txt and .json.
#
# Figures per case: requests/s, p50 and p99 latency (wrk --latency), and the CPU time the proxy process
# (nginx: master + worker) used per request: utime+stime from /proc/PID/stat before and after the run,
# divided by the requests wrk completed. Each figure is also given as a ratio to HAProxy's in the same run.
#
# Pinning: the proxy under test runs on core 0 alone (`taskset -c 0`); wrk and the origins share core 1
# (`taskset -c 1`). On this 2-core machine that gives each proxy one whole core, as 1 thread/worker can use;
# "busy" in the table is the proxy's CPU time over the run's wall time, so a proxy near 100% was the limit
# and one well below it was waiting on core 1; "core0 other" is core 0's busy time not charged to the
# proxy (kernel network work, or another program on a shared machine), the sign of a disturbed run.
#
# Options:
#   --connections N   wrk connections (default 32)
#   --duration S      seconds per measured run (default 10); each run is preceded by a 2 s warm-up
#   --origins N       origin processes (default 3)
#   --tokens N        tokens learned before the token-aware run (default 2000)
#   --cases LIST      comma-separated subset of the cases above (default: all)
#   --no-install      do not run apt-get; fail if a tool is missing
#   --no-build        use the binaries already in target/release
#   --body-bytes N    size of the origins' plain answer (default 13; issue 12 also asks for 16384)
#   --out DIR         results directory (default bench-results)
#   --repeat N        run the whole list of cases N times, interleaved (round 1: every case, round 2: every
#                     case, ...), and report each figure as the median of its N runs (default 1); the
#                     spread of CPU per request is printed too. On a shared machine this is what makes a
#                     ratio of a few percent (token-aware against plain) worth reading. A ratio of two
#                     tokenroute cases is paired: each round's ratio, then their median and range.
#   --table           also measure issue 12's table targets and print them with the load targets: lookup hit
#                     and miss at 1 M and 10 M entries (`cargo bench --bench table`, criterion's estimate)
#                     and bytes per entry at 1 M and 10 M (`cargo run --release --example table_memory`).
#                     Adds about 5 minutes (filling 10 M entries twice).
#   --perf-record     also sample core 0 with `perf record -g` during each measured run of a proxy, into
#                     OUT/perf-<case>-<round>.data (`perf report -i ... --no-children --sort dso,sym`): where a
#                     case's CPU goes, user space and kernel. Sampling costs CPU too: not a run to quote.
#   --syscalls        also count the proxy's system calls during each measured run (`perf stat` on its PID;
#                     needs perf and tracepoint access) and print them per request, by call: where the
#                     kernel time goes. Counting adds a little kernel time of its own, so the CPU figures of
#                     such a run are not the ones to quote.
#
# After the table it prints issue 12's load targets, each with its ratio and PASS/MISS (CPU per request
# <= 0.9x HAProxy's, req/s >= 1.1x, p99 <= HAProxy's, token-aware <= 1.05x the CPU of plain forwarding of the
# same OAuth requests). The table targets (lookup time, bytes per entry) are criterion's and table_memory's.
#
# Every process started here is stopped by PID on exit (trap), everything binds 127.0.0.1 on free ports,
# and each load run is bounded by --duration (plus a wrk timeout). A full run takes about 2 minutes once the
# release build is up to date.

set -euo pipefail

CONNECTIONS=32
DURATION=10
WARMUP=2
ORIGINS=3
TOKENS=2000
CASES="direct,haproxy,haproxy-hdr,nginx,tokenroute,tokenroute-hdr,tokenroute-aware,tokenroute-aware-redis"
INSTALL=1
BUILD=1
OUT=bench-results
BODY_BYTES=13
SYSCALLS=0
REPEAT=1
PERF_RECORD=0
TABLE=0

usage() {
    sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'
    exit "${1:-0}"
}

while [ $# -gt 0 ]; do
    case "$1" in
        --connections) CONNECTIONS="$2"; shift 2 ;;
        --duration) DURATION="$2"; shift 2 ;;
        --origins) ORIGINS="$2"; shift 2 ;;
        --tokens) TOKENS="$2"; shift 2 ;;
        --cases) CASES="$2"; shift 2 ;;
        --no-install) INSTALL=0; shift ;;
        --no-build) BUILD=0; shift ;;
        --out) OUT="$2"; shift 2 ;;
        --body-bytes) BODY_BYTES="$2"; shift 2 ;;
        --syscalls) SYSCALLS=1; shift ;;
        --repeat) REPEAT="$2"; shift 2 ;;
        --perf-record) PERF_RECORD=1; shift ;;
        --table) TABLE=1; shift ;;
        -h|--help) usage 0 ;;
        *) echo "unknown option: $1" >&2; usage 2 ;;
    esac
done

cd "$(dirname "$0")/.."
ROOT=$(pwd)
log() { printf '== %s\n' "$*" >&2; }
die() { printf 'proxy-load: %s\n' "$*" >&2; exit 1; }
has_case() { case ",$CASES," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

# ---------------------------------------------------------------------------------------------- tools
need_install=()
command -v haproxy >/dev/null || need_install+=(haproxy)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need_install+=(nginx-light)
command -v wrk >/dev/null || need_install+=(wrk)
command -v taskset >/dev/null || need_install+=(util-linux)
command -v python3 >/dev/null || need_install+=(python3)
if has_case tokenroute-aware-redis; then
    command -v redis-server >/dev/null || need_install+=(redis-server)
fi
if [ ${#need_install[@]} -gt 0 ]; then
    [ "$INSTALL" = 1 ] || die "missing: ${need_install[*]} (run without --no-install)"
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO=sudo
    log "installing ${need_install[*]}"
    # Package scripts must not start a system nginx or haproxy on port 80: a policy-rc.d answering 101
    # forbids it. Added only if absent, and removed again.
    added_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
        $SUDO chmod 755 /usr/sbin/policy-rc.d
        added_policy=1
    fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_install[@]}" >/dev/null
    [ "$added_policy" = 0 ] || $SUDO rm -f /usr/sbin/policy-rc.d
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

# ---------------------------------------------------------------------------------------------- build
if [ "$BUILD" = 1 ]; then
    log "cargo build --release (tokenroute, bench_origin)"
    cargo build --release --quiet --bin tokenroute --example bench_origin
fi
# TOKENROUTE_BIN: another tokenroute binary to measure (e.g. a build of an older commit, for a before/after).
TOKENROUTE="${TOKENROUTE_BIN:-$ROOT/target/release/tokenroute}"
ORIGIN="$ROOT/target/release/examples/bench_origin"
[ -x "$TOKENROUTE" ] && [ -x "$ORIGIN" ] || die "binaries missing in target/release (run without --no-build)"

# ---------------------------------------------------------------------------------------------- processes
WORK=$(mktemp -d "${TMPDIR:-/tmp}/proxy-load.XXXXXX")
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Stops one process started here and forgets it.
stop() {
    local pid=$1 kept=() p
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || kept+=("$p"); done
    PIDS=("${kept[@]}")
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_port PORT NAME LOG: waits up to 10 s until 127.0.0.1:PORT accepts a connection.
wait_port() {
    local deadline=$((SECONDS + 10))
    until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || die "nothing listens on 127.0.0.1:$1 after 10 s ($2): $(tail -n 5 "$3" 2>/dev/null)"
        sleep 0.1
    done
}

# The calls --syscalls counts one by one (the total counts every call, these or not).
SYSCALL_EVENTS=raw_syscalls:sys_enter
for call in read write readv writev recvfrom sendto recvmsg sendmsg epoll_wait epoll_pwait epoll_ctl futex \
    accept4 close splice setsockopt getsockopt sched_yield; do
    SYSCALL_EVENTS+=",syscalls:sys_enter_$call"
done
if [ "$PERF_RECORD" = 1 ]; then
    command -v perf >/dev/null || die "--perf-record needs perf (apt-get install linux-perf)"
fi
if [ "$SYSCALLS" = 1 ]; then
    command -v perf >/dev/null || die "--syscalls needs perf (apt-get install linux-perf)"
    perf stat -e "$SYSCALL_EVENTS" -- true >/dev/null 2>&1 || die "--syscalls: perf cannot count syscall tracepoints here (perf_event_paranoid, or not root)"
fi

# pids_of PID: PID and its direct children, comma-separated (nginx: master and worker).
pids_of() {
    local all=$1 p
    for p in $(ps -o pid= --ppid "$1" 2>/dev/null); do all+=",$p"; done
    echo "$all"
}

# syscall_counts FILE: perf stat's CSV as one JSON object, {"total": N, "read": N, ...}.
syscall_counts() {
    python3 - "$1" <<'PY'
import json, sys
counts = {}
for line in open(sys.argv[1]):
    f = line.strip().split(",")
    if len(f) < 3 or not f[0].replace(".", "").isdigit():
        continue
    name = f[2].split(":")[-1].replace("sys_enter_", "")
    counts["total" if name == "sys_enter" else name] = int(float(f[0]))
print(json.dumps(counts))
PY
}

CLK_TCK=$(getconf CLK_TCK)
# "utime stime" (clock ticks) of a process and its direct children (nginx: master and worker).
cpu_ticks() {
    local pid=$1 user=0 sys=0 p u s
    for p in $(pids_of "$pid" | tr ',' ' '); do
        [ -r "/proc/$p/stat" ] || continue
        # Fields after the parenthesised command name: utime is the 12th, stime the 13th.
        read -r u s < <(sed 's/^.*) //' "/proc/$p/stat" | awk '{print $12, $13}')
        user=$((user + u))
        sys=$((sys + s))
    done
    echo "$user $sys"
}

# Busy ticks of core 0 (user, nice, system, irq, softirq, steal), whoever used them.
core0_ticks() {
    awk '$1 == "cpu0" { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}

log "starting $ORIGINS origins on core 1"
ORIGIN_PORTS=()
for i in $(seq 1 "$ORIGINS"); do
    taskset -c 1 "$ORIGIN" serve "origin$i" "$BODY_BYTES" >"$WORK/origin$i.port" 2>"$WORK/origin$i.err" &
    PIDS+=($!)
    deadline=$((SECONDS + 10))
    until [ -s "$WORK/origin$i.port" ]; do
        [ $SECONDS -lt $deadline ] || die "origin$i did not start: $(cat "$WORK/origin$i.err")"
        sleep 0.05
    done
    ORIGIN_PORTS+=("$(head -n1 "$WORK/origin$i.port")")
done

# ---------------------------------------------------------------------------------------------- wrk scripts
cat >"$WORK/report.lua" <<'LUA'
-- Prints one JSON line with what the bench needs; latency figures are in microseconds.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"errors":%d,"non_2xx":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
LUA

# Requests carrying a realistic RFC 5849 Authorization header. Tokens bench-0 .. bench-(known-1) were
# learned by the proxy during warm-up; bench-(known) .. bench-(total-1) were never issued (unknown).
cat "$WORK/report.lua" >"$WORK/oauth.lua"
cat >>"$WORK/oauth.lua" <<'LUA'
local requests_ = {}
local next_ = 0
init = function(args)
  local known, total = tonumber(args[1]), tonumber(args[2])
  for i = 0, total - 1 do
    local auth = string.format(
      'OAuth realm="cqweb", oauth_consumer_key="3f6c1e0a9b7d4e2f8a1c5b9d0e7f%04x", oauth_token="bench-%d", ' ..
      'oauth_signature_method="HMAC-SHA1", oauth_timestamp="%d", oauth_nonce="%08x%08x", ' ..
      'oauth_version="1.0", oauth_signature="tR3%%2BTy81lMeYAr%%2FFid0kMTYa%%2FWM%%3D"',
      i % 16, i, 1717171717 + i, i * 2654435761 % 4294967296, i)
    requests_[#requests_ + 1] = wrk.format("GET", "/cqweb/oslc/resource", { ["Authorization"] = auth })
  end
end
request = function()
  next_ = next_ % #requests_ + 1
  return requests_[next_]
end
LUA
KNOWN=$TOKENS
TOTAL=$((TOKENS * 5 / 4))

RESULTS="$WORK/results.jsonl"
: >"$RESULTS"

# run_load CASE PORT PID SCRIPT [ARGS...]: a warm-up run, then the measured run with the proxy's CPU time
# read around it. PID is empty for the direct case.
run_load() {
    local name=$1 port=$2 pid=$3 script=$4
    shift 4
    local url="http://127.0.0.1:$port/cqweb/oslc/resource"
    taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"${WARMUP}s" --timeout 5s -s "$script" "$url" -- "$@" >/dev/null
    local before="0 0" after="0 0" core0_before core0_after
    [ -z "$pid" ] || before=$(cpu_ticks "$pid")
    core0_before=$(core0_ticks)
    local perf_pid=""
    if [ "$SYSCALLS" = 1 ] && [ -n "$pid" ]; then
        # Counting mode (no sampling), on the process and its threads, for the measured run only.
        perf stat -x, -e "$SYSCALL_EVENTS" -p "$(pids_of "$pid")" -o "$WORK/$name.perf" &
        perf_pid=$!
        sleep 0.2
    fi
    local record_pid=""
    if [ "$PERF_RECORD" = 1 ] && [ -n "$pid" ]; then
        mkdir -p "$OUT"
        perf record -q -g -C 0 -o "$OUT/perf-$name-$ROUND.data" -- sleep "$DURATION" >/dev/null 2>&1 &
        record_pid=$!
    fi
    taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --timeout 5s --latency -s "$script" "$url" -- "$@" \
        >"$WORK/$name.wrk"
    core0_after=$(core0_ticks)
    [ -z "$record_pid" ] || wait "$record_pid" 2>/dev/null || true
    if [ -n "$perf_pid" ]; then
        kill -INT "$perf_pid" 2>/dev/null || true
        wait "$perf_pid" 2>/dev/null || true
    fi
    [ -z "$pid" ] || after=$(cpu_ticks "$pid")
    local line
    line=$(grep '^WRK ' "$WORK/$name.wrk" | sed 's/^WRK //') || die "no wrk summary for $name: $(cat "$WORK/$name.wrk")"
    local user_ticks sys_ticks
    user_ticks=$(( ${after% *} - ${before% *} ))
    sys_ticks=$(( ${after#* } - ${before#* } ))
    local syscalls="null"
    [ -z "$perf_pid" ] || syscalls=$(syscall_counts "$WORK/$name.perf")
    printf '{"case":"%s","proxy_cpu_ticks":%s,"proxy_user_ticks":%s,"proxy_sys_ticks":%s,"core0_ticks":%s,"clk_tck":%s,"measured_cpu":%s,"syscalls":%s,"wrk":%s}\n' \
        "$name" "$((user_ticks + sys_ticks))" "$user_ticks" "$sys_ticks" "$((core0_after - core0_before))" "$CLK_TCK" \
        "$([ -n "$pid" ] && echo true || echo false)" "$syscalls" "$line" >>"$RESULTS"
    log "$name: $(echo "$line" | python3 -c 'import json,sys; w=json.load(sys.stdin); print("%.0f req/s" % (w["requests"] * 1e6 / w["duration_us"]))')"
}

# ---------------------------------------------------------------------------------------------- cases
case "$REPEAT" in ''|*[!0-9]*|0) die "--repeat takes a positive number, not '$REPEAT'" ;; esac
for ROUND in $(seq 1 "$REPEAT"); do
[ "$REPEAT" = 1 ] || log "round $ROUND of $REPEAT"
if has_case direct; then
    log "direct (origin1, no proxy)"
    run_load direct "${ORIGIN_PORTS[0]}" "" "$WORK/report.lua"
fi

if has_case haproxy || has_case haproxy-hdr; then
    port=$(free_port)
    {
        printf 'global\n    nbthread 1\n    maxconn 4096\n'
        printf 'defaults\n    mode http\n    option http-keep-alive\n'
        printf '    timeout connect 2s\n    timeout client 30s\n    timeout server 60s\n'
        printf 'frontend fe\n    bind 127.0.0.1:%s\n    default_backend origins\n' "$port"
        printf 'backend origins\n    balance roundrobin\n'
        for i in "${!ORIGIN_PORTS[@]}"; do
            printf '    server origin%d 127.0.0.1:%s\n' "$((i + 1))" "${ORIGIN_PORTS[$i]}"
        done
    } >"$WORK/haproxy.cfg"
    log "haproxy (nbthread 1) on core 0"
    taskset -c 0 haproxy -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait_port "$port" haproxy "$WORK/haproxy.log"
    has_case haproxy && run_load haproxy "$port" "$pid" "$WORK/report.lua"
    has_case haproxy-hdr && run_load haproxy-hdr "$port" "$pid" "$WORK/oauth.lua" "$KNOWN" "$TOTAL"
    stop "$pid"
fi

if has_case nginx; then
    port=$(free_port)
    mkdir -p "$WORK/nginx"
    {
        printf 'worker_processes 1;\ndaemon off;\npid %s/nginx.pid;\nerror_log %s/nginx/error.log warn;\n' "$WORK" "$WORK"
        printf 'events { worker_connections 4096; }\n'
        printf 'http {\n    access_log off;\n    keepalive_requests 1000000;\n'
        for t in client_body proxy fastcgi uwsgi scgi; do
            printf '    %s_temp_path %s/nginx/%s;\n' "$t" "$WORK" "$t"
        done
        printf '    upstream origins {\n'
        for p in "${ORIGIN_PORTS[@]}"; do printf '        server 127.0.0.1:%s;\n' "$p"; done
        printf '        keepalive 64;\n        keepalive_requests 1000000;\n    }\n'
        printf '    server {\n        listen 127.0.0.1:%s;\n' "$port"
        printf '        location / {\n            proxy_pass http://origins;\n'
        printf '            proxy_http_version 1.1;\n            proxy_set_header Connection "";\n'
        printf '        }\n    }\n}\n'
    } >"$WORK/nginx.conf"
    log "nginx (worker_processes 1) on core 0"
    taskset -c 0 "$NGINX" -p "$WORK/nginx" -c "$WORK/nginx.conf" >"$WORK/nginx.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait_port "$port" nginx "$WORK/nginx.log"
    run_load nginx "$port" "$pid" "$WORK/report.lua"
    stop "$pid"
fi

# tokenroute_config PORT TOKEN_AWARE [with_routing]: a config with one worker thread, no health checks.
tokenroute_config() {
    local port=$1 aware=$2 routing=${3:-1}
    printf '[log]\naccess = false\n\n[runtime]\nworker_threads = 1\n\n[[listener]]\nname = "bench"\naddress = "127.0.0.1:%s"\n\n' "$port"
    printf '[upstream]\npolicy = "round_robin"\n\n'
    for i in "${!ORIGIN_PORTS[@]}"; do
        printf '[[upstream.node]]\nname = "origin%d"\nurl = "http://127.0.0.1:%s"\n\n' "$((i + 1))" "${ORIGIN_PORTS[$i]}"
    done
    printf '[health]\nenabled = false\n\n'
    if [ "$routing" = 1 ]; then
        printf '[routing]\ntoken_aware = %s\npresets = ["oslc"]\n' "$aware"
    fi
    printf '%s\n' "${STORE_TEXT:-}"
}

# Whether this build knows the [routing] section (it landed after this script was written).
ROUTING=1
tokenroute_config 1 false >"$WORK/probe.toml"
if ! "$TOKENROUTE" check --config "$WORK/probe.toml" >/dev/null 2>"$WORK/probe.err"; then
    ROUTING=0
    log "this tokenroute build rejects [routing] ($(head -c 200 "$WORK/probe.err" | tr '\n' ' ')): plain cases run without it, token-aware is skipped"
fi
NOTES=()

# start_tokenroute NAME AWARE: starts it on core 0; sets TR_PORT and TR_PID.
start_tokenroute() {
    TR_PORT=$(free_port)
    tokenroute_config "$TR_PORT" "$2" "$ROUTING" >"$WORK/$1.toml"
    log "$1 (worker_threads = 1, token_aware = $2) on core 0"
    RUST_LOG=warn taskset -c 0 "$TOKENROUTE" --config "$WORK/$1.toml" >"$WORK/$1.log" 2>&1 &
    TR_PID=$!
    PIDS+=("$TR_PID")
    wait_port "$TR_PORT" "$1" "$WORK/$1.log"
}

if has_case tokenroute || has_case tokenroute-hdr; then
    start_tokenroute tokenroute false
    has_case tokenroute && run_load tokenroute "$TR_PORT" "$TR_PID" "$WORK/report.lua"
    has_case tokenroute-hdr && run_load tokenroute-hdr "$TR_PORT" "$TR_PID" "$WORK/oauth.lua" "$KNOWN" "$TOTAL"
    stop "$TR_PID"
    [ "$ROUTING" = 1 ] || NOTES+=("tokenroute ran without a [routing] section: this build predates it")
fi

if has_case tokenroute-aware; then
    if [ "$ROUTING" = 1 ]; then
        start_tokenroute tokenroute-aware true
        log "warming: $KNOWN request tokens issued by the origins through the proxy"
        learned=$(taskset -c 1 "$ORIGIN" warm "http://127.0.0.1:$TR_PORT" "$KNOWN")
        NOTES+=("tokenroute-aware: $learned tokens learned through the proxy before the run; 80% of requests carry one of them, 20% an unknown token")
        run_load tokenroute-aware "$TR_PORT" "$TR_PID" "$WORK/oauth.lua" "$KNOWN" "$TOTAL"
        stop "$TR_PID"
    else
        NOTES+=("tokenroute-aware skipped: this tokenroute build has no [routing] section")
    fi
fi

if has_case tokenroute-aware-redis && [ "$ROUTING" = 1 ]; then
    REDIS_PORT=$(free_port)
    log "redis-server on core 1"
    taskset -c 1 redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK" \
        >"$WORK/redis.log" 2>&1 &
    REDIS_PID=$!
    PIDS+=("$REDIS_PID")
    wait_port "$REDIS_PORT" redis-server "$WORK/redis.log"
    STORE_TEXT=$(printf '[affinity]\nstore = "redis"\nfingerprint_key_file = "%s/fingerprint.key"\n\n[affinity.redis]\nurl = "redis://127.0.0.1:%s/0"\n' "$WORK" "$REDIS_PORT")
    start_tokenroute tokenroute-aware-redis true
    log "warming: $KNOWN request tokens issued by the origins through the proxy (learned locally and in Redis)"
    learned=$(taskset -c 1 "$ORIGIN" warm "http://127.0.0.1:$TR_PORT" "$KNOWN")
    NOTES+=("tokenroute-aware-redis: $learned tokens learned through the proxy into Redis before the run")
    run_load tokenroute-aware-redis "$TR_PORT" "$TR_PID" "$WORK/oauth.lua" "$KNOWN" "$TOTAL"
    stop "$TR_PID"
    stop "$REDIS_PID"
    STORE_TEXT=""
fi

done

# ---------------------------------------------------------------------------------------------- table
# Issue 12's table targets, measured after the load (nothing else runs then): criterion's point estimate of
# each lookup, and table_memory's bytes per entry. Written as JSON for the report.
TABLE_JSON="$WORK/table.json"
echo '{}' >"$TABLE_JSON"
if [ "$TABLE" = 1 ]; then
    log "table: cargo bench --bench table (lookups at 1 M and 10 M)"
    cargo bench --quiet --bench table -- '^table_(1M|10M)/lookup_(hit|miss)/table$' >"$WORK/table-bench.txt" 2>&1 \
        || die "cargo bench --bench table failed: $(tail -n 5 "$WORK/table-bench.txt")"
    for n in 1000000 10000000; do
        log "table: bytes per entry at $n entries"
        cargo run --quiet --release --example table_memory -- table "$n" >>"$WORK/table-memory.txt" 2>&1 \
            || die "table_memory failed: $(tail -n 5 "$WORK/table-memory.txt")"
    done
    python3 - "$WORK/table-bench.txt" "$WORK/table-memory.txt" >"$TABLE_JSON" <<'PY'
import json, re, sys
units = {"ps": 1e-3, "ns": 1.0, "µs": 1e3, "us": 1e3, "ms": 1e6}
out, name = {}, None
for line in open(sys.argv[1]):
    m = re.match(r"^(table_\S+)", line.strip())
    if m:
        name = m.group(1)
    t = re.search(r"time:\s+\[\S+ \S+ (\S+) (\S+) \S+ \S+\]", line)
    if t and name:
        out[name] = float(t.group(1)) * units[t.group(2)]
        name = None
for line in open(sys.argv[2]):
    f = line.split()
    if len(f) >= 3 and f[0] == "table" and f[1].isdigit():
        out[f"bytes_per_entry/{f[1]}"] = float(f[2])
print(json.dumps(out))
PY
fi

# ---------------------------------------------------------------------------------------------- report
mkdir -p "$OUT"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
NOTES_JSON=$(printf '%s\n' "${NOTES[@]+"${NOTES[@]}"}" | python3 -c 'import json,sys; print(json.dumps([l for l in sys.stdin.read().splitlines() if l]))')
META=$(printf '{"stamp":"%s","body_bytes":%s,"connections":%s,"duration_s":%s,"origins":%s,"commit":"%s","cores":%s,"pinning":"proxy on core 0 (taskset -c 0); wrk and origins on core 1 (taskset -c 1)","notes":%s}' \
    "$STAMP" "$BODY_BYTES" "$CONNECTIONS" "$DURATION" "$ORIGINS" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" "$(nproc)" "$NOTES_JSON")
python3 - "$RESULTS" "$OUT/proxy-load-$STAMP" "$META" "$TABLE_JSON" <<'PY'
import json, sys

results_path, out_base, meta = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
table_figures = json.load(open(sys.argv[4]))
meta["notes"] = list(dict.fromkeys(meta["notes"]))  # one per case, however many rounds
rows = []
for line in open(results_path):
    r = json.loads(line)
    w = r["wrk"]
    secs = w["duration_us"] / 1e6
    row = {
        "case": r["case"],
        "requests": w["requests"],
        "rps": w["requests"] / secs,
        "p50_ms": w["p50_us"] / 1e3,
        "p99_ms": w["p99_us"] / 1e3,
        "errors": w["errors"] + w["non_2xx"],
        "syscalls": r.get("syscalls"),
        "cpu_us_per_req": None,
        "user_us_per_req": None,
        "sys_us_per_req": None,
        "busy_pct": None,
        "core0_other_pct": None,
    }
    if r["measured_cpu"] and w["requests"]:
        cpu_s = r["proxy_cpu_ticks"] / r["clk_tck"]
        row["cpu_us_per_req"] = cpu_s * 1e6 / w["requests"]
        row["user_us_per_req"] = r["proxy_user_ticks"] / r["clk_tck"] * 1e6 / w["requests"]
        row["sys_us_per_req"] = r["proxy_sys_ticks"] / r["clk_tck"] * 1e6 / w["requests"]
        row["busy_pct"] = 100 * cpu_s / secs
        other = r["core0_ticks"] / r["clk_tck"] - cpu_s
        row["core0_other_pct"] = max(0.0, 100 * other / secs)
    rows.append(row)

# With --repeat, one row per case: the median of each figure over its runs, and the spread of CPU per request.
def median(values):
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2
runs = {}
for row in rows:
    runs.setdefault(row["case"], []).append(row)
rows = []
for case, group in runs.items():
    merged = dict(group[0])
    for key in ("requests", "rps", "p50_ms", "p99_ms", "cpu_us_per_req", "user_us_per_req", "sys_us_per_req",
                "busy_pct", "core0_other_pct"):
        merged[key] = median(r[key] for r in group)
    merged["errors"] = sum(r["errors"] for r in group)
    merged["runs"] = len(group)
    cpus = [r["cpu_us_per_req"] for r in group if r["cpu_us_per_req"] is not None]
    merged["cpu_range"] = [min(cpus), max(cpus)] if cpus else None
    rows.append(merged)

base = next((r for r in rows if r["case"] == "haproxy"), None)
def ratio(row, key):
    if base is None or row[key] is None or not base[key]:
        return None
    return row[key] / base[key]
for row in rows:
    row["vs_haproxy"] = {k: ratio(row, k) for k in ("rps", "p50_ms", "p99_ms", "cpu_us_per_req")}

def f(v, fmt):
    return "-" if v is None else format(v, fmt)

head = ["case", "req/s", "p50 ms", "p99 ms", "CPU us/req", "user+sys", "busy %", "core0 other %", "errors",
        "req/s /HA", "p50 /HA", "p99 /HA", "CPU /HA"]
table = [head]
for r in rows:
    v = r["vs_haproxy"]
    table.append([r["case"], f(r["rps"], ".0f"), f(r["p50_ms"], ".3f"), f(r["p99_ms"], ".3f"),
                  f(r["cpu_us_per_req"], ".2f"),
                  "-" if r["user_us_per_req"] is None else f"{r['user_us_per_req']:.1f}+{r['sys_us_per_req']:.1f}",
                  f(r["busy_pct"], ".0f"), f(r["core0_other_pct"], ".0f"),
                  str(r["errors"]),
                  f(v["rps"], ".2f"), f(v["p50_ms"], ".2f"), f(v["p99_ms"], ".2f"), f(v["cpu_us_per_req"], ".2f")])
widths = [max(len(row[i]) for row in table) for i in range(len(head))]
lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
         for row in table]

by = {r["case"]: r for r in rows}
extra = []
if any(r["runs"] > 1 for r in rows):
    extra.append("medians of %d interleaved rounds; CPU us/req range per case:" % max(r["runs"] for r in rows))
    for r in rows:
        if r["cpu_range"]:
            extra.append(f"  {r['case']}: {r['cpu_range'][0]:.2f}-{r['cpu_range'][1]:.2f}")
    extra.append("")
counted = [(r, c) for r, c in ((r, r.get("syscalls")) for r in rows) if c]
if counted:
    extra.append("system calls per request (--syscalls; by call, those above 0.05):")
    for r, c in counted:
        n = r["requests"]
        parts = sorted(((k, v / n) for k, v in c.items() if k != "total" and v / n >= 0.05), key=lambda kv: -kv[1])
        extra.append(f"  {r['case']}: {c.get('total', 0) / n:.2f} total; " + ", ".join(f"{k} {v:.2f}" for k, v in parts))
    extra.append("")
def paired(a, b):
    """CPU per request of case a over case b, round by round (the two ran minutes apart at most, so slow drifts
    of a shared machine cancel): the median and range of those ratios, or None without two or more rounds."""
    ra, rb = runs.get(a, []), runs.get(b, [])
    ratios = [x["cpu_us_per_req"] / y["cpu_us_per_req"] for x, y in zip(ra, rb)
              if x["cpu_us_per_req"] and y["cpu_us_per_req"]]
    if len(ratios) < 2 or len(ra) != len(rb):
        return None
    return median(ratios), min(ratios), max(ratios), len(ratios)
def cpu_ratio(a, b):
    """a's CPU per request over b's: the paired median with several rounds, else the ratio of the figures."""
    p = paired(a, b)
    if p:
        return p[0]
    if a in by and b in by and by[a]["cpu_us_per_req"] and by[b]["cpu_us_per_req"]:
        return by[a]["cpu_us_per_req"] / by[b]["cpu_us_per_req"]
    return None
def cpu_cmp(a, b, label):
    p = paired(a, b)
    r = p[0] if p else cpu_ratio(a, b)
    if r is None:
        return
    spread = f" (median of {p[3]} rounds' ratios, range {(p[1] - 1) * 100:+.1f}%..{(p[2] - 1) * 100:+.1f}%)" if p else ""
    extra.append(f"{label}: {(r - 1) * 100:+.1f}% CPU per request{spread}")
cpu_cmp("tokenroute-aware", "tokenroute-hdr", "token-aware vs plain, same OAuth requests")
cpu_cmp("tokenroute-aware", "tokenroute", "token-aware (OAuth requests) vs plain (bare requests)")
cpu_cmp("tokenroute-hdr", "tokenroute", "plain with OAuth header vs plain bare (header bytes alone)")
cpu_cmp("tokenroute-aware-redis", "tokenroute-aware", "Redis store vs memory store, token-aware")

# Issue 12's load targets: (label, case, key, baseline case, bound, lower_is_better).
targets = [
    ("CPU per request <= 0.9x HAProxy's", "tokenroute", "cpu_us_per_req", "haproxy", 0.9, True),
    ("requests/s >= 1.1x HAProxy's", "tokenroute", "rps", "haproxy", 1.1, False),
    ("p99 <= HAProxy's", "tokenroute", "p99_ms", "haproxy", 1.0, True),
    ("token-aware CPU per request <= 1.05x plain, same OAuth requests", "tokenroute-aware", "cpu_us_per_req",
     "tokenroute-hdr", 1.05, True),
]
# Issue 11's load target, and the p99 it asks to report.
if "tokenroute-aware-redis" in by and "tokenroute-aware" in by:
    a, b = by["tokenroute-aware-redis"], by["tokenroute-aware"]
    extra.append("")
    extra.append("target (issue 11):")
    if a["cpu_us_per_req"] and b["cpu_us_per_req"]:
        r = a["cpu_us_per_req"] / b["cpu_us_per_req"]
        extra.append(f"  Redis store CPU per request <= 1.10x the memory store's: {r:.2f}x  {'PASS' if r <= 1.10 else 'MISS'}")
    extra.append(f"  Redis store p99 / memory store p99: {a['p99_ms'] / b['p99_ms']:.2f}x (reported)")
extra.append("")
extra.append(f"targets (issue 12; {meta['connections']} connections, {meta.get('body_bytes', 13)}-byte answers):")
for label, case, key, base_case, bound, lower in targets:
    a, b = by.get(case, {}).get(key), by.get(base_case, {}).get(key)
    if not a or not b:
        extra.append(f"  {label}: not measured")
        continue
    # Two tokenroute cases: paired round by round (see `paired`); against HAProxy, the medians' ratio.
    r = cpu_ratio(case, base_case) if base_case.startswith("tokenroute") and key == "cpu_us_per_req" else a / b
    ok = r <= bound if lower else r >= bound
    extra.append(f"  {label}: {r:.2f}x  {'PASS' if ok else 'MISS'}")

if table_figures:
    extra.append("")
    extra.append("table targets (issue 12; criterion's estimate, table_memory's RSS growth):")
    for label, key, bound in [
        ("lookup hit at 1 M entries <= 100 ns", "table_1M/lookup_hit/table", 100),
        ("lookup miss at 1 M entries <= 100 ns", "table_1M/lookup_miss/table", 100),
        ("lookup hit at 10 M entries <= 100 ns", "table_10M/lookup_hit/table", 100),
        ("lookup miss at 10 M entries <= 100 ns", "table_10M/lookup_miss/table", 100),
        ("bytes per entry at 1 M <= 64", "bytes_per_entry/1000000", 64),
        ("bytes per entry at 10 M <= 64", "bytes_per_entry/10000000", 64),
    ]:
        v = table_figures.get(key)
        if v is None:
            extra.append(f"  {label}: not measured")
        else:
            extra.append(f"  {label}: {v:.1f}  {'PASS' if v <= bound else 'MISS'}")
    meta["table"] = table_figures
text = "\n".join(
    [f"proxy load bench {meta['stamp']} (commit {meta['commit']}, {meta['cores']} cores, load average "
     f"{open('/proc/loadavg').read().split()[0]} at the end): "
     f"wrk -t1 -c{meta['connections']} -d{meta['duration_s']}s keep-alive HTTP/1.1, {meta['origins']} origins",
     f"pinning: {meta['pinning']}",
     "ratios (/HA) are to HAProxy in this run; CPU is utime+stime of the proxy process per completed request",
     "busy %: the proxy's CPU time over wall time; core0 other %: core 0 busy time not charged to the proxy",
     "(softirq network work, or other processes on this shared machine: when high, distrust req/s)",
     ""] + lines + [""] + extra + meta["notes"]) + "\n"
print(text, end="")
open(out_base + ".txt", "w").write(text)
json.dump({"meta": meta, "cases": rows}, open(out_base + ".json", "w"), indent=2)
print(f"\nwritten: {out_base}.txt {out_base}.json")
PY
