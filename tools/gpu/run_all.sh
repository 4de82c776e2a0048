#!/bin/bash
# tools/gpu/run_all.sh — the one command of a device call (run tool): runs the gpu-labelled tests
# with ctest and the GEMV benchmark from .ship/ (or $AOQ_SHIP, tools/gpu/ship.sh), writing
# logs to $OUT (or ./gpu-out). AOQ_DECODE=1 also runs `aoq-bench decode` if it was shipped.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,clocks.max.mem --format=csv \
  > "$out/gpu.txt" 2>&1
cat "$out/gpu.txt"
if [ "${AOQ_SKIP_TESTS:-0}" != 1 ]; then
  (cd "$ship/ctest" && ctest -L gpu --output-on-failure --timeout 300) 2>&1 \
    | tee "$out/ctest.log" | tail -40
fi
bench=$ship/bin/aoq-bench
if [ "${AOQ_SKIP_GEMV:-0}" != 1 ]; then
  "$bench" gemv --device cuda:0 --config "${AOQ_GEMV_CONFIG:-all}" --m "${AOQ_GEMV_M:-1}" 2>&1 \
    | tee "$out/gemv.log"
fi
# (the usage text is captured first: with pipefail, grep -q closing the pipe early made the
# SIGPIPE'd aoq-bench fail the test and skip the decode runs)
usage=$("$bench" 2>&1)
if [ "${AOQ_DECODE:-0}" = 1 ] && grep -q decode <<< "$usage"; then
  for cfg in ${AOQ_DECODE_CONFIGS:-bf16 int8wo int4wo-128 fp8dq-row mxfp8 nvfp4 mxfp4}; do
    for b in ${AOQ_DECODE_BATCHES:-1 8 32 64}; do
      "$bench" decode --device cuda:0 --model llama3.1-8b --synthetic --config "$cfg" \
        --batch "$b" 2>&1 | tee -a "$out/decode.log"
    done
  done
fi
