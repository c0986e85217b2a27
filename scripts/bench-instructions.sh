#!/usr/bin/env bash
# Instructions per proxied request, counted by callgrind: repeatable whatever else the machine
# is doing, so two builds can be compared where req/s runs are too noisy (docs/src/benchmarks.md).
#
#   scripts/bench-instructions.sh BINARY [BINARY...]
#
# For each binary: paastis runs under `valgrind --tool=callgrind` with one `process` app (nginx,
# the proxy benchmark's upstream, keep-alive), is woken, then serves SMALL and then LARGE
# keep-alive requests from one curl connection in two separate runs; the difference of the
# two runs' instruction totals divided by LARGE - SMALL is what one request costs (start-up,
# the wake and shutdown cancel out). Two counts: the whole process, and the proxy worker
# threads alone (`paastis-proxy-*`: the request path, without the background tasks, whose
# timers tick with the wall-clock time a run takes under valgrind rather than with the
# requests). Knobs (env): BENCH_SMALL (100), BENCH_LARGE (1100), BENCH_WORKERS (1),
# BENCH_KEEP (a directory: the callgrind outputs are kept there, one file per thread, as
# <binary name>.<requests>.out-NN, for `callgrind_annotate`), BENCH_TRACES (0; 1: traces on,
# every request sampled and sent to a local OTLP sink, scripts/bench/otlp_sink.py).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TEMPLATES="$ROOT/scripts/bench"
PATH="$PATH:/usr/sbin:/sbin"
SMALL=${BENCH_SMALL:-100}
LARGE=${BENCH_LARGE:-1100}
WORKERS=${BENCH_WORKERS:-1}

# shellcheck source=bench/common.sh
source "$TEMPLATES/common.sh"

(($#)) || die "usage: $0 BINARY [BINARY...]"
[[ "$SMALL" =~ ^[0-9]+$ && "$LARGE" =~ ^[0-9]+$ ]] && ((LARGE > SMALL)) \
    || die "BENCH_SMALL and BENCH_LARGE must be whole numbers, LARGE > SMALL"
need valgrind=valgrind nginx=nginx-light curl=curl
NGINX=$(command -v nginx)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/paastis-instructions.XXXXXX")
PID=""
cleanup() {
    local status=$?
    otlp_report "$WORK"
    if [[ -n $PID ]]; then kill -TERM "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
    if [[ -f $WORK/upstream/nginx.pid ]]; then kill -KILL "$(cat "$WORK/upstream/nginx.pid")" 2>/dev/null || true; fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# render TEMPLATE OUT DIR PORT UPSTREAM_PORT
render() {
    local user_line=""
    if [[ $(id -u) -eq 0 ]]; then user_line="user root;"; fi
    sed -e "s|@USER_LINE@|$user_line|" -e "s|@WORKERS@|$WORKERS|" -e "s|@NGINX@|$NGINX|" \
        -e "s|@UPSTREAM_DIR@|$WORK/upstream|g" -e "s|@UPSTREAM_PORT@|$5|g" \
        -e "s|@DIR@|$3|g" -e "s|@PORT@|$4|g" "$1" >"$2"
}

# total FILE: the instructions one callgrind output counted.
total() {
    sed -n 's/^summary: \([0-9]*\)$/\1/p; s/^totals: \([0-9]*\)$/\1/p' "$1" | head -n 1
}

# one_run BINARY REQUESTS: prints the instructions callgrind collected, in the whole process
# and in the proxy worker threads.
one_run() {
    local binary=$1 requests=$2 port upstream_port out code=""
    port=$(free_port)
    upstream_port=$(free_port)
    rm -rf "$WORK/upstream" "$WORK/paastis"
    mkdir -p "$WORK/upstream" "$WORK/paastis"
    render "$TEMPLATES/nginx-upstream.conf" "$WORK/upstream/nginx.conf" "$WORK/upstream" \
        "$upstream_port" "$upstream_port"
    render "$TEMPLATES/paastis.yml" "$WORK/paastis/paastis.yml" "$WORK/paastis" "$port" "$upstream_port"
    out="$WORK/paastis/callgrind.out"
    LOG_LEVEL=warn LOG_FORMAT=text valgrind --tool=callgrind --separate-threads=yes \
        --callgrind-out-file="$out" \
        "$binary" --config "$WORK/paastis/paastis.yml" >"$WORK/paastis/paastis.log" 2>&1 &
    PID=$!
    WAIT_S=120 wait_ok paastis "http://127.0.0.1:$port/" "$PID"   # longer under valgrind
    if ((requests > 0)); then
        # One connection, requests one after the other (curl reuses it for the glob).
        curl -s -o /dev/null -H 'Host: up.localhost' "http://127.0.0.1:$port/?n=[1-$requests]"
    fi
    kill -TERM "$PID"
    wait "$PID" || true
    PID=""
    if [[ -f $WORK/upstream/nginx.pid ]]; then kill -KILL "$(cat "$WORK/upstream/nginx.pid")" 2>/dev/null || true; fi
    local all=0 workers=0 file count
    for file in "$out"-*; do
        count=$(total "$file")
        all=$((all + count))
        # A proxy worker thread runs Worker::serve (the names are in each thread's file).
        if grep -q 'Worker>::serve' "$file"; then workers=$((workers + count)); fi
        if [[ -n ${BENCH_KEEP:-} ]]; then
            cp "$file" "$BENCH_KEEP/$(basename "$binary").$requests.out-${file##*-}"
        fi
    done
    echo "$all $workers"
}

otlp_sink "$WORK"
printf '%-40s %16s %16s %14s %14s\n' binary "instr ($SMALL req)" "instr ($LARGE req)" \
    "instr/request" "workers/req"
for binary in "$@"; do
    [[ -x $binary ]] || die "no binary at $binary"
    counts=$(one_run "$binary" "$SMALL")
    read -r small small_workers <<<"$counts"
    counts=$(one_run "$binary" "$LARGE")
    read -r large large_workers <<<"$counts"
    per=$(((large - small) / (LARGE - SMALL)))
    per_workers=$(((large_workers - small_workers) / (LARGE - SMALL)))
    printf '%-40s %16s %16s %14s %14s\n' "$binary" "$small" "$large" "$per" "$per_workers"
done
