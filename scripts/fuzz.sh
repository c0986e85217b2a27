#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ (cargo-fuzz, nightly toolchain) for SECONDS each (default
# 60), starting from the committed corpus (fuzz/corpus/<target>/); fails when any target
# finds a crash (a panic, a failed check) or an input slower than 30 s. What the fuzzer
# learns goes to a temporary folder: the committed corpus is left as it is.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# A failing input is kept in fuzz/artifacts/<target>/; replay it with
#   cargo +nightly fuzz run -s none <target> fuzz/artifacts/<target>/<file>
# See docs/src/testing.md.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
shift || true
toolchain="${FUZZ_TOOLCHAIN:-nightly}"

if ! cargo +"$toolchain" --version >/dev/null 2>&1; then
  echo "fuzz: the $toolchain toolchain is missing (rustup toolchain install $toolchain)" >&2
  exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install --locked cargo-fuzz
fi
# The fuzz crate's lock file must be up to date (cargo fuzz has no --locked of its own).
cargo +"$toolchain" metadata --locked --format-version 1 --manifest-path fuzz/Cargo.toml >/dev/null

targets=("$@")
if ((${#targets[@]} == 0)); then
  mapfile -t targets < <(cargo +"$toolchain" fuzz list)
fi

# No sanitizer: the crate is safe Rust, and AddressSanitizer would double the build and
# halve the runs. Release with debug assertions (cargo fuzz's default): overflows panic.
started=$SECONDS
cargo +"$toolchain" fuzz build -s none
echo "fuzz: built in $((SECONDS - started)) s"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
passed=0
failed=()
for target in "${targets[@]}"; do
  mkdir -p "$work/$target"
  log="$work/$target.log"
  if cargo +"$toolchain" fuzz run -s none "$target" "$work/$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -timeout=30 -rss_limit_mb=4096 >"$log" 2>&1; then
    runs="$(grep -a -o 'Done [0-9]* runs in [0-9]* second' "$log" | tail -1 || true)"
    echo "fuzz: $target: ${runs:-done}s, no crash"
    passed=$((passed + 1))
  else
    echo "fuzz: $target FAILED:" >&2
    # The panic and the failing input, without libFuzzer's progress nor the backtrace.
    grep -a -v -E '^#[0-9]+|^ +[0-9]+: |^ +at |^INFO: ' "$log" | tail -n 40 >&2
    failed+=("$target")
  fi
done

echo "fuzz: ${#targets[@]} targets in $((SECONDS - started)) s"
echo "fuzz: $passed passed, ${#failed[@]} failed"
if ((${#failed[@]})); then
  echo "fuzz: failing targets: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
