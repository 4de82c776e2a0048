#!/bin/bash
# tools/gpu/profile_decode.sh — per-kernel device times of `aoq-bench decode` under Nsight Compute
# (graphs off, so every kernel is its own launch), one CSV per config x batch in $OUT, plus the
# plain timed runs (graphs on) for comparison. Ship first: tools/gpu/ship.sh BUILD NAME, and set
# AOQ_SHIP=.ship-NAME. Analyse here with tools/gpu/ncu_summary.py.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
bench=$ship/bin/aoq-bench
for cb in ${AOQ_PROFILE_RUNS:-bf16:1 bf16:64 int4wo-128:1 int4wo-128:64}; do
  cfg=${cb%%:*} b=${cb##*:}
  "$bench" decode --device cuda:0 --model llama3.1-8b --synthetic --config "$cfg" --batch "$b" \
    --tokens 16 2>&1 | tee -a "$out/decode_plain.log"
  ncu --clock-control none --metrics gpu__time_duration.sum --csv \
    "$bench" decode --device cuda:0 --model llama3.1-8b --synthetic --config "$cfg" --batch "$b" \
    --tokens 2 --no-graph > "$out/ncu_${cfg}_b$b.csv" 2> "$out/ncu_${cfg}_b$b.err"
  tail -2 "$out/ncu_${cfg}_b$b.err"
done
