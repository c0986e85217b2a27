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
# The platform clients load the system's CA store when they start.
[ -e /etc/ssl/certs/ca-certificates.crt ] || need_apt+=(ca-certificates)
if ((${#need_apt[@]})); then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
  else
    echo "missing: ${need_apt[*]} (install them, or run as root)" >&2
    exit 1
  fi
fi

cargo test --locked "$@"
