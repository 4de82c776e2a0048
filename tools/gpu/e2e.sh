#!/bin/bash
# tools/gpu/e2e.sh — the daemon's end-to-end suite (tests/e2e/test_*.sh: real aoqd and client
# processes) with the daemon on cuda:0, on the GPU machine. Expects $AOQ_SHIP (default .ship)
# made by `AOQ_SHIP_EXTRA="BUILD/daemon/aoqd BUILD/tools/aoqctl/aoqctl BUILD/tests/e2e/e2e_client
# /usr/bin/jq /lib/x86_64-linux-gnu/libjq.so.1 /lib/x86_64-linux-gnu/libonig.so.5" tools/gpu/ship.sh
# BUILD NAME` (jq is used only where the machine lacks one). Logs to $OUT/e2e.log (one file: the
# device call brings back at most 8).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
# jq: the machine's own if it has one; else the shipped binary with its libraries (shipped in bin/,
# kept out of LD_LIBRARY_PATH so that they never shadow the machine's)
if ! command -v jq >/dev/null; then
  mkdir -p "$ship/jq"
  printf '#!/bin/sh\nLD_LIBRARY_PATH=%s exec %s "$@"\n' "$ship/bin" "$ship/bin/jq" > "$ship/jq/jq"
  chmod +x "$ship/jq/jq"
  export PATH=$ship/jq:$PATH
fi
export AOQD=$ship/bin/aoqd AOQCTL=$ship/bin/aoqctl E2E_CLIENT=$ship/bin/e2e_client
export RUN=$ship/bin/aoq-run BENCH=$ship/bin/aoq-bench AOQ_E2E_DEVICE=cuda:0
# The suite asserts that batched results equal single-client ones: on a GPU that holds with
# --batch-invariant (the default kernels pick paths and splits by batch size, as every GPU server
# does, so a sampled token can flip where two logits sit within bf16 rounding).
export AOQ_E2E_DAEMON_ARGS=${AOQ_E2E_DAEMON_ARGS---batch-invariant}
pass=0 failed=""
for t in ${AOQ_E2E_TESTS:-multi_client kill_client hostile_input reconfigure security zero_copy \
                           quota_drain}; do
  echo "===== $t" >>"$out/e2e.log"
  if timeout 240 bash "$root/tests/e2e/test_$t.sh" >"$out/e2e_one.log" 2>&1; then
    pass=$((pass + 1)); echo "e2e $t (cuda:0): passed"
  else
    failed="$failed $t"; echo "e2e $t (cuda:0): FAILED"; grep -v "level=info" "$out/e2e_one.log" | tail -5
  fi
  cat "$out/e2e_one.log" >>"$out/e2e.log" && rm -f "$out/e2e_one.log"
done
echo "e2e on cuda:0: $pass passed, failed:${failed:- none}"
