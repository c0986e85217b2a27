#!/usr/bin/env bash
# Builds the npm packages from a release binary and packs them with `npm pack`:
#   paastis-<version>.tgz                  the `paastis` command (npm/paastis: a Node wrapper)
#   paastis-<os>-<cpu>-<version>.tgz       @paastis/<os>-<cpu>: the binary for one platform,
#                                          an optional dependency of `paastis`
#
#   scripts/npm.sh --binary PATH [--out DIR] [--cpu x64|arm64]
#
# The platform package is the host's (Linux, the CPU from `uname -m`) unless --cpu names
# the one the binary was built for. Both packages take Cargo.toml's version, and so does
# the wrapper's optionalDependencies. --out defaults to target/npm. Nothing is published.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
binary=""
out=""
cpu=""

usage() {
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case "$1" in
        --binary) [ $# -ge 2 ] || usage; binary="$2"; shift 2 ;;
        --out) [ $# -ge 2 ] || usage; out="$2"; shift 2 ;;
        --cpu) [ $# -ge 2 ] || usage; cpu="$2"; shift 2 ;;
        -h|--help) usage ;;
        *) echo "npm.sh: unknown argument: $1" >&2; usage ;;
    esac
done

[ -n "$binary" ] || { echo "npm.sh: --binary PATH is required" >&2; usage; }
if [ ! -x "$binary" ]; then
    echo "npm.sh: $binary is not an executable file" >&2
    exit 1
fi
for tool in node npm; do
    command -v "$tool" >/dev/null 2>&1 || { echo "npm.sh: $tool is not installed" >&2; exit 1; }
done

os="$(uname -s)"
if [ "$os" != "Linux" ]; then
    echo "npm.sh: only Linux binaries are packaged (this is $os)" >&2
    exit 1
fi
os=linux
if [ -z "$cpu" ]; then
    case "$(uname -m)" in
        x86_64|amd64) cpu=x64 ;;
        aarch64|arm64) cpu=arm64 ;;
        *) echo "npm.sh: no npm package for CPU $(uname -m)" >&2; exit 1 ;;
    esac
fi
case "$cpu" in
    x64|arm64) ;;
    *) echo "npm.sh: --cpu must be x64 or arm64, not $cpu" >&2; exit 1 ;;
esac

version="$(sed -n 's/^version = "\([^"]*\)"$/\1/p' "$root/Cargo.toml" | head -n 1)"
[ -n "$version" ] || { echo "npm.sh: no version in $root/Cargo.toml" >&2; exit 1; }

out="${out:-${CARGO_TARGET_DIR:-$root/target}/npm}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT

# The wrapper: npm/paastis as committed, stamped with Cargo.toml's version.
cp -R "$root/npm/paastis" "$stage/paastis"
install -m 0644 "$root/LICENSE" "$stage/paastis/LICENSE"
chmod 0755 "$stage/paastis/bin/paastis.js"
VERSION="$version" node -e '
const fs = require("fs");
const file = process.argv[1];
const manifest = JSON.parse(fs.readFileSync(file, "utf8"));
manifest.version = process.env.VERSION;
for (const name of Object.keys(manifest.optionalDependencies || {})) {
  manifest.optionalDependencies[name] = process.env.VERSION;
}
fs.writeFileSync(file, JSON.stringify(manifest, null, 2) + "\n");
' "$stage/paastis/package.json"

# The platform package: the binary and a manifest npm installs only on its os/cpu/libc.
platform="$stage/platform"
mkdir -p "$platform/bin"
install -m 0755 "$binary" "$platform/bin/paastis"
# The release profile's line tables are three quarters of the binary (140 MB -> 33 MB
# without them); the symbols stay, so a backtrace still names its functions.
if command -v strip >/dev/null 2>&1; then
    strip --strip-debug "$platform/bin/paastis"
fi
install -m 0644 "$root/LICENSE" "$platform/LICENSE"
cat >"$platform/README.md" <<EOF
# @paastis/$os-$cpu

The \`paastis\` binary for Linux ($cpu, glibc). Install the \`paastis\` package instead
(\`npx paastis\`): it depends on this one, which npm installs only on this platform.
EOF
VERSION="$version" OS="$os" CPU="$cpu" node -e '
const fs = require("fs");
const manifest = {
  name: `@paastis/${process.env.OS}-${process.env.CPU}`,
  version: process.env.VERSION,
  description: `The paastis binary for Linux ${process.env.CPU} (glibc); install the paastis package`,
  license: "AGPL-3.0-or-later",
  os: [process.env.OS],
  cpu: [process.env.CPU],
  libc: ["glibc"],
  files: ["bin/paastis", "README.md", "LICENSE"],
  preferUnplugged: true,
};
fs.writeFileSync(process.argv[1], JSON.stringify(manifest, null, 2) + "\n");
' "$platform/package.json"

# npm pack needs no registry: keep it from looking at one.
for dir in "$stage/paastis" "$platform"; do
    (cd "$dir" && npm pack --offline --ignore-scripts --silent --pack-destination "$out" >/dev/null)
done

echo "wrapper:  $out/paastis-$version.tgz"
echo "platform: $out/paastis-$os-$cpu-$version.tgz"
