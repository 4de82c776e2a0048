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
stop_daemon
echo PASS
