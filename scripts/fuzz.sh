#!/usr/bin/env bash
# Runs every fuzz target for N seconds (default 60), one at a time with one job, starting from the
# committed seeds in fuzz/corpus/<target> and growing a working corpus in fuzz/corpus-run/<target>.
# Needs cargo-fuzz; on a stable toolchain RUSTC_BOOTSTRAP=1 lets it use the nightly-only flags.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# Exit status is non-zero if any target finds a crash (its input is left in fuzz/artifacts/<target>/;
# copy it to fuzz/corpus/<target>/crash-<name> so tests/hostile_fuzz_replay.rs keeps it).
set -euo pipefail
seconds="${1:-60}"
shift || true
cd "$(dirname "$0")/../fuzz"
export RUSTC_BOOTSTRAP="${RUSTC_BOOTSTRAP:-1}"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi
cargo fuzz build -O
status=0
for target in "${targets[@]}"; do
    mkdir -p "corpus-run/$target"
    echo "== $target: ${seconds}s"
    # -rss_limit_mb: a target that needs more than this on a <= 1 MiB input has a memory bug.
    if ! cargo fuzz run -O "$target" "corpus-run/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -jobs=1 -workers=1 -rss_limit_mb=1024 -timeout=10 \
        -print_final_stats=1 >"corpus-run/$target.log" 2>&1; then
        echo "!! $target found a crash or hang: see fuzz/corpus-run/$target.log and fuzz/artifacts/$target/"
        status=1
    fi
    # With -jobs=1 libFuzzer runs one child that logs to fuzz-0.log.
    if [ -f fuzz-0.log ]; then mv fuzz-0.log "corpus-run/$target.log"; fi
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb|^#[0-9]+.*DONE" "corpus-run/$target.log" || true
    tail -n 3 "corpus-run/$target.log" | grep -E "cov:|ft:" || true
done
exit $status
