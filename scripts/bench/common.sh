# Shared by the benchmark scripts (sourced): their messages, free ports and the tools they
# need. Scripts that source it set `set -euo pipefail` themselves.

log() { printf '%s\n' "bench: $*" >&2; }
die() { log "$*"; exit 1; }

# free_port: a TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
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
