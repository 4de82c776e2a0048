#!/bin/bash
# Command lines: --help/--version exit 0, usage errors exit 2, runtime errors exit 1 with a
# message; a second daemon on a live endpoint is refused; without --foreground aoqd detaches,
# writes its pidfile, and removes it on shutdown.
. "$(dirname "$0")/lib.sh"
expect_rc() { local want=$1; shift; local rc=0; "$@" >"$T/out" 2>"$T/err" || rc=$?; [ "$rc" -eq "$want" ] || fail "'$*' exited $rc, expected $want: $(cat "$T/err")"; }
expect_rc 0 "$AOQD" --version;   grep -q "^aoqd 0" "$T/out" || fail "aoqd --version"
expect_rc 0 "$AOQD" --help;      grep -q -- "--kv-pages" "$T/out" || fail "aoqd --help"
expect_rc 2 "$AOQD" --bogus
expect_rc 2 "$AOQD" --kv-pages abc
expect_rc 2 "$AOQD" --config int8wo
expect_rc 1 "$AOQD" --foreground --device nosuch --endpoint "ipc://$T/x.sock" --admin-endpoint "ipc://$T/y.sock"
grep -q "unknown device" "$T/err" || fail "no message for a bad device"
expect_rc 0 "$AOQCTL" --version; grep -q "^aoqctl 0" "$T/out" || fail "aoqctl --version"
expect_rc 0 "$AOQCTL" --help
expect_rc 2 "$AOQCTL"
expect_rc 2 "$AOQCTL" frobnicate
expect_rc 2 "$AOQCTL" reconfigure tiny
expect_rc 2 "$AOQCTL" status extra
AOQ_CONNECT_TIMEOUT_MS=300 expect_rc 1 "$AOQCTL" status
grep -q "connection failed" "$T/err" || fail "no-daemon message: $(cat "$T/err")"
# detached daemon
"$AOQD" --device cpu --model tiny --synthetic --pidfile "$T/aoqd.pid" --endpoint "$AOQ_ENDPOINT" \
  --admin-endpoint "$AOQ_ADMIN_ENDPOINT" 2>"$T/aoqd.log" || fail "detaching aoqd exited nonzero"
for _ in $(seq 1 100); do [ -s "$T/aoqd.pid" ] && "$AOQCTL" status >/dev/null 2>&1 && break; sleep 0.1; done
DAEMON_PID=$(cat "$T/aoqd.pid")
kill -0 "$DAEMON_PID" || fail "detached aoqd not running"
[ "$(status_json | jq '.daemon.pid')" = "$DAEMON_PID" ] || fail "pidfile and status disagree"
# a second daemon on the same endpoint is refused
expect_rc 1 "$AOQD" --foreground --device cpu --model tiny --synthetic --endpoint "$AOQ_ENDPOINT" --admin-endpoint "ipc://$T/other.sock"
grep -q "another aoqd is serving" "$T/err" || fail "second daemon: $(cat "$T/err")"
"$E2E_CLIENT" ping >/dev/null || fail "first daemon disturbed by the second"
expect_rc 0 "$AOQCTL" shutdown
for _ in $(seq 1 100); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$DAEMON_PID" 2>/dev/null && fail "aoqd still running after shutdown"
DAEMON_PID=""
[ ! -e "$T/aoqd.pid" ] || fail "pidfile left behind"
[ ! -e "$T/aoqd.sock" ] || fail "socket file left behind"
echo PASS
