#!/usr/bin/env bash
# How each proxy's instructions run, per request, where the machine has no hardware counters:
# valgrind's cache and branch simulation (callgrind --cache-sim=yes --branch-sim=yes) on
# paastis (each BINARY given) and on nginx as the reference proxy, each with one worker,
# under the same keep-alive load (wrk -t1 -c8). Only the measured interval is counted
# (`callgrind_control -z` after a warm-up, `-d` after the load), then divided by the
# requests wrk made. Prints instructions, L1 instruction-cache misses, L1 data-cache misses
# (reads + writes), mispredicted branches (conditional + indirect) and atomic
# read-modify-write instructions (`scripts/bench/atomics.py`) per request: a proxy with
# fewer instructions can still run slower when its code does not fit the caches, or when
# many of them lock the bus (docs/src/benchmarks.md).
#
#   scripts/bench-cache.sh BINARY [BINARY...]
#
# Knobs (env): BENCH_DURATION (10, seconds of measured load), BENCH_WARMUP (3),
# BENCH_CONNECTIONS (8), BENCH_KEEP (a directory: each proxy's callgrind dump is copied
# there as NAME.callgrind, for `callgrind_annotate --show=I1mr --sort=I1mr`).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TEMPLATES="$ROOT/scripts/bench"
PATH="$PATH:/usr/sbin:/sbin"
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-3}
CONNECTIONS=${BENCH_CONNECTIONS:-8}

# shellcheck source=bench/common.sh
source "$TEMPLATES/common.sh"

(($#)) || die "usage: $0 BINARY [BINARY...]"
if [[ -n ${BENCH_KEEP:-} ]]; then mkdir -p "$BENCH_KEEP" || die "BENCH_KEEP: cannot make $BENCH_KEEP"; fi
[[ "$DURATION" =~ ^[1-9][0-9]*$ && "$WARMUP" =~ ^[0-9]+$ && "$CONNECTIONS" =~ ^[1-9][0-9]*$ ]] \
    || die "BENCH_DURATION, BENCH_WARMUP (whole seconds) and BENCH_CONNECTIONS must be whole numbers"
need valgrind=valgrind nginx=nginx-light curl=curl wrk=wrk objdump=binutils python3=python3
NGINX=$(command -v nginx)
# Names written out in full in every dump: a dump taken after `-z` can refer to a name
# first written in an earlier one, which `callgrind_annotate` cannot resolve.
# Costs by instruction too (`--dump-instr`), for the atomics' count.
VALGRIND=(valgrind --tool=callgrind --cache-sim=yes --branch-sim=yes --compress-strings=no
    --dump-instr=yes)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/paastis-cache.XXXXXX")
PIDS=()
cleanup() {
    local status=$? pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ -f $WORK/upstream/nginx.pid ]]; then kill -KILL "$(cat "$WORK/upstream/nginx.pid")" 2>/dev/null || true; fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

UPSTREAM_PORT=$(free_port)

# Under valgrind, a server takes a while to answer its first request.
WAIT_S=120

# measure NAME PORT PID OUT: warm-up, counters zeroed, the measured load, counters dumped;
# prints the per-request figures.
measure() {
    local name=$1 port=$2 pid=$3 out=$4 requests dump atomics
    wrk -t1 -c "$CONNECTIONS" -d "${WARMUP}s" -H 'Host: up.localhost' "http://127.0.0.1:$port/" >/dev/null
    callgrind_control -z "$pid" >/dev/null 2>&1
    wrk -t1 -c "$CONNECTIONS" -d "${DURATION}s" -H 'Host: up.localhost' \
        "http://127.0.0.1:$port/" >"$WORK/$name.wrk"
    callgrind_control -d "$pid" >/dev/null 2>&1
    requests=$(awk '/ requests in / {print $1}' "$WORK/$name.wrk")
    # The dump made by `-d`, all threads together.
    dump="$out.1"
    [[ -f $dump && -n $requests ]] || die "$name: no dump or no requests"
    if [[ -n ${BENCH_KEEP:-} ]]; then cp "$dump" "$BENCH_KEEP/$name.callgrind"; fi
    atomics=$(python3 "$TEMPLATES/atomics.py" "$dump" "$requests" 2>"$WORK/$name.atomics") \
        || die "$name: atomics not counted ($(cat "$WORK/$name.atomics"))"
    awk -v name="$name" -v requests="$requests" -v atomics="$atomics" '
        /^events:/ { for (i = 2; i <= NF; i++) col[$i] = i - 1 }
        /^summary:/ { for (i = 2; i <= NF; i++) v[i - 1] = $i }
        END {
            ir = v[col["Ir"]]; i1 = v[col["I1mr"]]; d1 = v[col["D1mr"]] + v[col["D1mw"]]
            br = v[col["Bcm"]] + v[col["Bim"]]
            printf "%-34s %9d %12.0f %12.0f %12.0f %12.0f %12.1f\n", name, requests,
                ir / requests, i1 / requests, d1 / requests, br / requests, atomics
        }' "$dump"
}

mkdir -p "$WORK/upstream"
render "$TEMPLATES/nginx-upstream.conf" "$WORK/upstream/nginx.conf" "$WORK/upstream" "$UPSTREAM_PORT"

printf '%-34s %9s %12s %12s %12s %12s %12s\n' proxy requests 'instr/req' 'I1 miss/req' \
    'D1 miss/req' 'mispred/req' 'atomics/req'
for binary in "$@"; do
    [[ -x $binary ]] || die "no binary at $binary"
    name=$(basename "$binary")
    port=$(free_port)
    admin=$(free_port)
    mkdir -p "$WORK/$name"
    render "$TEMPLATES/paastis.yml" "$WORK/$name/paastis.yml" "$WORK/$name" "$port"
    printf 'admin: {listen: "127.0.0.1:%s"}\n' "$admin" >>"$WORK/$name/paastis.yml"
    LOG_LEVEL=warn LOG_FORMAT=text "${VALGRIND[@]}" --callgrind-out-file="$WORK/$name.out" \
        "$binary" --config "$WORK/$name/paastis.yml" >"$WORK/$name/paastis.log" 2>&1 &
    PIDS+=("$!")
    wait_ok "$name" "http://127.0.0.1:$port/" "$!"   # wakes `up` (the upstream) the first time
    measure "$name" "$port" "${PIDS[-1]}" "$WORK/$name.out"
    kill -TERM "${PIDS[-1]}"
    wait "${PIDS[-1]}" 2>/dev/null || true
    unset 'PIDS[-1]'
    # The next paastis starts the upstream again (it refuses a port another program holds).
    if [[ -f $WORK/upstream/nginx.pid ]]; then
        kill -TERM "$(cat "$WORK/upstream/nginx.pid")" 2>/dev/null || true
        for _ in $(seq 100); do [[ -f $WORK/upstream/nginx.pid ]] || break; sleep 0.1; done
    fi
done

# nginx as the reference proxy: one process (no master), so valgrind sees its worker.
"$NGINX" -p "$WORK/upstream" -c "$WORK/upstream/nginx.conf" -e "$WORK/upstream/error.log" &
PIDS+=("$!")
port=$(free_port)
mkdir -p "$WORK/nginx-proxy"
render "$TEMPLATES/nginx-proxy.conf" "$WORK/nginx-proxy/nginx.conf" "$WORK/nginx-proxy" "$port"
sed -i 's/^daemon off;$/daemon off;\nmaster_process off;/' "$WORK/nginx-proxy/nginx.conf"
grep -q '^master_process off;$' "$WORK/nginx-proxy/nginx.conf" || die "nginx-proxy.conf: no 'daemon off;' line"
"${VALGRIND[@]}" --callgrind-out-file="$WORK/nginx-proxy.out" "$NGINX" -p "$WORK/nginx-proxy" \
    -c "$WORK/nginx-proxy/nginx.conf" -e "$WORK/nginx-proxy/error.log" \
    >"$WORK/nginx-proxy/stdout.log" 2>&1 &
PIDS+=("$!")
wait_ok nginx-proxy "http://127.0.0.1:$port/" "$!"
measure nginx-proxy "$port" "${PIDS[-1]}" "$WORK/nginx-proxy.out"
echo "(valgrind's simulated caches: L1 32 KiB each, 64-byte lines; whole processes, all threads)"
