#!/bin/bash
# tools/gpu/e2e.sh — the daemon's end-to-end suite (tests/e2e/test_*.sh: real aoqd and client
# processes) with the daemon on cuda:0, on the GPU machine. Expects $AOQ_SHIP (default .ship)
# made by `AOQ_SHIP_EXTRA="BUILD/aoqd BUILD/aoqctl BUILD/e2e_client BUILD/aoq-run" tools/gpu/ship.sh
# BUILD NAME`, with jq shipped when the machine lacks it. Logs to $OUT/e2e/.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${OUT:-$root/gpu-out}/e2e
ship=$root/${AOQ_SHIP:-.ship}
mkdir -p "$out"
[ -d "$ship/bin" ] || tar -C "$ship" -xf "$ship"/bin.tar.*
export LD_LIBRARY_PATH=$ship/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PATH=$PATH:$ship/bin
export AOQD=$ship/bin/aoqd AOQCTL=$ship/bin/aoqctl E2E_CLIENT=$ship/bin/e2e_client
export RUN=$ship/bin/aoq-run BENCH=$ship/bin/aoq-bench AOQ_E2E_DEVICE=cuda:0
pass=0 failed=""
for t in ${AOQ_E2E_TESTS:-multi_client kill_client hostile_input reconfigure security zero_copy \
                           quota_drain}; do
  if timeout 240 bash "$root/tests/e2e/test_$t.sh" >"$out/$t.log" 2>&1; then
    pass=$((pass + 1)); echo "e2e $t (cuda:0): passed"
  else
    failed="$failed $t"; echo "e2e $t (cuda:0): FAILED"; tail -5 "$out/$t.log"
  fi
done
echo "e2e on cuda:0: $pass passed, failed:${failed:- none}"
