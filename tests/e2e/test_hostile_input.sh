#!/bin/bash
# Malformed, truncated and random messages (a bounded fuzz loop over the wire), wrong shapes,
# unknown model, foreign buffer ids, protocol-version mismatch: each gets a clear error reply,
# and the daemon survives and keeps serving.
. "$(dirname "$0")/lib.sh"
start_daemon
"$E2E_CLIENT" hostile >"$T/hostile.out" || { cat "$T/hostile.out"; fail "hostile client"; }
cat "$T/hostile.out"
kill -0 "$DAEMON_PID" || fail "aoqd died"
"$E2E_CLIENT" work after 3 >/dev/null || fail "daemon does not serve after hostile input"
S=$(status_json)
echo "$S" | jq -e '.wire.malformed.requests >= 100 and .wire.malformed.errors >= 100' >/dev/null || fail "malformed counter: $(echo "$S" | jq -c .wire)"
grep -q 'foreign buffer refused' "$T/aoqd.log" || fail "foreign buffer not logged"
stop_daemon
echo PASS
