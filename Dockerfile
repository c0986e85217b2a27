# Paastis container image. See docs/src/docker.md.
#
# From source (the default), with the profile-guided build of scripts/pgo.sh (the one the
# benchmarks measure; about twice the time of a plain build):
#   docker build -t paastis .
# From source, plain `cargo build --release` (no training load, no llvm-tools):
#   docker build --build-arg PAASTIS_PGO=0 -t paastis .
# Around a binary already built on a Debian bookworm (glibc 2.36) or older host; the build
# stage is then skipped:
#   cp target/release/paastis . && docker build --build-arg PAASTIS_BINARY_FROM=prebuilt -t paastis .
# Offline, with podman and base images made from Debian packages: scripts/image.sh.

# Which stage provides /paastis: `build` (compile here) or `prebuilt` (COPY from the context).
ARG PAASTIS_BINARY_FROM=build

FROM docker.io/library/rust:1-slim-bookworm AS build
# 1: profile-guided (scripts/pgo.sh: an instrumented build serves the proxy benchmark's
# load, whose tools it installs with apt-get, then the build with that profile); 0: plain.
ARG PAASTIS_PGO=1
WORKDIR /src
# The manifest's targets (benches are declared in it) and what the crate embeds at compile
# time (migrations); the profile-guided build also runs the benchmark's scripts.
COPY Cargo.toml Cargo.lock build.rs ./
COPY benches benches
COPY migrations migrations
COPY src src
COPY scripts/pgo.sh scripts/bench-proxy.sh scripts/
COPY scripts/bench scripts/bench
RUN case "$PAASTIS_PGO" in \
        1) scripts/pgo.sh /paastis ;; \
        0) cargo build --release --locked --bin paastis && cp target/release/paastis /paastis ;; \
        *) echo "PAASTIS_PGO must be 1 (profile-guided) or 0 (plain release build)" >&2; exit 2 ;; \
    esac
# The release profile's line tables (debug = "line-tables-only") are three quarters of the
# binary: not in the image. Symbols stay, so a backtrace still names its functions.
RUN strip --strip-debug /paastis
# Marks the images of the stages that only carry the binary: scripts/image.sh prunes them
# after a build (and with them the cargo step's, which holds all of target/).
LABEL org.paastis.stage=binary

FROM scratch AS prebuilt
LABEL org.paastis.stage=binary
COPY paastis /paastis

FROM ${PAASTIS_BINARY_FROM} AS binary

FROM docker.io/library/debian:bookworm-slim
# tini as PID 1: it forwards SIGTERM to paastis and reaps the orphans of the commands paastis
# runs (`process` apps, hooks). ca-certificates: the platforms' APIs over HTTPS.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates tini \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
    && useradd --uid 10001 --user-group --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin paastis \
    && mkdir -p /data /etc/paastis \
    && chown paastis:paastis /data
COPY --from=binary /paastis /usr/local/bin/paastis

# The working directory is the volume: the default `database.url` (sqlite://paastis.db) is
# /data/paastis.db, and a `.env` there is read as on any host. A configuration file mounted
# at /etc/paastis/paastis.yml is used when PAASTIS_CONFIG is not set; without either, the
# engine runs from its environment alone (PORT, DATABASE_URL, PAASTIS_* variables).
WORKDIR /data
VOLUME ["/data"]
USER paastis:paastis
# The proxy (PORT or PAASTIS_LISTEN change it). The admin listener stays on the container's
# loopback (127.0.0.1:3001, for the health check); reach the dashboard and the API through
# the proxy port with PAASTIS_ADMIN__HOST and a token (see docs/src/docker.md).
EXPOSE 3000

# No curl in a slim image: bash's /dev/tcp. HEALTHCHECK_PORT and HEALTHCHECK_HOST point it
# elsewhere, e.g. at the proxy port and the admin host when the admin listener is off.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${HEALTHCHECK_PORT:-3001} && printf 'GET /health HTTP/1.0\\r\\nHost: %s\\r\\n\\r\\n' \"${HEALTHCHECK_HOST:-localhost}\" >&3 && read -r _ code _ <&3 && [ \"$code\" = 200 ]"]

# SIGTERM (docker stop, podman stop): paastis stops accepting, drains in-flight requests
# (proxy.drain_timeout, 30s by default), stops what it started, and exits 0. Give
# `docker stop -t` more than the drain timeout.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--", "/bin/sh", "-c", "if [ -z \"${PAASTIS_CONFIG:-}\" ] && [ -f /etc/paastis/paastis.yml ]; then export PAASTIS_CONFIG=/etc/paastis/paastis.yml; fi; exec /usr/local/bin/paastis \"$@\"", "paastis"]
CMD ["serve"]
