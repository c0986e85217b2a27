# Shared by the benchmark scripts (sourced): their messages, free ports, the wait for a
# server to answer and the tools they need. Scripts that source it set `set -euo pipefail` themselves.

log() { printf '%s\n' "bench: $*" >&2; }
die() { log "$*"; exit 1; }

# free_port: a TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_ok NAME URL PID [CURL_ARGS...]: until URL answers 200 to a request for the
# benchmark's app (`Host: up.localhost`), for at most WAIT_S seconds (60 unless the script
# sets it: longer under valgrind). Stops at once if PID exits ("-": no process to watch).
# On failure, the last lines of NAME's logs ($WORK/NAME/*.log) go with the message.
wait_ok() {
    local code="" name=$1 url=$2 pid=$3 tries
    shift 3
    tries=$((${WAIT_S:-60} * 10))
    for ((; tries > 0; tries--)); do
        if [[ $pid != - ]] && ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$WORK/$name"/*.log >&2 2>/dev/null || true
            die "$name exited (logs in $WORK)"
        fi
        code=$(curl -s -o /dev/null -m 10 -w '%{http_code}' "$@" -H 'Host: up.localhost' "$url" || true)
        [[ $code == 200 ]] && return 0
        sleep 0.1
    done
    tail -n 20 "$WORK/$name"/*.log >&2 2>/dev/null || true
    die "$name did not answer 200 at $url (last: $code)"
}

# need COMMAND=PACKAGE...: the Debian packages of the missing commands are installed when
# running as root (apt-get); otherwise the script stops and says what to install.
need() {
    local missing=() pair
    for pair in "$@"; do
        command -v "${pair%%=*}" >/dev/null || missing+=("${pair#*=}")
    done
    ((${#missing[@]})) || return 0
    [[ $(id -u) -eq 0 ]] || die "missing ${missing[*]}; install them (Debian: apt-get install ${missing[*]})"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# proxy_bench_tools H2 TLS: what scripts/bench-proxy.sh runs, as `need` takes them (h2load
# with H2=1, openssl with TLS=1); scripts/pgo.sh runs its load. nginx-light where Debian has
# it, else nginx.
proxy_bench_tools() {
    local nginx=nginx
    if apt-cache show nginx-light >/dev/null 2>&1; then nginx=nginx-light; fi
    printf '%s\n' wrk=wrk "nginx=$nginx" curl=curl python3=python3 ps=procps
    if [[ $1 == 1 ]]; then echo h2load=nghttp2-client; fi
    if [[ $2 == 1 ]]; then echo openssl=openssl; fi
}

# otlp_sink DIR: with BENCH_TRACES=1, starts a local OTLP/HTTP sink (otlp_sink.py) and
# exports the OTEL_* variables that turn the engine's traces on towards it (every request
# sampled); its pid goes to DIR/otlp.pid (the caller's cleanup kills it) and its count of
# exports and bytes to DIR/otlp.count. Without BENCH_TRACES=1, nothing.
otlp_sink() {
    [[ ${BENCH_TRACES:-0} == 1 ]] || return 0
    local dir=$1 port
    port=$(free_port)
    python3 "$(dirname "${BASH_SOURCE[0]}")/otlp_sink.py" "$port" "$dir/otlp.count" &
    echo $! >"$dir/otlp.pid"
    export OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$port"
    export OTEL_TRACES_SAMPLER=always_on
    log "traces on: OTLP sink on 127.0.0.1:$port"
}

# otlp_report DIR: what the sink received (BENCH_TRACES=1 only), then stops it.
otlp_report() {
    [[ -f $1/otlp.pid ]] || return 0
    log "traces: $(cat "$1/otlp.count" 2>/dev/null || echo "0 0") (exports, bytes) received by the sink"
    kill "$(cat "$1/otlp.pid")" 2>/dev/null || true
    rm -f "$1/otlp.pid"
}

# render TEMPLATE OUT DIR PORT: a template of scripts/bench/ filled in for one worker
# everywhere, with the caller's NGINX, WORK (the upstream's directory is $WORK/upstream) and
# UPSTREAM_PORT.
render() {
    local user_line=""
    if [[ $(id -u) -eq 0 ]]; then user_line="user root;"; fi   # else workers run as nobody
    sed -e "s|@USER_LINE@|$user_line|" -e "s|@WORKERS@|1|" -e "s|@NGINX@|$NGINX|" \
        -e "s|@UPSTREAM_DIR@|$WORK/upstream|g" -e "s|@UPSTREAM_PORT@|$UPSTREAM_PORT|g" \
        -e "s|@DIR@|$3|g" -e "s|@PORT@|$4|g" "$1" >"$2"
}
