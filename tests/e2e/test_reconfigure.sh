#!/bin/bash
# Reconfigure during generation: the running sequence completes, later requests use the new
# format (status shows it and a matmul's output changes).
. "$(dirname "$0")/lib.sh"
start_daemon
"$E2E_CLIENT" reconf int8wo || fail "reconfigure client"
S=$(status_json)
echo "$S" | jq -e '.models[0].format == "int8wo" and .models[0].reconfigures == 1 and .models[0].weight_copies == 1' >/dev/null || fail "status after reconfigure: $(echo "$S" | jq -c .models)"
grep -q 'reconfigured.*config=int8wo' "$T/aoqd.log" || fail "reconfigure not logged"
# a bad config is refused with a clear error and changes nothing
if "$AOQCTL" reconfigure tiny --config no-such-format 2>"$T/err"; then fail "bad config accepted"; fi
grep -q "aoqctl: reconfigure" "$T/err" || fail "no error message for a bad config"
cat "$T/err"
status_json | jq -e '.models[0].format == "int8wo"' >/dev/null || fail "bad config changed the format"
"$E2E_CLIENT" gen after 1 16 | grep -q "gen length 16" || fail "generation after reconfigure"
# unload and load through aoqctl
"$AOQCTL" unload tiny >/dev/null || fail "aoqctl unload"
status_json | jq -e '.models | length == 0' >/dev/null || fail "model still listed after unload"
if "$E2E_CLIENT" gen after 1 4 2>"$T/gone.err"; then fail "generation with no model"; fi
grep -q "not found" "$T/gone.err" || fail "unloaded model: $(cat "$T/gone.err")"
"$AOQCTL" load tiny --synthetic --config bf16 >/dev/null || fail "aoqctl load"
status_json | jq -e '.models[0].format == "bf16" and .models[0].state == "ready"' >/dev/null || fail "status after load"
rc=0
"$AOQCTL" load tiny --synthetic 2>"$T/dup.err" || rc=$?
[ "$rc" -eq 1 ] || fail "loading a loaded model exited $rc"
grep -q "already loaded" "$T/dup.err" || fail "duplicate load: $(cat "$T/dup.err")"
"$E2E_CLIENT" gen after 1 8 | grep -q "gen length 8" || fail "generation after reload"
stop_daemon
echo PASS
