#!/bin/bash
# A client SIGKILLed mid-generation: the others finish correctly, its sequence, KV pages and
# shared buffer are freed (status shows it), and the daemon keeps serving.
. "$(dirname "$0")/lib.sh"
start_daemon
"$E2E_CLIENT" work ref 7 >"$T/ref" || fail "reference client"
TOTAL=$(status_json | jq '.models[0].kv_pages_total')
"$E2E_CLIENT" slowgen victim >"$T/victim.out" &
VICTIM=$!
for _ in $(seq 1 200); do grep -q '^tok' "$T/victim.out" 2>/dev/null && break; sleep 0.05; done
grep -q '^tok' "$T/victim.out" || fail "the victim never started generating"
pids=()
for i in 1 2 3; do "$E2E_CLIENT" work ref 7 >"$T/out$i" & pids+=($!); done
S=$(status_json)
echo "$S" | jq -e '.tenants[] | select(.name=="victim") | .live_seqs == 1 and .buffers == 1 and .kv_pages > 0' >/dev/null \
  || fail "victim's sequence/buffer not visible while it runs: $(echo "$S" | jq -c '.tenants')"
kill -KILL "$VICTIM"
wait "$VICTIM" 2>/dev/null || true
for p in "${pids[@]}"; do wait "$p" || fail "a surviving client failed"; done
for i in 1 2 3; do cmp -s "$T/ref" "$T/out$i" || fail "survivor $i differs from the reference"; done
# the daemon notices the dead peer (heartbeat/close) and frees everything it held
for _ in $(seq 1 100); do
  S=$(status_json)
  if echo "$S" | jq -e --argjson t "$TOTAL" '(.tenants[] | select(.name=="victim") | .live_seqs == 0 and .buffers == 0 and .buffer_bytes == 0 and .kv_pages == 0 and .sessions == 0) and .models[0].kv_pages_free == $t and .memory.shared_buffers == 0' >/dev/null; then
    break
  fi
  sleep 0.1
done
echo "$S" | jq -e --argjson t "$TOTAL" '(.tenants[] | select(.name=="victim") | .live_seqs == 0 and .buffers == 0 and .kv_pages == 0) and .models[0].kv_pages_free == $t' >/dev/null \
  || fail "victim's resources not freed: $(echo "$S" | jq -c '{t: .tenants, m: .models}')"
grep -q 'session closed.*tenant=victim.*buffers_freed=1' "$T/aoqd.log" || fail "no log of the victim's session closing"
"$E2E_CLIENT" work ref 7 >"$T/after" || fail "daemon stopped serving"
cmp -s "$T/ref" "$T/after" || fail "result after the kill differs"
echo "$S" | jq -c '{victim: (.tenants[] | select(.name=="victim")), kv_free: .models[0].kv_pages_free, kv_total: .models[0].kv_pages_total}'
# a client that hangs (SIGSTOP: no heartbeat answers) is disconnected by the heartbeat timeout
"$E2E_CLIENT" slowgen hung >"$T/hung.out" &
HUNG=$!
for _ in $(seq 1 200); do grep -q '^tok' "$T/hung.out" 2>/dev/null && break; sleep 0.05; done
# aoqd learns the client's heartbeat TTL from its first PING (libaoq: every 100 ms): a process
# stopped before it sent one, while aoqd's queue to it is full (a GPU daemon streams the 3000
# tokens in about a second), is reaped only when it dies. Hang it after a few heartbeats.
sleep 0.3
kill -STOP "$HUNG"
for _ in $(seq 1 100); do
  S=$(status_json)
  echo "$S" | jq -e --argjson t "$TOTAL" '(.tenants[] | select(.name=="hung") | .sessions == 0 and .live_seqs == 0 and .buffers == 0) and .models[0].kv_pages_free == $t' >/dev/null && break
  sleep 0.1
done
echo "$S" | jq -e --argjson t "$TOTAL" '(.tenants[] | select(.name=="hung") | .sessions == 0 and .live_seqs == 0 and .buffers == 0) and .models[0].kv_pages_free == $t' >/dev/null \
  || fail "hung client's session not reaped: $(echo "$S" | jq -c .tenants)"
kill -KILL "$HUNG"; wait "$HUNG" 2>/dev/null || true
"$E2E_CLIENT" work ref 7 >"$T/after2" && cmp -s "$T/ref" "$T/after2" || fail "serving after the hung client"
stop_daemon
echo PASS
