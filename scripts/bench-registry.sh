#!/usr/bin/env bash
# Registry benchmark (release build): req/s on an awake app through an engine with the memory
# registry and through one with the Redis registry, rounds alternating in one run, and the
# ratio. The app belongs to a fake Scalingo account (shared between instances under Redis).
# Needs wrk and redis-server (Debian: apt-get install wrk redis-server). See
# docs/src/benchmarks.md. Knobs (env): BENCH_ROUNDS (3), BENCH_DURATION (seconds, 10),
# BENCH_CONNECTIONS (32), BENCH_THREADS (2).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
cargo bench --locked --bench registry -- --bench "$@"
