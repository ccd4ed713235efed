#!/usr/bin/env bash
# Builds every fuzz target in fuzz/ (cargo fuzz, libFuzzer) and runs each for a bounded time,
# starting from its committed corpus (fuzz/corpus/<target>). Fails if any target crashes,
# hangs or trips an assertion; prints each target's executions and rate. RELIABILITY.md says
# what each target checks.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]     (default 20)
#
# Environment:
#   FUZZ_TARGETS    space-separated subset of targets to run (default: all of them)
#   FUZZ_SANITIZER  cargo fuzz --sanitizer (default: none; the fuzzed crates deny unsafe code,
#                   and AddressSanitizer halves the rate; `address` for a run with it)
#   FUZZ_JOBS       cargo build jobs (default: cargo's own)
#
# New inputs libFuzzer finds go to a scratch directory, never into fuzz/corpus, so a run leaves
# the tree as it was; a crash leaves its input in fuzz/artifacts/<target>/ and prints how to
# reproduce it.
set -euo pipefail

secs="${1:-20}"
case "$secs" in '' | *[!0-9]*) echo "usage: $0 [seconds per target]" >&2; exit 2 ;; esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

all_targets=(query_decode sigv4 xml_encode metadata_handler nft_rules)
read -r -a targets <<<"${FUZZ_TARGETS:-${all_targets[*]}}"
sanitizer="${FUZZ_SANITIZER:-none}"
if [[ -n "${FUZZ_JOBS:-}" ]]; then export CARGO_BUILD_JOBS="$FUZZ_JOBS"; fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

# libFuzzer needs nightly rustc flags; without a nightly toolchain, let stable take them.
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  fuzz=(cargo +nightly fuzz)
else
  export RUSTC_BOOTSTRAP=1
  fuzz=(cargo fuzz)
fi

start=$(date +%s)
echo "fuzz: building ${targets[*]} (sanitizer: $sanitizer)"
if [[ "${targets[*]}" == "${all_targets[*]}" ]]; then
  "${fuzz[@]}" build --sanitizer "$sanitizer"
else
  for t in "${targets[@]}"; do "${fuzz[@]}" build --sanitizer "$sanitizer" "$t"; done
fi
built=$(date +%s)
echo "fuzz: built in $((built - start)) s"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
failed=()
printf '%-18s %12s %10s  %s\n' target executions exec/s result
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t" "fuzz/corpus/$t"
  log="$scratch/$t.log"
  rc=0
  "${fuzz[@]}" run --sanitizer "$sanitizer" "$t" "$scratch/$t" "fuzz/corpus/$t" -- \
    -max_total_time="$secs" -timeout=10 -print_final_stats=1 >"$log" 2>&1 || rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n 1 || true)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n 1 || true)
  if [[ -z "$execs" ]]; then
    execs=$(grep -o '^#[0-9]*' "$log" | tr -d '#' | tail -n 1 || true)
  fi
  if [[ $rc -eq 0 ]]; then
    printf '%-18s %12s %10s  %s\n' "$t" "${execs:-?}" "${rate:-?}" ok
  else
    printf '%-18s %12s %10s  %s\n' "$t" "${execs:-?}" "${rate:-?}" "FAILED (exit $rc)"
    failed+=("$t")
    echo "---- $t: last lines of the libFuzzer log" >&2
    grep -v '^#[0-9]' "$log" | tail -n 40 >&2 || true
    artifact=$(grep -o 'fuzz/artifacts/[^ ]*' "$log" | tail -n 1 || true)
    if [[ -n "$artifact" ]]; then
      echo "---- reproduce: ${fuzz[*]} run --sanitizer $sanitizer $t $artifact" >&2
    fi
  fi
done
echo "fuzz: build $((built - start)) s, runs $(($(date +%s) - built)) s"
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
