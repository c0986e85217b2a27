#!/usr/bin/env bash
# Proxy overhead benchmark: wrk against a small nginx upstream (a) directly, (b) through
# paastis with the app awake, (c) through nginx as a keepalive reverse proxy, all on
# 127.0.0.1. Prints req/s, p50 and p99 for each, then paastis vs nginx. See
# docs/benchmarks.md. Knobs (env): BENCH_DURATION (10s), BENCH_WARMUP (2s),
# BENCH_CONNECTIONS (32), BENCH_THREADS (2), BENCH_WORKERS (nproc), BENCH_BUILD (1),
# BENCH_VERBOSE (0).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TEMPLATES="$ROOT/scripts/bench"
PATH="$PATH:/usr/sbin:/sbin"

DURATION=${BENCH_DURATION:-10s}
WARMUP=${BENCH_WARMUP:-2s}
CONNECTIONS=${BENCH_CONNECTIONS:-32}
THREADS=${BENCH_THREADS:-2}
WORKERS=${BENCH_WORKERS:-$(nproc)}
BUILD=${BENCH_BUILD:-1}
VERBOSE=${BENCH_VERBOSE:-0}
PAASTIS_BIN=${PAASTIS_BIN:-$ROOT/target/release/paastis}
HOST_HEADER="Host: up.localhost"

log() { printf '%s\n' "bench: $*" >&2; }
die() { log "$*"; exit 1; }

# Seconds in a wrk-style duration (10, 10s, 2m).
seconds() {
    case "$1" in
        *s) echo "${1%s}" ;;
        *m) echo $((${1%m} * 60)) ;;
        *h) echo $((${1%h} * 3600)) ;;
        *) echo "$1" ;;
    esac
}
DURATION_S=$(seconds "$DURATION")
WARMUP_S=$(seconds "$WARMUP")
[[ "$DURATION_S" =~ ^[0-9]+$ && "$WARMUP_S" =~ ^[0-9]+$ ]] \
    || die "BENCH_DURATION and BENCH_WARMUP must be whole seconds (e.g. 10s)"

# --- tools -------------------------------------------------------------------------------
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || missing+=(nginx)
command -v curl >/dev/null || missing+=(curl)
command -v python3 >/dev/null || missing+=(python3)
if ((${#missing[@]})); then
    [[ $(id -u) -eq 0 ]] || die "missing ${missing[*]}; install them (Debian: apt-get install wrk nginx-light curl python3)"
    log "installing ${missing[*]}"
    apt-get update -qq
    packages=()
    for tool in "${missing[@]}"; do
        if [[ $tool == nginx ]]; then
            if apt-cache show nginx-light >/dev/null 2>&1; then packages+=(nginx-light); else packages+=(nginx); fi
        else
            packages+=("$tool")
        fi
    done
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
fi

if [[ $BUILD == 1 ]]; then
    log "building paastis (cargo build --release)"
    (cd "$ROOT" && timeout 1800 cargo build --release --quiet)
fi
[[ -x $PAASTIS_BIN ]] || die "no paastis binary at $PAASTIS_BIN"

# --- processes and cleanup ---------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/paastis-bench.XXXXXX")
PIDS=()

cleanup() {
    local status=$? pid i
    if [[ -n ${WRK_PID:-} ]]; then kill -TERM "$WRK_PID" 2>/dev/null || true; fi
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        pid=${PIDS[i]}
        kill -TERM "$pid" 2>/dev/null || continue
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    # paastis stops its app (the upstream nginx) on SIGTERM; if it did not, stop it here.
    if [[ -f $WORK/upstream/nginx.pid ]]; then
        pid=$(cat "$WORK/upstream/nginx.pid")
        if [[ $pid =~ ^[0-9]+$ ]] && grep -qF "$WORK/upstream" "/proc/$pid/cmdline" 2>/dev/null; then
            log "upstream nginx still running after paastis stopped; stopping it"
            # shellcheck disable=SC2046 # one pid a word
            kill -KILL "$pid" $(ps -o pid= --ppid "$pid") 2>/dev/null || true
        fi
    fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

NGINX=$(command -v nginx)
UPSTREAM_PORT=$(free_port)
PAASTIS_PORT=$(free_port)
PROXY_PORT=$(free_port)

# render TEMPLATE OUT DIR PORT
render() {
    local user_line=""
    if [[ $(id -u) -eq 0 ]]; then user_line="user root;"; fi   # else workers run as nobody
    sed -e "s|@USER_LINE@|$user_line|" \
        -e "s|@WORKERS@|$WORKERS|" \
        -e "s|@NGINX@|$NGINX|" \
        -e "s|@DIR@|$3|g" \
        -e "s|@UPSTREAM_DIR@|$WORK/upstream|g" \
        -e "s|@PORT@|$4|g" \
        -e "s|@UPSTREAM_PORT@|$UPSTREAM_PORT|g" \
        "$1" >"$2"
}

# nginx_conf NAME TEMPLATE PORT: writes $WORK/NAME/nginx.conf and checks it.
nginx_conf() {
    local dir="$WORK/$1"
    mkdir -p "$dir"
    render "$2" "$dir/nginx.conf" "$dir" "$3"
    "$NGINX" -t -q -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" \
        || die "$1: invalid nginx config"
}

# wait_ok NAME URL PID: until URL answers 200 (at most 60 s).
wait_ok() {
    local code=""
    for _ in $(seq 600); do
        kill -0 "$3" 2>/dev/null || { tail -n 20 "$WORK/$1"/*.log >&2 || true; die "$1 exited"; }
        code=$(curl -s -o /dev/null -m 5 -w '%{http_code}' -H "$HOST_HEADER" "$2" || true)
        [[ $code == 200 ]] && return 0
        sleep 0.1
    done
    tail -n 20 "$WORK/$1"/*.log >&2 || true
    die "$1 did not answer 200 at $2 (last: $code)"
}

# The upstream is paastis's app: paastis starts it on the first request (it refuses an app
# port that another program already holds), and the direct and nginx-proxy runs reuse it.
nginx_conf upstream "$TEMPLATES/nginx-upstream.conf" "$UPSTREAM_PORT"
mkdir -p "$WORK/paastis"
render "$TEMPLATES/paastis.yml" "$WORK/paastis/paastis.yml" "$WORK/paastis" "$PAASTIS_PORT"
LOG_LEVEL=warn LOG_FORMAT=text \
    "$PAASTIS_BIN" --config "$WORK/paastis/paastis.yml" >"$WORK/paastis/paastis.log" 2>&1 &
PAASTIS_PID=$!
PIDS+=("$PAASTIS_PID")
wait_ok paastis "http://127.0.0.1:$PAASTIS_PORT/" "$PAASTIS_PID"   # wakes `up`
UPSTREAM_PID=$(cat "$WORK/upstream/nginx.pid")
wait_ok upstream "http://127.0.0.1:$UPSTREAM_PORT/" "$UPSTREAM_PID"

nginx_conf nginx-proxy "$TEMPLATES/nginx-proxy.conf" "$PROXY_PORT"
"$NGINX" -p "$WORK/nginx-proxy" -c "$WORK/nginx-proxy/nginx.conf" -e "$WORK/nginx-proxy/error.log" \
    >"$WORK/nginx-proxy/stdout.log" 2>&1 &
PROXY_PID=$!
PIDS+=("$PROXY_PID")
wait_ok nginx-proxy "http://127.0.0.1:$PROXY_PORT/" "$PROXY_PID"

# --- runs --------------------------------------------------------------------------------
# wrk latency value (e.g. 812.00us, 1.20ms, 1.01s) in milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
        printf "%.3f", n }'
}

# CPU time (clock ticks) used so far by a server: the process and its children (nginx workers).
cpu_ticks() {
    local pids
    pids=$(ps -o pid= --ppid "$1" | tr -d ' ' | paste -sd ' ' -)
    # shellcheck disable=SC2086
    for pid in "$1" $pids; do cat "/proc/$pid/stat" 2>/dev/null || true; done \
        | awk '{ sub(/^.*\) /, ""); t += $12 + $13 } END { print t + 0 }'
}
CLK_TCK=$(getconf CLK_TCK)

# wrk ARGS...: in the background and waited for, so that a signal to this script acts at once.
WRK_PID=""
wrk_bounded() {
    timeout "$((DURATION_S + WARMUP_S + 60))" wrk "$@" &
    WRK_PID=$!
    wait "$WRK_PID"
    WRK_PID=""
}

declare -A RPS P50 P99 CPU ISSUES
# bench NAME URL SERVER_PID: SERVER_PID is the server whose CPU time per request is reported.
bench() {
    local name=$1 url=$2 out="$WORK/wrk-$1.txt" before after
    log "$name: warm-up ${WARMUP_S}s, then ${DURATION_S}s with $CONNECTIONS connections"
    wrk_bounded -t "$THREADS" -c "$CONNECTIONS" -d "${WARMUP_S}s" -H "$HOST_HEADER" "$url" >/dev/null
    before=$(cpu_ticks "$3")
    wrk_bounded -t "$THREADS" -c "$CONNECTIONS" -d "${DURATION_S}s" --latency \
        -H "$HOST_HEADER" "$url" >"$out"
    after=$(cpu_ticks "$3")
    if [[ $VERBOSE == 1 ]]; then sed "s/^/  [$name] /" "$out" >&2; fi
    RPS[$name]=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    P50[$name]=$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")
    P99[$name]=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
    CPU[$name]=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" '/ requests in / {
        printf "%.1f", t / hz * 1e6 / $1 }' "$out")
    ISSUES[$name]=$(grep -E 'Socket errors|Non-2xx' "$out" | sed 's/^ *//' | paste -sd ';' - || true)
}

bench direct "http://127.0.0.1:$UPSTREAM_PORT/" "$UPSTREAM_PID"
bench paastis "http://127.0.0.1:$PAASTIS_PORT/" "$PAASTIS_PID"
bench nginx-proxy "http://127.0.0.1:$PROXY_PORT/" "$PROXY_PID"

# --- report ------------------------------------------------------------------------------
echo
echo "paastis proxy benchmark: $(nproc) CPUs ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo))"
echo "wrk -t $THREADS -c $CONNECTIONS -d ${DURATION_S}s (after ${WARMUP_S}s warm-up); paastis proxy workers = nginx workers = $WORKERS"
echo
printf '%-12s %12s %10s %10s %14s\n' target 'req/s' 'p50 ms' 'p99 ms' 'server CPU/req'
for name in direct paastis nginx-proxy; do
    printf '%-12s %12.0f %10.3f %10.3f %11s us\n' "$name" "${RPS[$name]}" "${P50[$name]}" "${P99[$name]}" "${CPU[$name]}"
done
echo "(server CPU/req: CPU time of the server under test alone, i.e. the upstream for direct"
echo " and the proxy without its upstream otherwise, divided by the requests served)"
echo
for name in direct paastis nginx-proxy; do
    if [[ -n ${ISSUES[$name]} ]]; then echo "WARNING $name: ${ISSUES[$name]}"; fi
done

awk -v pr="${RPS[paastis]}" -v nr="${RPS[nginx-proxy]}" \
    -v d99="${P99[direct]}" -v p99="${P99[paastis]}" -v n99="${P99[nginx-proxy]}" \
    -v d50="${P50[direct]}" -v p50="${P50[paastis]}" -v n50="${P50[nginx-proxy]}" 'BEGIN {
    ratio = pr / nr
    printf "paastis req/s / nginx-proxy req/s: %.3f  (target >= 0.9: %s)\n", ratio, (ratio >= 0.9) ? "met" : "NOT met"
    printf "added p50 vs direct: paastis %+.3f ms, nginx-proxy %+.3f ms\n", p50 - d50, n50 - d50
    printf "added p99 vs direct: paastis %+.3f ms (target < 1 ms: %s), nginx-proxy %+.3f ms\n",
        p99 - d99, ((p99 - d99) < 1) ? "met" : "NOT met", n99 - d99
}'
