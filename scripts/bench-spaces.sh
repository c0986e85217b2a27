#!/usr/bin/env bash
# Spaces benchmark (release build): req/s on one app through an engine with one hosted space
# and through one with 500 more, rounds alternating in one run, and the ratio; then the time
# from creating a space through the API to the first request served on its host. Needs wrk
# (Debian: apt-get install wrk). See docs/src/benchmarks.md. Knobs (env): BENCH_ROUNDS (3),
# BENCH_DURATION (seconds, 10), BENCH_CONNECTIONS (32), BENCH_THREADS (2), BENCH_SPACES
# (500), BENCH_CREATES (20).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
cargo bench --locked --bench spaces -- --bench "$@"
