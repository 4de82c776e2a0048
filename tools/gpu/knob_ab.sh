#!/bin/bash
# tools/gpu/knob_ab.sh — one device call: `ctest -L gpu`, then `aoq-bench decode` of the 8B shape
# with and without an environment knob, in the same binary and the same call (the way session 5
# measured linear_silu_mul: AOQ_KNOB=AOQ_LINEAR_SILU=0). AOQ_KNOB (required: NAME=VALUE, the
# "knob" runs), AOQ_AB_CFGS (configs), AOQ_AB_BATCH (default 1,8), AOQ_SKIP_TESTS=1. Ship first
# (tools/gpu/ship.sh BUILD NAME with aoqd in AOQ_SHIP_EXTRA) and set AOQ_SHIP=.ship-NAME.
# $OUT/summary.txt: one line per run, knob and default alternating.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
: "${AOQ_KNOB:?set AOQ_KNOB=NAME=VALUE}"
bench=$ship/bin/aoq-bench
export AOQD=$ship/bin/aoqd
if [ "${AOQ_SKIP_TESTS:-0}" != 1 ]; then
  (cd "$ship/ctest" && timeout 280 ctest -L gpu --output-on-failure --timeout 250) > "$out/ctest.log" 2>&1
  grep -E "tests passed|Failed|\*\*\*" "$out/ctest.log" | tail -8
fi
run() { # label cfg [env...]
  local label=$1 cfg=$2 r
  shift 2
  r=$(env "$@" "$bench" decode --device cuda:0 --model llama3.1-8b --synthetic --config "$cfg" \
      --batch "${AOQ_AB_BATCH:-1,8}" --tokens 32 2>&1 | tee -a "$out/decode_full.log" | grep "^row" |
      sed 's/graph=on //; s/ gbps=[^ ]*//; s/ peak_mib.*//' | tr '\n' ' ')
  echo "$label $cfg :: $r" | tee -a "$out/summary.txt"
}
for cfg in ${AOQ_AB_CFGS:-int4wo-128 bf16 int8wo fp8wo mxfp4 nvfp4}; do
  run knob "$cfg" "$AOQ_KNOB"
  run default "$cfg"
done
