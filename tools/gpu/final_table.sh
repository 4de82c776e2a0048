#!/bin/bash
# tools/gpu/final_table.sh — one device call: ctest -L gpu, the GEMV table at m=1, and aoq-bench
# decode for the 8B shape: every CUDA format at batch 1 and 64, bf16 and int4wo-128 also at 8 and
# 32 and with graphs off at batch 1. Logs to $OUT. Run tools/gpu/ship.sh BUILD first (carry .ship).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${OUT:-$root/gpu-out}
AOQ_SKIP_TESTS=${AOQ_SKIP_TESTS:-0} AOQ_DECODE=0 OUT=$out "$root/tools/gpu/run_all.sh"
bench=$root/.ship/bin/aoq-bench
export LD_LIBRARY_PATH=$root/.ship/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
dec() { "$bench" decode --device cuda:0 --model llama3.1-8b --synthetic --tokens 32 "$@" 2>&1 \
          | tr '\n' ' ' | sed 's/$/\n/' | tee -a "$out/decode.log"; }
for b in 1 8 32 64; do dec --config bf16 --batch $b; dec --config int4wo-128 --batch $b; done
dec --config bf16 --batch 1 --no-graph
dec --config int4wo-128 --batch 1 --no-graph
for c in int8wo fp8wo fp8dq-row mxfp8 nvfp4 mxfp4; do
  for b in 1 64; do dec --config $c --batch $b; done
done
