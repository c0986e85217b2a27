#!/usr/bin/env bash
# Soak test (release build, not part of CI): two `paastis serve` instances sharing a real
# Redis and PostgreSQL, 10 process apps and 10 apps of a fake Scalingo account, seeded random
# traffic with wakes and idle stops all along; meanwhile a provider 429/500 burst, a Redis
# restart, and one instance SIGKILLed and restarted. Prints the report (requests failed,
# processes leaked, RSS at start and end) and exits non-zero when the soak fails. See
# docs/src/benchmarks.md ("Soak"). Usage: scripts/soak.sh [SECONDS] (default 180, 60..3600).
# Knobs (env): SOAK_SEED (1), SOAK_WORKERS (6 concurrent clients), SOAK_LOG_DIR (where the
# instances' logs are written; default a folder in the temp dir, printed in the report).
# Needs python3, redis-server and PostgreSQL's initdb/postgres (scripts/test.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-${SOAK_SECONDS:-180}}"
case "$seconds" in
  '' | *[!0-9]*) echo "usage: $0 [SECONDS]  (a whole number, 60..3600)" >&2; exit 2 ;;
esac
if ((seconds < 60 || seconds > 3600)); then
  echo "usage: $0 [SECONDS]  (60..3600)" >&2
  exit 2
fi
for tool in python3 redis-server; do
  command -v "$tool" >/dev/null 2>&1 || { echo "missing: $tool (scripts/test.sh installs it)" >&2; exit 1; }
done
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(free -g | awk '/^Mem:/ {print $2}') GiB"
cargo build --release --locked --bin paastis
# Bounded: the run, plus the build of the test, start-up and the graceful stops.
SOAK_SECONDS="$seconds" timeout --signal=INT --kill-after=30 "$((seconds + 900))" \
  cargo test --release --locked --test soak -- --ignored --nocapture --test-threads=1
