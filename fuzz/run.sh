#!/bin/sh
# Builds the fuzz targets if needed and runs each for SECONDS (default 60).
# Exits non-zero if any target finds a crash; reproducers are kept in
# build-fuzz/fuzz/artifacts/<target>/. The growing corpus lives in
# build-fuzz/fuzz/corpus/<target>/ (seeds are regenerated at build time).
# Environment: PM_FUZZ_BUILD (build dir, default <repo>/build-fuzz);
# PM_FUZZ_SEED (libFuzzer's -seed, default 1). A fixed seed keeps CI's short
# runs from the generated seeds close to repeatable (libFuzzer is not fully
# deterministic), so CI checks the inputs that were fuzzed before a change
# landed; pass PM_FUZZ_SEED=0 (libFuzzer picks one) for exploratory runs.
set -eu
secs=${1:-60}
seed=${PM_FUZZ_SEED:-1}
case $secs in '' | *[!0-9]*) echo "usage: $0 SECONDS" >&2; exit 2 ;; esac
root=$(cd "$(dirname "$0")/.." && pwd)
build=${PM_FUZZ_BUILD:-$root/build-fuzz}

if [ ! -f "$build/CMakeCache.txt" ]; then
  CC=clang cmake -S "$root" -B "$build" -DPM_FUZZ=ON
fi
cmake --build "$build" -j2 --target fuzz_png fuzz_jpeg fuzz_webp fuzz_ckpt fuzz_web fuzz_meta fuzz_report_http fuzz_fleet fuzz_seed_corpus

status=0
for t in png jpeg webp ckpt web meta report_http fleet; do
  corpus=$build/fuzz/corpus/$t
  artifacts=$build/fuzz/artifacts/$t
  mkdir -p "$corpus" "$artifacts"
  echo "== fuzz_$t for ${secs}s"
  if ! "$build/fuzz/fuzz_$t" -max_total_time="$secs" -seed="$seed" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -print_final_stats=1 -artifact_prefix="$artifacts/" "$corpus" "$build/fuzz/seeds/$t"; then
    echo "fuzz_$t FAILED: see $artifacts" >&2
    status=1
  fi
done
exit $status
