#!/usr/bin/env bash
# Connection memory benchmark (release build): the engine's resident memory (VmRSS) per idle
# keep-alive client connection (10,000, each answered once and kept open), per connection
# that has sent nothing yet, and per open WebSocket tunnel (1,000, to a server that stays
# quiet), each measure on a fresh `paastis serve`, three rounds. The apps belong to a fake
# Scalingo account. See docs/src/benchmarks.md. Knobs (env): BENCH_ROUNDS (3),
# BENCH_CONNECTIONS (10000), BENCH_TUNNELS (1000). The open-files limit is raised to hold
# them (the engine inherits it); the bench uses fewer when the hard limit is lower.
set -euo pipefail
cd "$(dirname "$0")/.."
connections=${BENCH_CONNECTIONS:-10000}
tunnels=${BENCH_TUNNELS:-1000}
want=$(( (connections > 2 * tunnels ? connections : 2 * tunnels) + 1000 ))
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ]; then want=$hard; fi
ulimit -Sn "$want"
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); open files: $(ulimit -Sn)"
cargo bench --locked --bench connections -- --bench "$@"
