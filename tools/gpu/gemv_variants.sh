#!/bin/bash
# tools/gpu/gemv_variants.sh — one device call that compares the GEMV variants of
# kernels/gpu/linear_gemv.h (AOQ_GEMV_VARIANT, see gv_variant there) on the gate+up and down
# shapes at m = 1, 8, 16, with a hash of y per row of the table (equal hashes = the same bits as
# variant 0, session 2's kernel), then runs test_cuda_linear / _invariant / _gemm on the default
# and on AOQ_GEMV_VARIANT=${AOQ_GEMV_TEST_VARIANT:-1}, and the int4wo-128 decode step (batch 1
# and 16) with variant 0 and that variant. If the ship holds bin/aoq-bench-base (another build's
# aoq-bench, e.g. of the merge base), its table is taken in the same call. Logs to $OUT.
# Ship first: AOQ_SHIP_TESTS="test_cuda_linear test_cuda_invariant test_cuda_gemm"
#   tools/gpu/ship.sh BUILD NAME, and set AOQ_SHIP=.ship-NAME. A copy of this script placed in the
#   ship folder also runs from there (bash .ship-NAME/gemv_variants.sh), for a checkout without it.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ -f "$here/lib.sh" ]; then
  . "$here/lib.sh"
else # inside the ship folder
  ship=$here out=${OUT:-$here/out}
  mkdir -p "$out"
  [ -d "$ship/bin" ] || tar -C "$ship" -xf "$ship"/bin.tar.*
  export LD_LIBRARY_PATH=$ship/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
bench=$ship/bin/aoq-bench
cfgs=${AOQ_GEMV_CONFIGS:-int4wo-128,mxfp4,nvfp4,int8wo,fp8wo,mxfp8,bf16}
shapes=gate+up,down
tv=${AOQ_GEMV_TEST_VARIANT:-1}
t0=$(date +%s)
elapsed() { echo "elapsed $(($(date +%s) - t0)) s"; }
nvidia-smi --query-gpu=name,clocks.max.sm,clocks.max.mem --format=csv >"$out/gpu.txt" 2>&1
for v in ${AOQ_GEMV_VARIANTS:-1 0 2 3 4}; do
  echo "== AOQ_GEMV_VARIANT=$v" >>"$out/gemv.log"
  AOQ_GEMV_VARIANT=$v timeout 60 "$bench" gemv --config "$cfgs" --shape "$shapes" --m 1,8,16 \
    --hash >>"$out/gemv.log" 2>&1
  elapsed >>"$out/gemv.log"
done
for v in 5 6; do # register budgets of the two-n-tile ring (m = 9..16)
  echo "== AOQ_GEMV_VARIANT=$v" >>"$out/gemv.log"
  AOQ_GEMV_VARIANT=$v timeout 40 "$bench" gemv --config "$cfgs" --shape "$shapes" --m 16 \
    --hash >>"$out/gemv.log" 2>&1
done
echo "== AOQ_GEMV_VARIANT=1 AOQ_GEMV_FMA=0 (ring instead of the FMA GEMV)" >>"$out/gemv.log"
AOQ_GEMV_VARIANT=1 AOQ_GEMV_FMA=0 timeout 30 "$bench" gemv --config bf16,int8wo \
  --shape "$shapes" --m 1,2 --hash >>"$out/gemv.log" 2>&1
elapsed >>"$out/gemv.log"
if [ -x "$ship/bin/aoq-bench-base" ]; then
  for c in ${cfgs//,/ }; do
    timeout 30 "$ship/bin/aoq-bench-base" gemv --config "$c" --m 1,8,16 >>"$out/base.log" 2>&1
  done
  elapsed >>"$out/base.log"
fi
for v in default "$tv"; do
  for t in test_cuda_linear test_cuda_invariant test_cuda_gemm; do
    echo "== $t AOQ_GEMV_VARIANT=$v" >>"$out/tests.log"
    if [ "$v" = default ]; then
      timeout 120 "$ship/bin/$t" >>"$out/tests.log" 2>&1
    else
      AOQ_GEMV_VARIANT=$v timeout 120 "$ship/bin/$t" >>"$out/tests.log" 2>&1
    fi
    echo "rc=$? $(elapsed)" >>"$out/tests.log"
  done
done
for v in 0 "$tv"; do
  echo "== decode AOQ_GEMV_VARIANT=$v" >>"$out/decode.log"
  AOQ_GEMV_VARIANT=$v timeout 45 "$bench" decode --device cuda:0 --model llama3.1-8b --synthetic \
    --config int4wo-128 --batch 1,16 --tokens 32 >>"$out/decode.log" 2>&1
  elapsed >>"$out/decode.log"
done
grep -E "^(==|int4wo-128|mxfp4|nvfp4) " "$out/gemv.log" | head -60
