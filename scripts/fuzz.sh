#!/usr/bin/env bash
# Runs each fuzz target (fuzz/: event, sift, rules) for FUZZ_SECONDS
# (default 60) with libFuzzer and AddressSanitizer. Installs a nightly
# toolchain and a pinned cargo-fuzz when missing. Usage:
#
#   scripts/fuzz.sh              # every target
#   FUZZ_SECONDS=600 scripts/fuzz.sh event
#
# New inputs go to target/fuzz/corpus/<target>/ (the committed seeds in
# fuzz/corpus/ stay small); a crash leaves its input in
# target/fuzz/artifacts/<target>/ and fails the script. fuzz/README.md says
# how to replay, minimize and keep one.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-60}"
cargo_fuzz_version="0.13.1"
if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  targets=(event sift rules)
fi

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version 2>/dev/null | grep -qF "$cargo_fuzz_version"; then
  cargo install cargo-fuzz --version "$cargo_fuzz_version" --locked
fi

build_dir="target/fuzz/build"
cargo +nightly fuzz build --target-dir "$build_dir"
for target in "${targets[@]}"; do
  mkdir -p "target/fuzz/corpus/$target" "target/fuzz/artifacts/$target"
  extra=()
  if [ -f "fuzz/$target.dict" ]; then
    extra+=("-dict=fuzz/$target.dict")
  fi
  printf '\n--> %s for %ss\n' "$target" "$seconds"
  # The stack of a server worker thread (2 MiB): deep input must not need
  # more than the server has.
  (
    ulimit -s 2048
    cargo +nightly fuzz run "$target" --target-dir "$build_dir" \
      "target/fuzz/corpus/$target" "fuzz/corpus/$target" -- \
      -max_total_time="$seconds" -max_len=65536 -timeout=10 \
      -artifact_prefix="target/fuzz/artifacts/$target/" "${extra[@]}"
  )
done
