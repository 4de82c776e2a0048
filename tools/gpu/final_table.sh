#!/bin/bash
# tools/gpu/final_table.sh — one device call for the closing table of the CUDA issue: ctest -L gpu,
# the GEMV table, and `aoq-bench decode` of the 8B shape for every format at batch 1, 8, 16, 32
# and 64 with graphs on and off (one load per format), then `aoq-bench prefill` (2048-token TTFT
# against cuBLAS GEMMs) if shipped and AOQ_SKIP_PREFILL is not 1. Logs to $OUT; the `row:`
# lines of decode.log are the table.
# Ship first: tools/gpu/ship.sh BUILD NAME, and set AOQ_SHIP=.ship-NAME.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
AOQ_DECODE=0 OUT=$out "$root/tools/gpu/run_all.sh"
bench=$ship/bin/aoq-bench
for c in ${AOQ_TABLE_CONFIGS:-bf16 int8wo fp8wo int4wo-128 fp8dq-row mxfp8 nvfp4 mxfp4}; do
  "$bench" decode --device cuda:0 --model llama3.1-8b --synthetic --tokens 32 --config "$c" \
    --batch "${AOQ_TABLE_BATCHES:-1,8,16,32,64}" --graph "${AOQ_TABLE_GRAPH:-both}" \
    >>"$out/decode.log" 2>&1
  grep "^row: $c " "$out/decode.log" || tail -3 "$out/decode.log"
done
usage=$("$bench" 2>&1) # captured first: with pipefail, grep -q closing the pipe fails the test
if [ "${AOQ_SKIP_PREFILL:-0}" != 1 ] && grep -q prefill <<< "$usage"; then
  for c in ${AOQ_PREFILL_CONFIGS:-bf16 int8wo fp8wo int4wo-128 fp8dq-row mxfp8 nvfp4 mxfp4}; do
    "$bench" prefill --device cuda:0 --model llama3.1-8b --synthetic --config "$c" \
      ${AOQ_PREFILL_ARGS:-} >>"$out/prefill.log" 2>&1
  done
  grep -iE "config|ttft|ratio|tok" "$out/prefill.log" | head -80
fi
