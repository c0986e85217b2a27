#!/usr/bin/env bash
# Builds a release tarball, paastis-<version>-<target triple>.tar.gz, holding the binary,
# LICENSE, README.md and the embedded demo (examples/paastis.yml, examples/hello.py), with
# a <tarball>.sha256 file that `sha256sum -c` verifies, and prints the minimum glibc the
# binary needs (its highest GLIBC_ symbol version).
#
#   scripts/dist.sh                          # scripts/pgo.sh (profile-guided build), then package
#   scripts/dist.sh --no-pgo                 # cargo build --release --locked, then package
#   scripts/dist.sh --binary PATH [--out DIR] [--target TRIPLE]
#
# The shipped build is the profile-guided one (docs/src/benchmarks.md: 8 % less CPU per
# request on the proxy's path); it needs what scripts/pgo.sh needs. --no-pgo is the plain
# release build: half the build time, without those tools.
# --binary packages an already built binary instead of building one (CI's release build,
# or a debug binary in tests). --target names the triple when it is not the host's (the
# binary was cross-built). --out defaults to target/dist. The archive is reproducible: its
# entries are sorted, owned by 0:0 and dated from SOURCE_DATE_EPOCH (default: the last
# commit's time, else 0).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
binary=""
out=""
target=""
pgo=1

usage() {
    sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case "$1" in
        --binary) [ $# -ge 2 ] || usage; binary="$2"; shift 2 ;;
        --out) [ $# -ge 2 ] || usage; out="$2"; shift 2 ;;
        --target) [ $# -ge 2 ] || usage; target="$2"; shift 2 ;;
        --no-pgo) pgo=0; shift ;;
        -h|--help) usage ;;
        *) echo "dist.sh: unknown argument: $1" >&2; usage ;;
    esac
done

# The version of the [package] in Cargo.toml: the first `version = "..."` line.
version="$(sed -n 's/^version = "\([^"]*\)"$/\1/p' "$root/Cargo.toml" | head -n 1)"
if [ -z "$version" ]; then
    echo "dist.sh: no version in $root/Cargo.toml" >&2
    exit 1
fi

if [ -z "$target" ]; then
    if command -v rustc >/dev/null 2>&1; then
        target="$(rustc -vV | sed -n 's/^host: //p')"
    fi
    if [ -z "$target" ]; then
        echo "dist.sh: cannot tell the target triple (no rustc); pass --target" >&2
        exit 1
    fi
fi

if [ -n "$binary" ] && [ "$pgo" = 0 ]; then
    echo "dist.sh: --no-pgo says how to build the binary: not with --binary, which packages one" >&2
    exit 2
fi
if [ -z "$binary" ] && [ "$pgo" = 1 ]; then
    binary="${CARGO_TARGET_DIR:-$root/target}/pgo/paastis"
    "$root/scripts/pgo.sh" "$binary" || {
        echo "dist.sh: the profile-guided build failed (above); scripts/dist.sh --no-pgo builds the plain release binary" >&2
        exit 1
    }
elif [ -z "$binary" ]; then
    (cd "$root" && cargo build --release --locked)
    binary="${CARGO_TARGET_DIR:-$root/target}/release/paastis"
fi
if [ ! -x "$binary" ]; then
    echo "dist.sh: $binary is not an executable file" >&2
    exit 1
fi

out="${out:-${CARGO_TARGET_DIR:-$root/target}/dist}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

name="paastis-$version-$target"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/$name/examples"
install -m 0755 "$binary" "$stage/$name/paastis"
# The release profile's line tables are three quarters of the binary (140 MB -> 33 MB
# without them); the symbols stay, so a backtrace still names its functions.
if command -v strip >/dev/null 2>&1; then
    strip --strip-debug "$stage/$name/paastis"
fi
install -m 0644 "$root/LICENSE" "$root/README.md" "$stage/$name/"
install -m 0644 "$root/examples/paastis.yml" "$root/examples/hello.py" "$stage/$name/examples/"

if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    SOURCE_DATE_EPOCH="$(git -C "$root" log -1 --format=%ct 2>/dev/null || echo 0)"
fi

tarball="$name.tar.gz"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
    -C "$stage" -cf - "$name" | gzip -n >"$out/$tarball"
(cd "$out" && sha256sum "$tarball" >"$tarball.sha256")

glibc="none (static or not linked against glibc)"
if command -v objdump >/dev/null 2>&1; then
    found="$(objdump -T "$binary" 2>/dev/null | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' \
        | sort -u -V | tail -n 1 || true)"
    [ -n "$found" ] && glibc="$found"
else
    glibc="unknown (objdump not installed)"
fi

echo "tarball: $out/$tarball ($(wc -c <"$out/$tarball") bytes)"
echo "sha256:  $out/$tarball.sha256"
echo "glibc:   $glibc"
