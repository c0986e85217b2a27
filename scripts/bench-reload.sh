#!/usr/bin/env bash
# What configuration reloads cost: (1) how long `POST /api/v1/config/reload` takes with
# 10, 100 and 1000 managed `process` apps (their rules changed at each reload), and (2) the
# proxy's throughput to an awake app (a small nginx upstream) with no reload, then while the
# configuration is reloaded ten times a second, each BENCH_RUNS times in turn (so noise hits
# both alike). Prints the reload times, req/s per run, the medians and their ratio, and
# whether any request failed. See docs/src/benchmarks.md.
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
TOKEN=bench-reload-token-0001

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

WORK=$(mktemp -d "${TMPDIR:-/tmp}/paastis-bench-reload.XXXXXX")
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
ADMIN_PORT=$(free_port)

# render TEMPLATE OUT DIR PORT: as common.sh's, with BENCH_WORKERS workers and this
# script's ports.
render() {
    local user_line=""
    if [[ $(id -u) -eq 0 ]]; then user_line="user root;"; fi
    sed -e "s|@USER_LINE@|$user_line|" -e "s|@WORKERS@|$WORKERS|" -e "s|@NGINX@|$NGINX|" \
        -e "s|@DIR@|$3|g" -e "s|@UPSTREAM_DIR@|$WORK/upstream|g" -e "s|@PORT@|$4|g" \
        -e "s|@UPSTREAM_PORT@|$UPSTREAM_PORT|g" "$1" >"$2"
}

# The configuration: the benchmark's upstream as app `up`, then EXTRA apps that never run
# (`sleep` commands, asleep), and a rule whose max_idle is MINUTES.
write_config() {
    local extra=$1 minutes=$2 file="$WORK/paastis/paastis.yml" n
    render "$TEMPLATES/paastis.yml" "$file.tmp" "$WORK/paastis" "$PAASTIS_PORT"
    for ((n = 0; n < extra; n++)); do
        printf "      - {name: app%d, command: 'exec sleep 3600', port: %d}\n" "$n" $((20000 + n)) >>"$file.tmp"
    done
    cat >>"$file.tmp" <<YAML
admin: {listen: 127.0.0.1:$ADMIN_PORT, token: $TOKEN}
reload: {watch: false}
database: {url: "sqlite::memory:"}
rules: [{pattern: 'app.*', max_idle: ${minutes}m}]
YAML
    mv "$file.tmp" "$file"
}

reload() {
    curl -s -o /dev/null -w '%{http_code} %{time_total}' -X POST \
        -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$ADMIN_PORT/api/v1/config/reload"
}

mkdir -p "$WORK/upstream" "$WORK/paastis"
render "$TEMPLATES/nginx-upstream.conf" "$WORK/upstream/nginx.conf" "$WORK/upstream" "$UPSTREAM_PORT"

# (1) How long a reload takes, by number of apps.
for apps in 10 100 1000; do
    write_config "$apps" 10
    LOG_LEVEL=warn "$PAASTIS_BIN" --config "$WORK/paastis/paastis.yml" >"$WORK/paastis/paastis-$apps.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait_ok paastis "http://127.0.0.1:$PAASTIS_PORT/" "$pid"
    times=()
    for n in $(seq 10); do
        write_config "$apps" $((10 + n))
        read -r code seconds <<<"$(reload)"
        [[ $code == 200 ]] || die "reload with $apps apps answered $code"
        times+=("$seconds")
    done
    printf 'reload with %5d apps: median %s ms (10 reloads)\n' "$((apps + 1))" \
        "$(printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {printf "%.1f", a[int((NR+1)/2)] * 1000}')"
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null || true
    unset 'PIDS[-1]'
done

# (2) Throughput with and without reloads, 100 apps managed.
write_config 100 10
LOG_LEVEL=warn "$PAASTIS_BIN" --config "$WORK/paastis/paastis.yml" >"$WORK/paastis/paastis.log" 2>&1 &
PIDS+=("$!")
wait_ok paastis "http://127.0.0.1:$PAASTIS_PORT/" "${PIDS[-1]}"

# run NAME: one wrk run; prints "req/s p99".
run() {
    local out rps p99
    out=$(wrk -t "$THREADS" -c "$CONNECTIONS" -d "$DURATION" --latency -H "Host: up.localhost" \
        "http://127.0.0.1:$PAASTIS_PORT/")
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    grep -q "Non-2xx\|Socket errors" <<<"$out" && die "$1: failed requests during the run:
$out"
    printf '%s %s\n' "$rps" "$p99"
}
reloading() {
    local minutes=20
    while true; do
        minutes=$((minutes + 1))
        write_config 100 "$minutes"
        reload >/dev/null
        sleep 0.1
    done
}
declare -A RESULTS
for round in $(seq "$RUNS"); do
    result=$(run steady)
    RESULTS[steady]+="${result%% *} "
    printf 'run %d  %-22s %10s req/s  p99 %s\n' "$round" "no reload" ${result}
    reloading &
    reloader=$!
    result=$(run reloading)
    kill "$reloader"
    wait "$reloader" 2>/dev/null || true
    RESULTS[reloading]+="${result%% *} "
    printf 'run %d  %-22s %10s req/s  p99 %s\n' "$round" "10 reloads a second" ${result}
done
median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
S=$(median "${RESULTS[steady]}")
R=$(median "${RESULTS[reloading]}")
printf '\nmedians: no reload %s, 10 reloads a second %s req/s\n' "$S" "$R"
awk -v s="$S" -v r="$R" 'BEGIN { printf "reloading / no reload: %.2f\n", r / s }'
