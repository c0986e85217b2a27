#!/usr/bin/env bash
# Builds a release binary optimised with a profile of the proxy's work (profile-guided
# optimisation): an instrumented build serves the proxy benchmark's load
# (scripts/bench-proxy.sh: HTTP/1.1 keep-alive, HTTPS on the TLS listener, then HTTP/2 with
# prior knowledge, through an awake `process` app), its counts are merged with llvm-profdata,
# and the binary is built again with them. The request path's code is then laid out
# together: about half the instruction-cache misses per request of the plain release build
# (docs/src/benchmarks.md).
#
#   scripts/pgo.sh [OUT]        # OUT defaults to target/pgo/paastis
#
# Needs what scripts/bench-proxy.sh needs (wrk, nginx, curl, python3, ps, openssl, h2load;
# installed with apt-get when run as root, else checked before anything is built) and
# llvm-profdata of the compiler's LLVM version (the rustup component llvm-tools: added when
# rustup is there; or LLVM_PROFDATA=PATH). Two release builds: about twice the time of
# `cargo build --release`. Code the load does not run (WebSocket tunnels, the admin API,
# wakes, TLS handshakes beyond one per connection) is built as rarely run: correct, laid
# out apart.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=${1:-$TARGET_DIR/pgo/paastis}

# shellcheck source=bench/common.sh
source "$ROOT/scripts/bench/common.sh"
PATH="$PATH:/usr/sbin:/sbin"
log() { printf '%s\n' "pgo: $*" >&2; }
die() { log "$*"; exit 1; }

HOST=$(rustc -vV | sed -n 's/^host: //p')
[[ -n $HOST ]] || die "cannot tell the host's target triple (rustc -vV)"

# llvm-profdata of the compiler's own LLVM (a profile written by one LLVM version is not
# read by another).
PROFDATA=${LLVM_PROFDATA:-$(rustc --print sysroot)/lib/rustlib/$HOST/bin/llvm-profdata}
if [[ ! -x $PROFDATA ]] && [[ -z ${LLVM_PROFDATA:-} ]] && command -v rustup >/dev/null; then
    log "adding the rustup component llvm-tools (llvm-profdata)"
    rustup component add llvm-tools >&2
fi
[[ -x $PROFDATA ]] || die "no llvm-profdata at $PROFDATA: rustup component add llvm-tools, or set LLVM_PROFDATA"

# The load's tools, before anything is built: installed when run as root, else named.
mapfile -t tools < <(proxy_bench_tools 1 1)
need "${tools[@]}"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/paastis-pgo.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# --target: RUSTFLAGS then reach the crate and its dependencies, not the build scripts and
# procedural macros run during the build (their counts would be noise).
build() {
    (cd "$ROOT" && RUSTFLAGS="$1" cargo build --release --locked --bin paastis \
        --target "$HOST" --target-dir "$2")
}

log "1/3 instrumented build"
build "-Cprofile-generate=$WORK/raw" "$TARGET_DIR/pgo-generate"

log "2/3 the proxy benchmark's load on the instrumented binary"
# LLVM_PROFILE_FILE: one file per process (%p), written when paastis exits after SIGTERM.
LLVM_PROFILE_FILE="$WORK/raw/paastis-%p.profraw" BENCH_BUILD=0 BENCH_ROUNDS=1 \
    BENCH_DURATION="${PGO_DURATION:-5s}" BENCH_WARMUP=1s \
    PAASTIS_BIN="$TARGET_DIR/pgo-generate/$HOST/release/paastis" \
    "$ROOT/scripts/bench-proxy.sh" >"$WORK/load.txt" 2>&1 \
    || { cat "$WORK/load.txt" >&2; die "the load failed"; }
shopt -s nullglob
profiles=("$WORK"/raw/*.profraw)
((${#profiles[@]})) || die "the instrumented paastis wrote no profile (did it exit on SIGTERM?)"
"$PROFDATA" merge -o "$WORK/paastis.profdata" "${profiles[@]}"

log "3/3 build with the profile"
build "-Cprofile-use=$WORK/paastis.profdata" "$TARGET_DIR/pgo-use"
mkdir -p "$(dirname "$OUT")"
cp "$TARGET_DIR/pgo-use/$HOST/release/paastis" "$OUT"
log "built $OUT"
