#!/usr/bin/env node
// The `paastis` command for npm users: runs the prebuilt binary that npm installed from the
// optional dependency matching this platform (@paastis/<os>-<arch>), with the arguments
// given, and exits as it exits (same code, or the same signal). Signals sent to this process
// are passed on to the binary. It must not download anything: on a platform without a
// prebuilt binary it says so and exits 1.
"use strict";

const { spawn } = require("child_process");
const path = require("path");

// The platforms with a prebuilt binary (Linux with glibc), by Node's `<platform>-<arch>`.
const PACKAGES = {
  "linux-x64": "@paastis/linux-x64",
  "linux-arm64": "@paastis/linux-arm64",
};

// Signals passed on to the binary (SIGHUP reloads its TLS certificate).
const FORWARDED = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"];

const INSTALL_HINT =
  "install with `cargo install --locked paastis` (https://rustup.rs for Rust), " +
  "or download a release tarball";

function fail(message) {
  process.stderr.write(`paastis: ${message}\n`);
  process.exit(1);
}

// Whether this Linux runs musl rather than glibc (Alpine): Node's own report names the glibc
// it runs on, and has no such field on musl.
function isMusl() {
  if (process.platform !== "linux") {
    return false;
  }
  try {
    const report = process.report.getReport();
    return !(report && report.header && report.header.glibcVersionRuntime);
  } catch (_) {
    return false;
  }
}

function binaryPath() {
  const platform = `${process.platform}-${process.arch}`;
  const name = PACKAGES[platform];
  if (!name) {
    fail(`no prebuilt binary for ${platform}; ${INSTALL_HINT}.`);
  }
  if (isMusl()) {
    fail(`no prebuilt binary for ${platform} with musl libc; ${INSTALL_HINT}.`);
  }
  let manifest;
  try {
    manifest = require.resolve(`${name}/package.json`);
  } catch (_) {
    fail(
      `no prebuilt binary for ${platform}: the package ${name} is not installed ` +
        "(were optional dependencies omitted, e.g. --omit=optional?); reinstall paastis " +
        `with its optional dependencies, or ${INSTALL_HINT}.`,
    );
  }
  return path.join(path.dirname(manifest), "bin", "paastis");
}

function main() {
  const binary = binaryPath();
  const child = spawn(binary, process.argv.slice(2), { stdio: "inherit" });

  const forward = (signal) => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill(signal);
    }
  };
  for (const signal of FORWARDED) {
    process.on(signal, forward);
  }

  child.on("error", (error) => {
    fail(`cannot run ${binary}: ${error.message}; ${INSTALL_HINT}.`);
  });

  child.on("exit", (code, signal) => {
    for (const forwarded of FORWARDED) {
      process.removeListener(forwarded, forward);
    }
    if (signal) {
      // Die of the same signal, so the caller sees what the binary saw.
      process.kill(process.pid, signal);
      // Not every signal ends a process: fall back to the shell's convention.
      const number = require("os").constants.signals[signal] || 0;
      setTimeout(() => process.exit(128 + number), 200);
      return;
    }
    process.exit(code === null ? 1 : code);
  });
}

main();
