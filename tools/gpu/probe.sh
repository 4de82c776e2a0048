#!/bin/bash
# tools/gpu/probe.sh — one device call that answers "where does a GEMV / a decode step spend its
# time": gpu tests, the SASS of the decode GEMV kernels (cuobjdump), Nsight Compute sections of
# the m = 1 GEMVs (issue, stalls, pipes, DRAM), and per-kernel times of a batch-1 decode step.
# Ship first (tools/gpu/ship.sh) and set AOQ_SHIP. AOQ_PROBE_CFGS: configs for the GEMV sections.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
bench=$ship/bin/aoq-bench
if [ "${AOQ_SKIP_TESTS:-0}" != 1 ]; then
  (cd "$ship/ctest" && ctest -L gpu --output-on-failure --timeout 300) > "$out/ctest.log" 2>&1
  tail -15 "$out/ctest.log"
fi
# SASS of the GEMV kernels (the fatbin's sm_90a cubin), one file
cuobjdump -sass "$bench" 2>/dev/null | awk '
  /Function :/ { keep = ($0 ~ /k_gemv_mma/ && $0 ~ /Li1ELi4E|Li1ELi16E/) || ($0 ~ /k_gemvI/ && $0 ~ /Li1ELi1E/) }
  keep' > "$out/sass_gemv.txt"
grep -c "Function" "$out/sass_gemv.txt"
# Nsight Compute: one gate+up and one down GEMV at m = 1 per config
for cfg in ${AOQ_PROBE_CFGS:-int4wo-128 mxfp4 int8wo bf16}; do
  for shp in gate+up down; do
    ncu --clock-control none --kernel-name regex:k_gemv --launch-skip 3 --launch-count 1 \
      --section SpeedOfLight --section WarpStateStats --section SchedulerStats \
      --section InstructionStats --section ComputeWorkloadAnalysis --section Occupancy \
      --section LaunchStats --section MemoryWorkloadAnalysis \
      "$bench" gemv --device cuda:0 --config "$cfg" --shape "$shp" --m 1 --repeat 5 \
      >> "$out/ncu_gemv.txt" 2>&1
  done
done
grep -E "Memory Throughput|DRAM Throughput|Issue Slots Busy|Executed Ipc A|No Eligible|Duration" \
  "$out/ncu_gemv.txt" | head -60
# per-kernel device times of a batch-1 step (graphs off), then the plain timed runs
for cfg in ${AOQ_PROBE_DECODE:-int4wo-128 int8wo}; do
  "$bench" decode --device cuda:0 --model llama3.1-8b --synthetic --config "$cfg" --batch 1 \
    --tokens 32 2>&1 | tee -a "$out/decode_plain.log" | tail -3
  ncu --clock-control none --metrics gpu__time_duration.sum --csv \
    "$bench" decode --device cuda:0 --model llama3.1-8b --synthetic --config "$cfg" --batch 1 \
    --tokens 2 --no-graph > "$out/ncu_step_$cfg.csv" 2> /dev/null
done
ls -la "$out"
