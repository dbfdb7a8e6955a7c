#!/usr/bin/env bash
# Runs every libFuzzer target in DIR for SECONDS each, starting from the seed corpus in
# tests/fuzz/corpus/<target without the fuzz_ prefix>/. New inputs go to a scratch copy, so the
# committed corpus only changes on purpose. A crash fails the run and leaves its input in
# tests/fuzz/ (crash-*), to be turned into a regression seed.
set -euo pipefail
dir=$1
seconds=${2:-30}
status=0
for bin in "$dir"/fuzz_*; do
    [ -x "$bin" ] || continue
    name=$(basename "$bin")
    seeds="tests/fuzz/corpus/${name#fuzz_}"
    work=$(mktemp -d)
    [ -d "$seeds" ] && cp -r "$seeds"/. "$work"/
    echo "fuzz: $name for ${seconds}s (seeds: $(ls "$work" | wc -l))"
    if ! "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -artifact_prefix=tests/fuzz/ -print_final_stats=1 "$work" >"$work.log" 2>&1; then
        echo "fuzz: $name FAILED" >&2
        tail -40 "$work.log" >&2
        status=1
    else
        grep -E 'stat::number_of_executed_units|stat::peak_rss_mb' "$work.log" | sed 's/^/  /'
    fi
    rm -rf "$work" "$work.log"
done
exit $status
