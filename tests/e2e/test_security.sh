#!/bin/bash
# A TCP client with an unknown CURVE key, and an admin command from another uid, are refused and
# logged; the daemon keeps serving everyone else (a known TCP key, ipc clients of any uid).
. "$(dirname "$0")/lib.sh"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$AOQCTL" keygen >"$T/server.keys"
"$AOQCTL" keygen >"$T/good.keys"
"$AOQCTL" keygen >"$T/bad.keys"
echo "$(head -n1 "$T/good.keys") remote" >"$T/clients"
# TCP without CURVE files is refused at start (usage error)
rc=0
"$AOQD" --foreground --listen "tcp://127.0.0.1:$PORT" 2>"$T/err" || rc=$?
[ "$rc" -eq 2 ] || fail "aoqd --listen without keys exited $rc"
grep -q "CURVE" "$T/err" || fail "no explanation for the missing keys"
start_daemon --listen "tcp://127.0.0.1:$PORT" --curve-keys "$T/server.keys" --curve-clients "$T/clients" --socket-mode 666
export AOQ_CURVE_SERVERKEY=$(head -n1 "$T/server.keys")
# a known key is served, under the tenant its key maps to
OUT=$(AOQ_ENDPOINT="tcp://127.0.0.1:$PORT" AOQ_CURVE_PUBLICKEY=$(head -n1 "$T/good.keys") \
      AOQ_CURVE_SECRETKEY=$(tail -n1 "$T/good.keys") "$E2E_CLIENT" ping) || fail "known CURVE key refused"
echo "$OUT" | grep -q "tenant=remote" || fail "tcp tenant: $OUT"
# an unknown key is refused and logged
if AOQ_ENDPOINT="tcp://127.0.0.1:$PORT" AOQ_CURVE_PUBLICKEY=$(head -n1 "$T/bad.keys") \
   AOQ_CURVE_SECRETKEY=$(tail -n1 "$T/bad.keys") AOQ_CONNECT_TIMEOUT_MS=1500 "$E2E_CLIENT" ping 2>"$T/bad.err"; then
  fail "unknown CURVE key was served"
fi
cat "$T/bad.err"
grep -q "CURVE client refused.*key=$(head -n1 "$T/bad.keys" | sed 's/[][\.*^$]/\\&/g')" "$T/aoqd.log" || fail "CURVE refusal not logged"
# an admin command from another uid (nobody) is refused and logged ...
rc=0
setpriv --reuid=65534 --regid=65534 --clear-groups "$AOQCTL" shutdown 2>"$T/nobody.err" || rc=$?
[ "$rc" -eq 1 ] || fail "admin shutdown as nobody exited $rc"
grep -q "permission denied" "$T/nobody.err" || fail "no permission error: $(cat "$T/nobody.err")"
cat "$T/nobody.err"
grep -q "admin command refused.*uid=65534" "$T/aoqd.log" || fail "admin refusal not logged"
# ... while nobody's ordinary requests are served, as its own tenant
OUT=$(setpriv --reuid=65534 --regid=65534 --clear-groups env -u AOQ_TENANT "$E2E_CLIENT" ping) || fail "nobody's ping refused"
echo "$OUT" | grep -q "tenant=uid65534" || fail "nobody's tenant: $OUT"
# and everyone else keeps being served
kill -0 "$DAEMON_PID" || fail "aoqd died"
"$E2E_CLIENT" work local 5 >/dev/null || fail "local client after refusals"
S=$(status_json)
echo "$S" | jq -e '.daemon.refused_admin >= 1 and .daemon.refused_curve >= 1 and .daemon.draining == false' >/dev/null \
  || fail "refusal counters: $(echo "$S" | jq -c .daemon)"
echo "$S" | jq -c '.daemon | {refused_admin, refused_curve}'
stop_daemon
echo PASS
