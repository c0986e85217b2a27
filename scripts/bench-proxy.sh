#!/usr/bin/env bash
# Proxy overhead benchmark: wrk against a small nginx upstream (a) directly, (b) through
# paastis with the app awake, (c) through nginx as a keepalive reverse proxy, all on
# 127.0.0.1. Prints req/s, p50 and p99 for each, then paastis vs nginx. Then the same over
# HTTP/2: h2load, cleartext with prior knowledge (h2c), many streams per connection, against
# (d) paastis and (e) nginx as a reverse proxy listening with http2; both still forward to
# the upstream over HTTP/1.1 keepalive. Then HTTPS: wrk over TLS (HTTP/1.1 keep-alive, one
# handshake per connection) against (f) paastis's TLS listener and (g) nginx as a TLS reverse
# proxy, with the same self-signed P-256 certificate (made with openssl). See
# docs/src/benchmarks.md.
# Knobs (env): BENCH_DURATION (10s), BENCH_WARMUP (2s), BENCH_CONNECTIONS (32),
# BENCH_THREADS (2), BENCH_WORKERS (nproc), BENCH_VERBOSE (0), BENCH_BUILD (1: cargo build
# --release; pgo: the profile-guided build of scripts/pgo.sh, into target/pgo/paastis; 0:
# none, PAASTIS_BIN is used as it is),
# BENCH_ROUNDS (3: paastis and nginx-proxy measured in turn that many times, the order
# swapped each round; their medians are compared, so one noisy window does not decide);
# HTTP/2: BENCH_H2 (1; 0 skips it), BENCH_H2_CONNECTIONS (8), BENCH_H2_STREAMS (4, streams
# in flight per connection), BENCH_H2_THREADS (BENCH_THREADS, at most BENCH_H2_CONNECTIONS);
# HTTPS: BENCH_TLS (1; 0 skips it);
# BENCH_TRACES (0; 1: paastis traces every request to a local OTLP sink,
# scripts/bench/otlp_sink.py, to measure what traces cost).
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
H2=${BENCH_H2:-1}
TLS=${BENCH_TLS:-1}
ROUNDS=${BENCH_ROUNDS:-3}
H2_CONNECTIONS=${BENCH_H2_CONNECTIONS:-8}
H2_STREAMS=${BENCH_H2_STREAMS:-4}
H2_THREADS=${BENCH_H2_THREADS:-$((THREADS < H2_CONNECTIONS ? THREADS : H2_CONNECTIONS))}
if [[ $BUILD == pgo ]]; then
    PAASTIS_BIN=${PAASTIS_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/pgo/paastis}
else
    PAASTIS_BIN=${PAASTIS_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/paastis}
fi
HOST_HEADER="Host: up.localhost"

# shellcheck source=bench/common.sh
source "$TEMPLATES/common.sh"

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
[[ "$H2" =~ ^[01]$ ]] || die "BENCH_H2 must be 0 or 1"
[[ "$TLS" =~ ^[01]$ ]] || die "BENCH_TLS must be 0 or 1"
[[ "$BUILD" =~ ^(0|1|pgo)$ ]] || die "BENCH_BUILD must be 0, 1 or pgo"
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS must be a positive integer"
[[ "$H2_CONNECTIONS" =~ ^[1-9][0-9]*$ && "$H2_STREAMS" =~ ^[1-9][0-9]*$ && "$H2_THREADS" =~ ^[1-9][0-9]*$ ]] \
    || die "BENCH_H2_CONNECTIONS, BENCH_H2_STREAMS and BENCH_H2_THREADS must be positive integers"
((H2_THREADS <= H2_CONNECTIONS)) || die "BENCH_H2_THREADS must not exceed BENCH_H2_CONNECTIONS"

# --- tools -------------------------------------------------------------------------------
mapfile -t tools < <(proxy_bench_tools "$H2" "$TLS")
need "${tools[@]}"

if [[ $BUILD == 1 ]]; then
    log "building paastis (cargo build --release)"
    (cd "$ROOT" && timeout 1800 cargo build --release --quiet)
elif [[ $BUILD == pgo ]]; then
    log "building paastis (scripts/pgo.sh)"
    timeout 3600 "$ROOT/scripts/pgo.sh" "$PAASTIS_BIN"
fi
[[ -x $PAASTIS_BIN ]] || die "no paastis binary at $PAASTIS_BIN"

# --- processes and cleanup ---------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/paastis-bench.XXXXXX")
PIDS=()

cleanup() {
    local status=$? pid i
    otlp_report "$WORK"
    if [[ -n ${LOAD_PID:-} ]]; then kill -TERM "$LOAD_PID" 2>/dev/null || true; fi
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

NGINX=$(command -v nginx)
UPSTREAM_PORT=$(free_port)
PAASTIS_PORT=$(free_port)
PROXY_PORT=$(free_port)
PROXY_H2_PORT=$(free_port)
PAASTIS_TLS_PORT=$(free_port)
PROXY_TLS_PORT=$(free_port)

# nginx >= 1.25.1 enables HTTP/2 with `http2 on;` and deprecates `listen ... http2`, which
# older versions need. `reuseport` (one listening socket per worker, the kernel spreads
# connections over them): without it, the few long-lived HTTP/2 connections of a run often
# all land on one nginx worker, and the run measures that rather than the request path.
NGINX_VERSION=$("$NGINX" -v 2>&1 | sed -n 's|.*nginx/\([0-9][0-9.]*\).*|\1|p')
if [[ $(printf '%s\n' "$NGINX_VERSION" 1.25.1 | sort -V | head -n 1) == 1.25.1 ]]; then
    H2_LISTEN="listen 127.0.0.1:@PORT@ default_server reuseport; http2 on;"
else
    H2_LISTEN="listen 127.0.0.1:@PORT@ default_server reuseport http2;"
fi

# render TEMPLATE OUT DIR PORT
render() {
    local user_line=""
    if [[ $(id -u) -eq 0 ]]; then user_line="user root;"; fi   # else workers run as nobody
    sed -e "s|@USER_LINE@|$user_line|" \
        -e "s|@WORKERS@|$WORKERS|" \
        -e "s|@NGINX@|$NGINX|" \
        -e "s|@H2_LISTEN@|$H2_LISTEN|" \
        -e "s|@DIR@|$3|g" \
        -e "s|@UPSTREAM_DIR@|$WORK/upstream|g" \
        -e "s|@PORT@|$4|g" \
        -e "s|@UPSTREAM_PORT@|$UPSTREAM_PORT|g" \
        -e "s|@CERT@|$WORK/tls/cert.pem|g" \
        -e "s|@KEY@|$WORK/tls/key.pem|g" \
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


# The upstream is paastis's app: paastis starts it on the first request (it refuses an app
# port that another program already holds), and the direct and nginx-proxy runs reuse it.
nginx_conf upstream "$TEMPLATES/nginx-upstream.conf" "$UPSTREAM_PORT"
if [[ $TLS == 1 ]]; then
    # One certificate for both proxies: P-256, as most certificates served today.
    mkdir -p "$WORK/tls"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj /CN=up.localhost -addext subjectAltName=DNS:up.localhost \
        -keyout "$WORK/tls/key.pem" -out "$WORK/tls/cert.pem" 2>"$WORK/tls/openssl.log" \
        || { cat "$WORK/tls/openssl.log" >&2; die "openssl could not make the certificate"; }
fi
mkdir -p "$WORK/paastis"
otlp_sink "$WORK"
render "$TEMPLATES/paastis.yml" "$WORK/paastis/paastis.yml" "$WORK/paastis" "$PAASTIS_PORT"
if [[ $TLS == 1 ]]; then
    printf 'tls: {listen: "127.0.0.1:%s", cert: "%s", key: "%s"}\n' \
        "$PAASTIS_TLS_PORT" "$WORK/tls/cert.pem" "$WORK/tls/key.pem" >>"$WORK/paastis/paastis.yml"
fi
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

# speaks_h2 NAME URL: the server answers HTTP/2 with prior knowledge (h2c), not HTTP/1.1.
speaks_h2() {
    local version
    version=$(curl -s -o /dev/null -m 5 -w '%{http_version}' --http2-prior-knowledge \
        -H "$HOST_HEADER" "$2" || true)
    [[ $version == 2 ]] || die "$1 does not answer HTTP/2 with prior knowledge at $2 (got: '$version')"
}

if [[ $H2 == 1 ]]; then
    speaks_h2 paastis "http://127.0.0.1:$PAASTIS_PORT/"
    nginx_conf nginx-proxy-h2 "$TEMPLATES/nginx-proxy-h2.conf" "$PROXY_H2_PORT"
    "$NGINX" -p "$WORK/nginx-proxy-h2" -c "$WORK/nginx-proxy-h2/nginx.conf" \
        -e "$WORK/nginx-proxy-h2/error.log" >"$WORK/nginx-proxy-h2/stdout.log" 2>&1 &
    PROXY_H2_PID=$!
    PIDS+=("$PROXY_H2_PID")
    wait_ok nginx-proxy-h2 "http://127.0.0.1:$PROXY_H2_PORT/" "$PROXY_H2_PID" --http2-prior-knowledge
    speaks_h2 nginx-proxy-h2 "http://127.0.0.1:$PROXY_H2_PORT/"
fi

if [[ $TLS == 1 ]]; then
    wait_ok paastis "https://127.0.0.1:$PAASTIS_TLS_PORT/" "$PAASTIS_PID" --insecure
    nginx_conf nginx-proxy-tls "$TEMPLATES/nginx-proxy-tls.conf" "$PROXY_TLS_PORT"
    "$NGINX" -p "$WORK/nginx-proxy-tls" -c "$WORK/nginx-proxy-tls/nginx.conf" \
        -e "$WORK/nginx-proxy-tls/error.log" >"$WORK/nginx-proxy-tls/stdout.log" 2>&1 &
    PROXY_TLS_PID=$!
    PIDS+=("$PROXY_TLS_PID")
    wait_ok nginx-proxy-tls "https://127.0.0.1:$PROXY_TLS_PORT/" "$PROXY_TLS_PID" --insecure
fi

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

# CPU time (clock ticks) of each worker of a server, one "worker ticks" line each: paastis's
# proxy threads, or nginx's worker processes.
worker_ticks() {
    local task comm child
    for task in /proc/"$1"/task/*; do
        comm=$(cat "$task/comm" 2>/dev/null || true)
        [[ $comm == paastis-proxy-* ]] || continue
        awk -v n="$comm" '{ sub(/^.*\) /, ""); print n, $12 + $13 }' "$task/stat" 2>/dev/null || true
    done
    if [[ ! -d /proc/$1/task/$1 || $(cat "/proc/$1/comm") != paastis* ]]; then
        for child in $(ps -o pid= --ppid "$1"); do
            awk -v n="$child" '{ sub(/^.*\) /, ""); print n, $12 + $13 }' "/proc/$child/stat" 2>/dev/null || true
        done
    fi
}

# worker_split BEFORE AFTER: each worker's share of the CPU time used between two
# worker_ticks, largest first ("52/48"): connections dealt unevenly show here.
worker_split() {
    awk 'NR == FNR { before[$1] = $2; next }
        { d = $2 - before[$1]; used[++n] = d; total += d }
        END {
            if (total <= 0) { print "-"; exit }
            for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (used[j] > used[i]) { t = used[i]; used[i] = used[j]; used[j] = t }
            for (i = 1; i <= n; i++) out = out (i > 1 ? "/" : "") sprintf("%.0f", 100 * used[i] / total)
            print out
        }' <(printf '%s\n' "$1") <(printf '%s\n' "$2")
}

# bounded TOOL ARGS...: the load generator in the background and waited for, so that a
# signal to this script acts at once.
LOAD_PID=""
bounded() {
    timeout "$((DURATION_S + WARMUP_S + 60))" "$@" &
    LOAD_PID=$!
    wait "$LOAD_PID"
    LOAD_PID=""
}

declare -A RPS P50 P99 CPU SPLIT ISSUES
# bench NAME URL SERVER_PID: SERVER_PID is the server whose CPU time per request is reported.
bench() {
    local name=$1 url=$2 out="$WORK/wrk-$1.txt" before after workers_before
    log "$name: warm-up ${WARMUP_S}s, then ${DURATION_S}s with $CONNECTIONS connections"
    bounded wrk -t "$THREADS" -c "$CONNECTIONS" -d "${WARMUP_S}s" -H "$HOST_HEADER" "$url" >/dev/null
    before=$(cpu_ticks "$3")
    workers_before=$(worker_ticks "$3")
    bounded wrk -t "$THREADS" -c "$CONNECTIONS" -d "${DURATION_S}s" --latency \
        -H "$HOST_HEADER" "$url" >"$out"
    after=$(cpu_ticks "$3")
    SPLIT[$name]=$(worker_split "$workers_before" "$(worker_ticks "$3")")
    if [[ $VERBOSE == 1 ]]; then sed "s/^/  [$name] /" "$out" >&2; fi
    RPS[$name]=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    P50[$name]=$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")
    P99[$name]=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
    CPU[$name]=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" '/ requests in / {
        printf "%.1f", t / hz * 1e6 / $1 }' "$out")
    ISSUES[$name]=$(grep -E 'Socket errors|Non-2xx' "$out" | sed 's/^ *//' | paste -sd ';' - || true)
}

# bench_h2 NAME URL SERVER_PID: as bench, with h2load over h2c prior knowledge. h2load
# prints no percentiles: p50 and p99 come from its per-request log.
bench_h2() {
    local name=$1 url=$2 out="$WORK/h2load-$1.txt" requests="$WORK/h2load-$1.log" before after workers_before
    local args=(-t "$H2_THREADS" -c "$H2_CONNECTIONS" -m "$H2_STREAMS" -H ":authority: up.localhost")
    log "$name: warm-up ${WARMUP_S}s, then ${DURATION_S}s with $H2_CONNECTIONS connections x $H2_STREAMS streams (h2c)"
    bounded h2load "${args[@]}" -D "${WARMUP_S}s" "$url" >"$out" 2>&1 \
        || { cat "$out" >&2; die "$name: h2load failed"; }
    before=$(cpu_ticks "$3")
    workers_before=$(worker_ticks "$3")
    bounded h2load "${args[@]}" -D "${DURATION_S}s" --log-file "$requests" "$url" >"$out" 2>&1 \
        || { cat "$out" >&2; die "$name: h2load failed"; }
    after=$(cpu_ticks "$3")
    SPLIT[$name]=$(worker_split "$workers_before" "$(worker_ticks "$3")")
    if [[ $VERBOSE == 1 ]]; then grep -v '^progress:' "$out" | sed "s/^/  [$name] /" >&2; fi
    grep -q '^Application protocol: h2c$' "$out" || { cat "$out" >&2; die "$name: h2load did not speak h2c"; }
    # "finished in 10.00s, 51234.50 req/s, 2.91MB/s"
    RPS[$name]=$(awk '/^finished in / { sub(/,$/, "", $4); print $4 }' "$out")
    # Column 3 of the log: microseconds from a request's start to the end of its response.
    local p50 p99
    read -r p50 p99 < <(awk -F'\t' '$2 != -1 { print $3 }' "$requests" | sort -n \
        | awk '{ v[NR] = $1 } END {
            if (NR == 0) { print "nan nan"; exit }
            p50 = int(NR * 0.50); if (p50 < 1) p50 = 1
            p99 = int(NR * 0.99); if (p99 < 1) p99 = 1
            printf "%.3f %.3f\n", v[p50] / 1000, v[p99] / 1000 }')
    P50[$name]=$p50
    P99[$name]=$p99
    # "requests: 512345 total, 512345 started, 512345 done, 512345 succeeded, 0 failed, ..."
    CPU[$name]=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" '/^requests: / {
        printf "%.1f", t / hz * 1e6 / $6 }' "$out")
    ISSUES[$name]=$(awk '
        /^requests: / { for (i = 2; i < NF; i += 2) if ($(i + 1) ~ /^(failed|errored|timeout)/ && $i > 0) print $i, $(i + 1) }
        /^status codes: / { for (i = 3; i < NF; i += 2) if ($(i + 1) !~ /^2xx/ && $i > 0) print $i, $(i + 1) }' "$out" \
        | tr -d ',' | paste -sd ';' - || true)
}

# median VALUE...: the middle value (the mean of the two middle ones for an even count).
median() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

bench direct "http://127.0.0.1:$UPSTREAM_PORT/" "$UPSTREAM_PID"
# The two proxies in turn, ROUNDS times, the order swapped each round: each round's two runs
# are next to each other in time, and each proxy goes first as often as the other.
declare -A URL=([paastis]="http://127.0.0.1:$PAASTIS_PORT/" [nginx-proxy]="http://127.0.0.1:$PROXY_PORT/")
declare -A SERVER=([paastis]="$PAASTIS_PID" [nginx-proxy]="$PROXY_PID")
RUNS=()
for ((round = 1; round <= ROUNDS; round++)); do
    if ((round % 2)); then order=(paastis nginx-proxy); else order=(nginx-proxy paastis); fi
    for name in "${order[@]}"; do
        bench "$name #$round" "${URL[$name]}" "${SERVER[$name]}"
        RUNS+=("$name #$round")
    done
done
# Each proxy's figures: the medians of its rounds.
for name in paastis nginx-proxy; do
    for field in RPS P50 P99 CPU; do
        declare -n values=$field
        picked=()
        for ((round = 1; round <= ROUNDS; round++)); do picked+=("${values[$name #$round]}"); done
        values[$name]=$(median "${picked[@]}")
        unset -n values
    done
    SPLIT[$name]=$(for ((round = 1; round <= ROUNDS; round++)); do printf '%s ' "${SPLIT[$name #$round]}"; done)
done
RATIOS=$(for ((round = 1; round <= ROUNDS; round++)); do
    awk -v p="${RPS[paastis #$round]}" -v n="${RPS[nginx-proxy #$round]}" 'BEGIN { printf "%.3f ", p / n }'
done)
if [[ $TLS == 1 ]]; then
    bench paastis-tls "https://127.0.0.1:$PAASTIS_TLS_PORT/" "$PAASTIS_PID"
    bench nginx-proxy-tls "https://127.0.0.1:$PROXY_TLS_PORT/" "$PROXY_TLS_PID"
fi
if [[ $H2 == 1 ]]; then
    bench_h2 paastis-h2 "http://127.0.0.1:$PAASTIS_PORT/" "$PAASTIS_PID"
    bench_h2 nginx-proxy-h2 "http://127.0.0.1:$PROXY_H2_PORT/" "$PROXY_H2_PID"
fi

# --- report ------------------------------------------------------------------------------
# warnings NAME...: wrk/h2load issues, and a worker split far from even (a worker with more
# than 1.3 times its fair share of the CPU time).
warnings() {
    local name top
    for name in "$@"; do
        if [[ -n ${ISSUES[$name]} ]]; then echo "WARNING $name: ${ISSUES[$name]}"; fi
        top=${SPLIT[$name]%%/*}
        if [[ $WORKERS -gt 1 && $top =~ ^[0-9]+$ ]] && ((top * WORKERS * 10 > 1300)); then
            echo "WARNING $name: its workers' CPU split is ${SPLIT[$name]}: connections landed unevenly on them"
        fi
    done
}

echo
echo "paastis proxy benchmark: $(nproc) CPUs ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo))"
echo "wrk -t $THREADS -c $CONNECTIONS -d ${DURATION_S}s (after ${WARMUP_S}s warm-up); paastis proxy workers = nginx workers = $WORKERS"
echo
printf '%-19s %12s %10s %10s %14s  %s\n' target 'req/s' 'p50 ms' 'p99 ms' 'server CPU/req' 'worker CPU split %'
for name in direct "${RUNS[@]}" paastis nginx-proxy; do
    label=$name
    if [[ $name == paastis || $name == nginx-proxy ]]; then label="$name median"; fi
    printf '%-19s %12.0f %10.3f %10.3f %11s us  %s\n' "$label" "${RPS[$name]}" "${P50[$name]}" "${P99[$name]}" "${CPU[$name]}" "${SPLIT[$name]}"
done
echo "(server CPU/req: CPU time of the server under test alone, i.e. the upstream for direct"
echo " and the proxy without its upstream otherwise, divided by the requests served;"
echo " worker CPU split: each worker's share of that time, largest first;"
echo " #N: round N of $ROUNDS, the two proxies measured in turn; median: of the rounds)"
echo
warnings direct "${RUNS[@]}"

awk -v pr="${RPS[paastis]}" -v nr="${RPS[nginx-proxy]}" -v rounds="$RATIOS" \
    -v pc="${CPU[paastis]}" -v nc="${CPU[nginx-proxy]}" \
    -v d99="${P99[direct]}" -v p99="${P99[paastis]}" -v n99="${P99[nginx-proxy]}" \
    -v d50="${P50[direct]}" -v p50="${P50[paastis]}" -v n50="${P50[nginx-proxy]}" 'BEGIN {
    ratio = pr / nr
    printf "paastis req/s / nginx-proxy req/s (medians): %.3f  (target >= 1.0: %s)\n", ratio, (ratio >= 1.0) ? "met" : "NOT met"
    sub(/ +$/, "", rounds)
    n = split(rounds, each, " ")
    reached = 0
    for (i = 1; i <= n; i++) if (each[i] + 0 >= 1.0) reached++
    printf "the same, round by round: %s (%d of %d rounds >= 1.0)\n", rounds, reached, n
    if (nc > 0) {
        printf "proxy CPU per request (medians): paastis %.1f us, nginx-proxy %.1f us, ratio %.3f  (target <= 1.0: %s)\n",
            pc, nc, pc / nc, (pc <= nc) ? "met" : "NOT met"
    }
    printf "added p50 vs direct: paastis %+.3f ms, nginx-proxy %+.3f ms\n", p50 - d50, n50 - d50
    printf "added p99 vs direct: paastis %+.3f ms (target < 1 ms: %s), nginx-proxy %+.3f ms\n",
        p99 - d99, ((p99 - d99) < 1) ? "met" : "NOT met", n99 - d99
}'

# table NAME...: the figures of single runs (HTTP/2, HTTPS), one line each.
table() {
    local name
    printf '%-15s %12s %10s %10s %14s  %s\n' target 'req/s' 'p50 ms' 'p99 ms' 'server CPU/req' 'worker CPU split %'
    for name in "$@"; do
        printf '%-15s %12.0f %10.3f %10.3f %11s us  %s\n' "$name" "${RPS[$name]}" "${P50[$name]}" "${P99[$name]}" "${CPU[$name]}" "${SPLIT[$name]}"
    done
}

# compare A B: A's req/s over B's, CPU per request, and latencies.
compare() {
    awk -v a="$1" -v b="$2" -v pr="${RPS[$1]}" -v nr="${RPS[$2]}" \
        -v pc="${CPU[$1]}" -v nc="${CPU[$2]}" \
        -v p50="${P50[$1]}" -v n50="${P50[$2]}" -v p99="${P99[$1]}" -v n99="${P99[$2]}" 'BEGIN {
        printf "%s req/s / %s req/s: %.3f\n", a, b, pr / nr
        if (nc > 0) printf "proxy CPU per request: %s %.1f us, %s %.1f us, ratio %.3f\n", a, pc, b, nc, pc / nc
        printf "p50 %s - %s: %+.3f ms; p99: %+.3f ms\n", a, b, p50 - n50, p99 - n99
    }'
}

if [[ $H2 == 1 ]]; then
    echo
    echo "HTTP/2 (h2c, prior knowledge): h2load -t $H2_THREADS -c $H2_CONNECTIONS -m $H2_STREAMS -D ${DURATION_S}s (after ${WARMUP_S}s warm-up);"
    echo "both proxies forward to the same upstream over HTTP/1.1 keepalive"
    echo
    table paastis-h2 nginx-proxy-h2
    echo "(p50, p99: from h2load's per-request log, start of the request to the end of its response)"
    echo
    warnings paastis-h2 nginx-proxy-h2
    compare paastis-h2 nginx-proxy-h2
fi

if [[ $TLS == 1 ]]; then
    echo
    echo "HTTPS (TLS, HTTP/1.1 keep-alive): wrk -t $THREADS -c $CONNECTIONS -d ${DURATION_S}s (after ${WARMUP_S}s warm-up),"
    echo "one handshake per connection; the same certificate (P-256) for both proxies"
    echo
    table paastis-tls nginx-proxy-tls
    echo
    warnings paastis-tls nginx-proxy-tls
    compare paastis-tls nginx-proxy-tls
fi
