#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what the tests need, then cargo test.
# The tests start real local processes (the `process` provider runs tests/support/upstream.py
# with python3), fake platform APIs and apps as real HTTP servers, and listen on 127.0.0.1
# only.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
command -v sh >/dev/null 2>&1 || need_apt+=(dash)
# Some tests drive the proxy with curl (HTTP/1.1 and HTTP/2 prior knowledge).
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
# HTTP/2 load with many streams (h2load), and the waiting page in a real headless browser.
command -v h2load >/dev/null 2>&1 || need_apt+=(nghttp2-client)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
# The cluster tests start throwaway Redis servers of their own (redis-server on a free port).
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
# The container image is built and run by podman (runc as its runtime), from base images
# made from Debian packages by mmdebstrap (scripts/image.sh; no registry is reached).
command -v podman >/dev/null 2>&1 || need_apt+=(podman)
command -v runc >/dev/null 2>&1 || need_apt+=(runc)
command -v mmdebstrap >/dev/null 2>&1 || need_apt+=(mmdebstrap)
command -v newuidmap >/dev/null 2>&1 || need_apt+=(uidmap)
# The docker provider is tested against podman's Docker-compatible API, with containers made
# from a busybox-static root filesystem (`busybox httpd` serves them).
dpkg -s busybox-static >/dev/null 2>&1 || need_apt+=(busybox-static)
# Paastis behind real nginx (auth_request) and Caddy (forward_auth), started by the tests.
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx)
command -v caddy >/dev/null 2>&1 || need_apt+=(caddy)
# The npm package is packed, installed and run with Node.js and npm.
command -v npm >/dev/null 2>&1 || need_apt+=(nodejs npm)
# The platform clients load the system's CA store when they start.
[ -e /etc/ssl/certs/ca-certificates.crt ] || need_apt+=(ca-certificates)
# The store tests start a throwaway PostgreSQL server of their own (initdb + postgres; as the
# `postgres` user, which the package creates, when run as root). Debian's server binaries
# live in /usr/lib/postgresql/<version>/bin.
if { ! command -v initdb >/dev/null 2>&1 && ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; } ||
  { [ "$(id -u)" = 0 ] && ! id -u postgres >/dev/null 2>&1; }; then
  need_apt+=(postgresql)
fi
if ((${#need_apt[@]})); then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    # Install without starting services (the postgresql package would start a server on
    # port 5432): policy-rc.d answering 101 forbids it, for the time of the install.
    policy=/usr/sbin/policy-rc.d
    own_policy=0
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\nexit 101\n' >"$policy"
      chmod +x "$policy"
      own_policy=1
    fi
    installed=0
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" && installed=1
    if ((own_policy)); then rm -f "$policy"; fi
    ((installed)) || exit 1
  else
    echo "missing: ${need_apt[*]} (install them, or run as root)" >&2
    exit 1
  fi
fi

# The admin API is checked against its OpenAPI document by schemathesis (PyPI).
if ! command -v schemathesis >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore schemathesis
  if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
  command -v schemathesis >/dev/null 2>&1 || { echo "schemathesis did not install" >&2; exit 1; }
fi

# The configuration's JSON Schema is checked with jsonschema (PyPI).
if ! python3 -c 'import jsonschema' >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore jsonschema
fi

cargo test --locked "$@"
