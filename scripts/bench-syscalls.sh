#!/usr/bin/env bash
# System calls per proxied request, paastis beside an nginx reverse proxy, counted by strace:
# about half of the CPU a request costs is spent in the kernel (docs/src/benchmarks.md), so
# the calls each proxy makes per request say where that half goes.
#
#   scripts/bench-syscalls.sh [PAASTIS_BINARY]   (default: target/release/paastis)
#
# Both proxies run in front of the same upstream (nginx, scripts/bench/nginx-upstream.conf)
# with one worker. Once a proxy answers, strace attaches to its worker (paastis' `paastis-proxy-*`
# threads, nginx's worker process) and counts every call while curl sends BENCH_REQUESTS
# (1000) keep-alive requests on one connection; the counts divided by the requests are printed
# side by side, per call and in total. Calls that failed (mostly EAGAIN: a read that found
# nothing yet) are counted apart. strace slows both proxies, so the counts matter, not the time.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TEMPLATES="$ROOT/scripts/bench"
PATH="$PATH:/usr/sbin:/sbin"
REQUESTS=${BENCH_REQUESTS:-1000}
PAASTIS=${1:-$ROOT/target/release/paastis}

# shellcheck source=bench/common.sh
source "$TEMPLATES/common.sh"

[[ "$REQUESTS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_REQUESTS must be a whole number above 0"
[[ -x $PAASTIS ]] || die "no paastis binary at $PAASTIS (cargo build --release)"
need strace=strace nginx=nginx-light curl=curl
NGINX=$(command -v nginx)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/paastis-syscalls.XXXXXX")
PIDS=()
cleanup() {
    local status=$? pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    for file in "$WORK"/*/nginx.pid; do
        [[ -f $file ]] && kill -KILL "$(cat "$file")" 2>/dev/null || true
    done
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

UPSTREAM_PORT=$(free_port)
PAASTIS_PORT=$(free_port)
NGINX_PORT=$(free_port)


# count OUT PORT TID...: strace -c on the TIDs while the requests run; the summary in OUT.
count() {
    local out=$1 port=$2 tracer attach=() tid
    shift 2
    for tid in "$@"; do attach+=(-p "$tid"); done
    strace -c -f -o "$out" "${attach[@]}" 2>/dev/null &
    tracer=$!
    sleep 1   # attached
    curl -s -o /dev/null -H 'Host: up.localhost' "http://127.0.0.1:$port/?n=[1-$REQUESTS]"
    sleep 0.5
    kill -INT "$tracer"
    wait "$tracer" || true
}

mkdir -p "$WORK/upstream" "$WORK/paastis" "$WORK/nginx"
render "$TEMPLATES/nginx-upstream.conf" "$WORK/upstream/nginx.conf" "$WORK/upstream" "$UPSTREAM_PORT"
render "$TEMPLATES/paastis.yml" "$WORK/paastis/paastis.yml" "$WORK/paastis" "$PAASTIS_PORT"
render "$TEMPLATES/nginx-proxy.conf" "$WORK/nginx/nginx.conf" "$WORK/nginx" "$NGINX_PORT"

# paastis starts the upstream (its app) on the first request; nginx then proxies to it.
LOG_LEVEL=warn "$PAASTIS" --config "$WORK/paastis/paastis.yml" >"$WORK/paastis/paastis.log" 2>&1 &
PIDS+=($!)
wait_ok paastis "http://127.0.0.1:$PAASTIS_PORT/" "${PIDS[0]}"
workers=()
for task in /proc/"${PIDS[0]}"/task/*; do
    [[ $(cat "$task/comm") == paastis-proxy* ]] && workers+=("${task##*/}")
done
((${#workers[@]})) || die "no paastis-proxy thread found"
count "$WORK/paastis.strace" "$PAASTIS_PORT" "${workers[@]}"

"$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" &
PIDS+=($!)
wait_ok nginx "http://127.0.0.1:$NGINX_PORT/" "${PIDS[1]}"
worker=$(pgrep -P "${PIDS[1]}" | head -n 1)
[[ -n $worker ]] || die "no nginx worker found"
count "$WORK/nginx.strace" "$NGINX_PORT" "$worker"

# The calls and errors columns of each summary, per request, side by side.
python3 - "$REQUESTS" "$WORK/paastis.strace" "$WORK/nginx.strace" <<'EOF'
import sys

requests = int(sys.argv[1])

def read(path):
    calls = {}
    for line in open(path):
        fields = line.split()
        if len(fields) < 5 or not fields[0][0].isdigit() or fields[-1] == "total":
            continue
        # % time, seconds, usecs/call, calls, [errors,] syscall
        name = fields[-1]
        count = int(fields[3])
        errors = int(fields[4]) if len(fields) == 6 else 0
        calls[name] = (count, errors)
    return calls

paastis, nginx = read(sys.argv[2]), read(sys.argv[3])
print(f"{'call (per request)':<22} {'paastis':>9} {'failed':>8} {'nginx':>9} {'failed':>8}")
for name in sorted(set(paastis) | set(nginx), key=lambda n: -paastis.get(n, (0, 0))[0]):
    p, n = paastis.get(name, (0, 0)), nginx.get(name, (0, 0))
    print(f"{name:<22} {p[0] / requests:>9.2f} {p[1] / requests:>8.2f} "
          f"{n[0] / requests:>9.2f} {n[1] / requests:>8.2f}")
total = lambda calls, i: sum(v[i] for v in calls.values()) / requests
print(f"{'total':<22} {total(paastis, 0):>9.2f} {total(paastis, 1):>8.2f} "
      f"{total(nginx, 0):>9.2f} {total(nginx, 1):>8.2f}")
EOF
