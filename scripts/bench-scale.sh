#!/usr/bin/env bash
# Scale benchmark (release build): the engine at rest with 0, 100, 1,000, 10,000 and 100,000
# stopped apps on a fake Scalingo account (discovery every 5 s, the catalog in a SQLite
# file): startup time, CPU per second at rest, resident memory and memory per managed app,
# three rounds, medians and spread. See docs/src/benchmarks.md. Knobs (env):
# BENCH_SCALE_APPS (0,100,1000,10000,100000), BENCH_ROUNDS (3), BENCH_DURATION (seconds at
# rest per sample, 30), BENCH_DISCOVERY_EVERY (5s).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
cargo bench --locked --bench scale -- --bench "$@"
