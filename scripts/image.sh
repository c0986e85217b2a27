#!/usr/bin/env bash
# Builds the container image from the root Dockerfile with podman, offline from any container
# registry: the base images its FROM lines name are made here from Debian packages
# (mmdebstrap -> podman import) and tagged with exactly those names, then
# `podman build --pull=never` finds them. See docs/src/docker.md.
# The profile-guided build needs llvm-profdata in the host's toolchain (the rustup component
# llvm-tools, added here when missing) and the Debian mirror for the training load's tools.
#
#   scripts/image.sh                       # from source (cargo in a builder image), profile-guided
#   scripts/image.sh --no-pgo              # from source, plain release build (half the time)
#   scripts/image.sh --binary PATH         # prebuilt: the runtime stage around PATH
#   scripts/image.sh --tag NAME            # image name (default localhost/paastis:latest)
#   scripts/image.sh --base-only           # only the runtime base image (e.g. to probe podman)
#
# From source, the builder image is Debian bookworm with gcc and the host's Rust toolchain
# (`rustc --print sysroot`) copied in; the build runs with --network host so cargo reaches
# crates.io. Base images are cached: as podman images, and as tarballs in PAASTIS_IMAGE_CACHE
# (default /var/tmp/paastis-image). Podman runs with runc and no default ulimits, through a
# containers.conf given in CONTAINERS_CONF (kept when already set).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${PAASTIS_IMAGE_CACHE:-/var/tmp/paastis-image}
TAG=localhost/paastis:latest
BINARY=
BASE_ONLY=0
PGO=1
MIRROR=${PAASTIS_IMAGE_MIRROR:-http://deb.debian.org/debian}

# The names the Dockerfile's FROM lines use.
RUNTIME_BASE=docker.io/library/debian:bookworm-slim
BUILDER_BASE=docker.io/library/rust:1-slim-bookworm

log() { printf '%s\n' "image: $*" >&2; }
die() { log "$*"; exit 1; }

usage() {
    sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
    case "$1" in
        --binary) [ $# -ge 2 ] || die "--binary needs a path"; BINARY=$2; shift 2 ;;
        --binary=*) BINARY=${1#--binary=}; shift ;;
        --tag) [ $# -ge 2 ] || die "--tag needs a name"; TAG=$2; shift 2 ;;
        --tag=*) TAG=${1#--tag=}; shift ;;
        --base-only) BASE_ONLY=1; shift ;;
        --no-pgo) PGO=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done

command -v podman >/dev/null 2>&1 \
    || die "podman is not installed (apt-get install -y podman uidmap runc)"
command -v runc >/dev/null 2>&1 || [ -x /usr/sbin/runc ] \
    || die "runc is not installed (apt-get install -y runc); podman runs with --runtime runc here"
if [ -n "$BINARY" ] && [ "$PGO" = 0 ]; then
    die "--no-pgo says how to build from source: not with --binary, which takes a built binary"
fi
if [ -n "$BINARY" ]; then
    [ -f "$BINARY" ] || die "--binary $BINARY: no such file"
    [ -x "$BINARY" ] || die "--binary $BINARY: not executable"
fi

mkdir -p "$CACHE"
if [ -z "${CONTAINERS_CONF:-}" ]; then
    cat >"$CACHE/containers.conf" <<'EOF'
[containers]
default_ulimits = []

[engine]
runtime = "runc"
EOF
    export CONTAINERS_CONF="$CACHE/containers.conf"
fi
PODMAN=(podman --runtime runc)

# Makes image $1 from a bookworm minbase with the packages in $2 (comma-separated), PATH $3
# and the extra mmdebstrap arguments after them, unless podman already has it; the tarball is
# cached.
base_image() {
    local name=$1 include=$2 path=$3 tarball
    shift 3
    if "${PODMAN[@]}" image exists "$name"; then
        log "$name: present"
        return
    fi
    tarball="$CACHE/$(printf '%s' "$name" | tr '/:' '__').tar"
    if [ ! -s "$tarball" ]; then
        command -v mmdebstrap >/dev/null 2>&1 \
            || die "mmdebstrap is not installed (apt-get install -y mmdebstrap)"
        log "$name: mmdebstrap bookworm (minbase${include:+, $include})"
        # Like the official slim images: no documentation, manual pages or translations,
        # empty package lists (the Dockerfile runs apt-get update).
        # The merged-/usr hook: the layout made directly, without the usrmerge package
        # (which would pull perl in).
        mmdebstrap --variant=minbase --mode=root --format=tar \
            --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
            ${include:+--include="$include"} \
            --dpkgopt='path-exclude=/usr/share/doc/*' \
            --dpkgopt='path-include=/usr/share/doc/*/copyright' \
            --dpkgopt='path-exclude=/usr/share/man/*' \
            --dpkgopt='path-exclude=/usr/share/info/*' \
            --dpkgopt='path-exclude=/usr/share/locale/*' \
            --dpkgopt='path-exclude=/usr/share/lintian/*' \
            --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
            "$@" bookworm "$tarball.part" "$MIRROR" >&2 \
            || { rm -f "$tarball.part"; die "mmdebstrap failed for $name"; }
        mv "$tarball.part" "$tarball"
    fi
    log "$name: podman import $tarball"
    "${PODMAN[@]}" import \
        --change "ENV PATH=$path" \
        --change 'CMD ["bash"]' \
        "$tarball" "$name" >/dev/null
}

STANDARD_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
base_image "$RUNTIME_BASE" "" "$STANDARD_PATH"
[ "$BASE_ONLY" = 1 ] && exit 0

BUILD_ARGS=(--pull=never --format docker --network host --tag "$TAG" --file "$ROOT/Dockerfile")
CONTEXT=$ROOT
if [ -n "$BINARY" ]; then
    # Prebuilt: a context holding only the binary; the build stage is never run.
    CONTEXT=$(mktemp -d "${TMPDIR:-/tmp}/paastis-image.XXXXXX")
    trap 'rm -rf "$CONTEXT"' EXIT
    cp "$BINARY" "$CONTEXT/paastis"
    BUILD_ARGS+=(--build-arg PAASTIS_BINARY_FROM=prebuilt)
else
    command -v rustc >/dev/null 2>&1 || die "rustc is not installed (its toolchain is copied into the builder image)"
    SYSROOT=$(rustc --print sysroot)
    [ -x "$SYSROOT/bin/cargo" ] || die "no cargo in $SYSROOT/bin (install the toolchain with rustup)"
    # The toolchain goes where the official Rust images keep it: /usr/local/cargo/bin is on
    # PATH, and CARGO_HOME there too. Its documentation is left out.
    # Explicit although it is the default: buildah 1.28 (podman 4.3, Debian bookworm) skips
    # a stage named only by an ARG's default value, then cannot find it.
    BUILD_ARGS+=(--build-arg PAASTIS_BINARY_FROM=build --build-arg "PAASTIS_PGO=$PGO")
    if [ "$PGO" = 1 ]; then
        # llvm-profdata of the toolchain copied into the builder (scripts/pgo.sh looks there).
        HOST=$(rustc -vV | sed -n 's/^host: //p')
        PROFDATA=$SYSROOT/lib/rustlib/$HOST/bin/llvm-profdata
        if [ ! -x "$PROFDATA" ] && command -v rustup >/dev/null 2>&1; then
            log "adding the rustup component llvm-tools (llvm-profdata, for the profile-guided build)"
            rustup component add llvm-tools >&2
        fi
        [ -x "$PROFDATA" ] || die "no llvm-profdata in $SYSROOT (rustup component add llvm-tools), or build with --no-pgo"
        # A builder image made from the toolchain before llvm-tools was added lacks it: made again.
        if "${PODMAN[@]}" image exists "$BUILDER_BASE" \
            && ! "${PODMAN[@]}" run --rm --pull=never "$BUILDER_BASE" test -x "/usr/local/cargo/lib/rustlib/$HOST/bin/llvm-profdata"; then
            log "$BUILDER_BASE: made without llvm-profdata; making it again"
            "${PODMAN[@]}" rmi "$BUILDER_BASE" >/dev/null
            rm -f "$CACHE/$(printf '%s' "$BUILDER_BASE" | tr '/:' '__').tar"
        fi
    fi
    # The host's own certificate authorities (/usr/local/share/ca-certificates) go in too, so
    # cargo reaches crates.io from behind the same TLS-inspecting proxy as the host.
    base_image "$BUILDER_BASE" "ca-certificates,gcc,libc6-dev" "/usr/local/cargo/bin:$STANDARD_PATH" \
        --customize-hook="mkdir -p \"\$1/usr/local/cargo\" && tar -C '$SYSROOT' --exclude=./share/doc -cf - . | tar -C \"\$1/usr/local/cargo\" -xf -" \
        --customize-hook='if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then cp /usr/local/share/ca-certificates/*.crt "$1/usr/local/share/ca-certificates/" && chroot "$1" update-ca-certificates; fi'
fi

log "podman build $TAG (${BINARY:+prebuilt from $BINARY}${BINARY:-from source})"
"${PODMAN[@]}" build "${BUILD_ARGS[@]}" "$CONTEXT" >&2
# The stages that only carry the binary leave untagged images (a copy of the binary, or the
# whole target/ of the build stage): nothing reuses them, so they go.
"${PODMAN[@]}" image prune --force --filter label=org.paastis.stage=binary >/dev/null
size=$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$TAG")
log "built $TAG: $size bytes ($((size / 1000000)) MB)"
