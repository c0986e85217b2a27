#!/usr/bin/env bash
# What asking paastis before every request costs nginx: wrk against (a) nginx as a keepalive
# reverse proxy of a small nginx upstream, (b) the same nginx with `auth_request` to
# paastis' /forward-auth/nginx (the app awake), and (c) paastis as the proxy itself, all on
# 127.0.0.1, each BENCH_RUNS times in turn (so noise hits all alike). Prints req/s and p99
# per run, then the medians and (b)/(a). See docs/src/benchmarks.md.
# Knobs (env): BENCH_DURATION (10s), BENCH_CONNECTIONS (32), BENCH_THREADS (2),
# BENCH_WORKERS (nproc), BENCH_RUNS (3), BENCH_BUILD (1).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TEMPLATES="$ROOT/scripts/bench"
PATH="$PATH:/usr/sbin:/sbin"
DURATION=${BENCH_DURATION:-10s}
CONNECTIONS=${BENCH_CONNECTIONS:-32}
THREADS=${BENCH_THREADS:-2}
WORKERS=${BENCH_WORKERS:-$(nproc)}
RUNS=${BENCH_RUNS:-3}
BUILD=${BENCH_BUILD:-1}
PAASTIS_BIN=${PAASTIS_BIN:-$ROOT/target/release/paastis}

# shellcheck source=bench/common.sh
source "$TEMPLATES/common.sh"

for tool in wrk nginx curl python3; do
    command -v "$tool" >/dev/null || die "missing $tool (Debian: apt-get install wrk nginx curl python3)"
done
if [[ $BUILD == 1 ]]; then
    log "building paastis (cargo build --release)"
    (cd "$ROOT" && timeout 1800 cargo build --release --quiet)
fi
[[ -x $PAASTIS_BIN ]] || die "no paastis binary at $PAASTIS_BIN"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/paastis-bench-fa.XXXXXX")
PIDS=()
cleanup() {
    local status=$? pid i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        pid=${PIDS[i]}
        kill -TERM "$pid" 2>/dev/null || continue
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

NGINX=$(command -v nginx)
UPSTREAM_PORT=$(free_port)
PAASTIS_PORT=$(free_port)
GATE_PORT=$(free_port)
PROXY_PORT=$(free_port)
AUTH_PORT=$(free_port)

# render TEMPLATE OUT DIR PORT: as common.sh's, with BENCH_WORKERS workers and this
# script's ports.
render() {
    local user_line=""
    if [[ $(id -u) -eq 0 ]]; then user_line="user root;"; fi
    sed -e "s|@USER_LINE@|$user_line|" -e "s|@WORKERS@|$WORKERS|" -e "s|@NGINX@|$NGINX|" \
        -e "s|@DIR@|$3|g" -e "s|@UPSTREAM_DIR@|$WORK/upstream|g" -e "s|@PORT@|$4|g" \
        -e "s|@UPSTREAM_PORT@|$UPSTREAM_PORT|g" -e "s|@GATE_PORT@|$GATE_PORT|g" "$1" >"$2"
}
start_nginx() {
    local dir="$WORK/$1"
    mkdir -p "$dir"
    render "$2" "$dir/nginx.conf" "$dir" "$3"
    "$NGINX" -t -q -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" || die "$1: invalid nginx config"
    "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" >"$dir/stdout.log" 2>&1 &
    PIDS+=("$!")
}

# paastis runs the upstream as its app `up`, with the gate on its own listener.
mkdir -p "$WORK/upstream" "$WORK/paastis"
render "$TEMPLATES/nginx-upstream.conf" "$WORK/upstream/nginx.conf" "$WORK/upstream" "$UPSTREAM_PORT"
render "$TEMPLATES/paastis.yml" "$WORK/paastis/paastis.yml" "$WORK/paastis" "$PAASTIS_PORT"
cat >>"$WORK/paastis/paastis.yml" <<YAML
admin: {listen: off}
proxy: {workers: $WORKERS, trusted_proxies: [127.0.0.1/32]}
gate: {listen: 127.0.0.1:$GATE_PORT, forward_auth: true}
database: {url: "sqlite::memory:"}
YAML
sed -i "s|^proxy: {workers: $WORKERS}$||" "$WORK/paastis/paastis.yml"
LOG_LEVEL=warn "$PAASTIS_BIN" --config "$WORK/paastis/paastis.yml" >"$WORK/paastis/paastis.log" 2>&1 &
PIDS+=("$!")
wait_ok paastis "http://127.0.0.1:$PAASTIS_PORT/" "${PIDS[-1]}"
start_nginx nginx-proxy "$TEMPLATES/nginx-proxy.conf" "$PROXY_PORT"
start_nginx nginx-auth "$TEMPLATES/nginx-forward-auth.conf" "$AUTH_PORT"
wait_ok nginx-proxy "http://127.0.0.1:$PROXY_PORT/" "${PIDS[-2]}"
wait_ok nginx-auth "http://127.0.0.1:$AUTH_PORT/" "${PIDS[-1]}"

# run NAME PORT: one wrk run; prints "req/s p99(ms)".
run() {
    local out rps p99
    out=$(wrk -t "$THREADS" -c "$CONNECTIONS" -d "$DURATION" --latency -H "Host: up.localhost" \
        "http://127.0.0.1:$2/")
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    grep -q "Non-2xx" <<<"$out" && die "$1: non-2xx answers during the run"
    printf '%s %s\n' "$rps" "$p99"
}
declare -A RESULTS
for round in $(seq "$RUNS"); do
    for target in nginx:$PROXY_PORT nginx+forward-auth:$AUTH_PORT paastis:$PAASTIS_PORT; do
        name=${target%%:*}
        result=$(run "$name" "${target##*:}")
        RESULTS[$name]+="${result%% *} "
        printf 'run %d  %-20s %10s req/s  p99 %s\n' "$round" "$name" ${result}
    done
done
median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
N=$(median "${RESULTS[nginx]}")
A=$(median "${RESULTS[nginx+forward-auth]}")
P=$(median "${RESULTS[paastis]}")
printf '\nmedians: nginx %s, nginx+forward-auth %s, paastis %s req/s\n' "$N" "$A" "$P"
awk -v n="$N" -v a="$A" -v p="$P" 'BEGIN {
    printf "nginx+forward-auth / nginx: %.2f\npaastis / nginx+forward-auth: %.2f\n", a / n, p / a }'
