#!/usr/bin/env bash
# Store benchmark (SQLite file, release build): 100,000 events, then the latency of filtered
# event pages (first page, and a page deep into the cursor chain), single appends alone, and
# pruning 50,000 events while another task keeps appending single events (the worst append
# latency meanwhile shows that pruning does not hold writers up). See docs/src/benchmarks.md.
# Knobs (env): BENCH_EVENTS (100000), BENCH_RUNS (500), BENCH_PRUNE (50000),
# BENCH_DEEP_PAGES (200), BENCH_KEEP (set: keep the database file and print where).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
cargo bench --locked --bench store -- --bench "$@"
