#!/usr/bin/env bash
# Wake storms: CLIENTS concurrent curl requests (each its own connection) for a sleeping app
# whose server is `python3 -m http.server` (listen backlog 5, HTTP/1.0) on a fixed port,
# ROUNDS times, each after an idle stop. Beside them, the same storm straight at the same
# server just after it starts listening (what the app server itself can do). Reports, per
# round, the requests answered 200 and the slowest one. See docs/src/benchmarks.md.
# Knobs (env): STORM_CLIENTS (100), STORM_ROUNDS (3), STORM_PROTOCOL (HTTP/1.0 or HTTP/1.1),
# PAASTIS_BIN (target/release/paastis; built when missing), STORM_TIMEOUT (70 s per request).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CLIENTS=${STORM_CLIENTS:-100}
ROUNDS=${STORM_ROUNDS:-3}
PROTOCOL=${STORM_PROTOCOL:-HTTP/1.0}
TIMEOUT=${STORM_TIMEOUT:-70}
BIN=${PAASTIS_BIN:-$ROOT/target/release/paastis}
[ -x "$BIN" ] || (cd "$ROOT" && cargo build --release --locked)

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# storm URL HOST: one line "ok=N/CLIENTS max=S p50=S"
storm() {
    local args=(--silent --parallel --parallel-immediate --parallel-max "$CLIENTS"
        --max-time "$TIMEOUT" --header "Host: $2" --write-out '%{http_code} %{time_total}\n')
    for _ in $(seq "$CLIENTS"); do args+=(--output /dev/null "$1"); done
    curl "${args[@]}" 2>/dev/null | sort -k2 -n | awk -v n="$CLIENTS" '
        { if ($1 == "200") ok++; t[NR] = $2 }
        END { printf "ok=%d/%d p50=%.2fs max=%.2fs\n", ok, n, t[int((NR+1)/2)], t[NR] }'
}

APP_PORT=$(free_port)
echo "<p>storm</p>" > "$WORK/index.html"

# The server alone: started, then stormed as soon as it listens.
python3 -m http.server "$APP_PORT" --bind 127.0.0.1 --protocol "$PROTOCOL" --directory "$WORK" \
    >/dev/null 2>&1 &
direct=$!
until curl -s -o /dev/null "http://127.0.0.1:$APP_PORT/"; do sleep 0.02; done
echo "direct: $(storm "http://127.0.0.1:$APP_PORT/" direct)"
kill "$direct"; wait "$direct" 2>/dev/null || true

PROXY_PORT=$(free_port)
ADMIN_PORT=$(free_port)
cat > "$WORK/paastis.yml" <<YAML
listen: 127.0.0.1:$PROXY_PORT
admin: {listen: 127.0.0.1:$ADMIN_PORT}
database: {url: "sqlite://$WORK/paastis.db"}
defaults: {max_idle: 2s, wake_timeout: 60s}
providers:
  - id: local
    type: process
    apps:
      - name: files
        command: python3 -m http.server {port} --bind 127.0.0.1 --protocol $PROTOCOL --directory $WORK
        port: $APP_PORT
YAML
LOG_LEVEL=warn "$BIN" --config "$WORK/paastis.yml" >"$WORK/paastis.log" 2>&1 &
PIDS+=($!)
until curl -s -o /dev/null "http://127.0.0.1:$ADMIN_PORT/health"; do sleep 0.1; done

state() {
    curl -s "http://127.0.0.1:$ADMIN_PORT/api/v1/apps" |
        python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["apps"][0]["state"])'
}
for round in $(seq "$ROUNDS"); do
    for _ in $(seq 100); do [ "$(state)" = asleep ] && break; sleep 0.2; done
    echo "paastis round $round: $(storm "http://127.0.0.1:$PROXY_PORT/" files.localhost)"
done
