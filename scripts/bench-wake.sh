#!/usr/bin/env bash
# Wake overhead benchmark (release build): what the engine adds to a wake beyond the app's
# own start, for a `process` app whose server is `python3 -m http.server`. Each round: the
# server started directly (time until it accepts a connection), then through `paastis
# serve` one request from a program (held, not given the waiting page) and, after a stop,
# 100 at once, each timed to the first byte of its answer; the app's port is probed during
# each wake, so what the engine adds after the app listens is seen in the same wake. Needs
# python3. See docs/src/benchmarks.md. Knobs (env): BENCH_ROUNDS (20), BENCH_CONCURRENT
# (100), BENCH_BASELINE_BIN (another `paastis` binary, e.g. an earlier commit's, measured in
# the same rounds, alternating).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
cargo bench --locked --bench wake_overhead -- --bench "$@"
