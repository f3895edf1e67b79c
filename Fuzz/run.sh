#!/usr/bin/env bash
# Builds the fuzz targets and runs each for SECONDS, at most two at a time (the machine has
# two cores). Usage: Fuzz/run.sh SECONDS [TARGET...]; `make fuzz SECONDS=N [TARGET=x]` calls it.
# Corpora grow in Fuzz/corpus/TARGET (kept between runs), crashes land in Fuzz/crashes/TARGET,
# logs in Fuzz/logs/TARGET.log; the summary gives executions, coverage and features per target.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(safetensors bundle onnx hdf5 jpeg png pth)
jobs=${FUZZ_JOBS:-2}

# One -sanitize flag with both: swiftc lets a later -sanitize= replace an earlier one, and
# SwiftPM's --sanitize passes them separately (coverage would silently be lost). lld: gold
# fails with an internal error on these ASan objects.
(cd Fuzz && swift build -c release -Xswiftc -sanitize=fuzzer,address -Xcc -fsanitize=fuzzer-no-link,address -Xswiftc -use-ld=lld)
bin=Fuzz/.build/release

run_one() {
    local t=$1
    Fuzz/seeds.sh "$t" >/dev/null
    mkdir -p "Fuzz/corpus/$t" "Fuzz/crashes/$t" Fuzz/logs
    # -rss_limit_mb: ASan's shadow memory included; idlevit itself must stay far below 1 GB.
    "$bin/fuzz-$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2560 -max_len=1048576 \
        -artifact_prefix="Fuzz/crashes/$t/" -print_final_stats=1 \
        "Fuzz/corpus/$t" "Fuzz/seeds/$t" >"Fuzz/logs/$t.log" 2>&1 || true
}

running=0
for t in "${targets[@]}"; do
    run_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then wait -n; running=$((running - 1)); fi
done
wait

printf '%-12s %12s %8s %8s %8s %s\n' target executions cov ft corpus crashes
for t in "${targets[@]}"; do
    log=Fuzz/logs/$t.log
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || echo "?")
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    cov=$(echo "$last" | grep -o 'cov: [0-9]*' | grep -o '[0-9]*' || echo "?")
    ft=$(echo "$last" | grep -o 'ft: [0-9]*' | grep -o '[0-9]*' || echo "?")
    corpus=$(ls "Fuzz/corpus/$t" | wc -l)
    crashes=$(ls "Fuzz/crashes/$t" | wc -l)
    printf '%-12s %12s %8s %8s %8s %s\n' "$t" "$execs" "$cov" "$ft" "$corpus" "$crashes"
done
