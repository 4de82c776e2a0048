#!/bin/bash
# 8 client processes at once generate and matmul against one daemon; every result equals the
# single-client result for the same seed; status shows one weight copy and 8 tenants.
. "$(dirname "$0")/lib.sh"
start_daemon
for i in $(seq 0 7); do
  "$E2E_CLIENT" work "tenant$i" $((100 + i)) >"$T/ref$i" || fail "single client $i"
done
W0=$(status_json | jq '.models[0].weight_bytes')
STEPS0=$(status_json | jq '.scheduler.steps')
pids=()
for i in $(seq 0 7); do
  "$E2E_CLIENT" work "tenant$i" $((100 + i)) >"$T/out$i" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "a concurrent client failed"; done
for i in $(seq 0 7); do
  cmp -s "$T/ref$i" "$T/out$i" || { diff "$T/ref$i" "$T/out$i" >&2; fail "client $i differs from the single-client result"; }
done
# the 8 concurrent generations really shared steps
S=$(status_json)
echo "$S" | jq -e '.models | length == 1' >/dev/null || fail "expected one model"
echo "$S" | jq -e '.models[0].weight_copies == 1' >/dev/null || fail "weight copies != 1"
[ "$(echo "$S" | jq '.models[0].weight_bytes')" = "$W0" ] || fail "weight bytes changed"
echo "$S" | jq -e '(.tenants | length == 8) and ([.tenants[] | select(.name | startswith("tenant"))] | length == 8)' >/dev/null || fail "expected 8 tenants"
echo "$S" | jq -e '[.tenants[] | select(.name | startswith("tenant")) | .tokens] | all(. > 0)' >/dev/null || fail "a tenant generated nothing"
echo "$S" | jq -e '.memory.shared_buffers == 0 and .daemon.sessions == 0' >/dev/null || fail "buffers or sessions left behind"
H=$("$AOQCTL" status); echo "$H" | grep -q "^# Tenants" || fail "human status lacks sections"; echo "$H" | head -n 12
head -n 2 "$T/out0"
echo "$S" | jq -c '{weights: .models[0].weight_bytes, copies: .models[0].weight_copies, tenants: [.tenants[].name], steps: .scheduler.steps, p50: .scheduler.step_ms_p50}'
echo "steps: 8 clients one after another: $STEPS0, the same 8 at once: $(( $(echo "$S" | jq '.scheduler.steps') - STEPS0 ))"
stop_daemon
echo PASS
